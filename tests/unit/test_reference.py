"""docs/activities.md is what ``chaosmesh-sec reference`` generates from the code."""

from pathlib import Path

from chaosmesh_sec import discover
from chaosmesh_sec._reference import activity_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "activities.md"


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text() == activity_reference(), "run `make reference` and commit"


def test_every_activity_is_in_the_reference() -> None:
    text = activity_reference()
    for act in discover()["activities"]:
        assert f"### `{act['name']}` ({act['type']})" in text
