"""The identity-matrix probe refuses bad input before any API call (``no_cluster``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import matrix

GOOD = "wrong-identity"


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"matrix": ""}, "matrix"),
        ({"matrix": "no-such-matrix"}, "matrix"),
        ({"matrix": GOOD, "sources": "sleep-v9"}, "sources"),
        ({"matrix": GOOD, "destinations": "helloworld-v9"}, "destinations"),
        ({"matrix": GOOD, "narrow_sources": "sleep-v2"}, "narrow_sources"),
        ({"matrix": GOOD, "narrow_sources": "ghost=app=x"}, "narrow_sources"),
        ({"matrix": GOOD, "narrow_sources": "sleep-v2=app in (x"}, "narrow_sources"),
        ({"matrix": GOOD, "record_as": "Before"}, "record_as"),
        ({"matrix": GOOD, "compare_to": "never-recorded"}, "compare_to"),
        ({"matrix": GOOD, "wait_seconds": -1}, "wait_seconds"),
        ({"matrix": GOOD, "fail_on_fail_open": "yes"}, "fail_on_fail_open"),
        ({"matrix": GOOD, "parallel": 0}, "parallel"),
        ({"matrix": GOOD, "parallel": 1000}, "parallel"),
    ],
)
def test_identity_matrix_rejects(no_cluster: None, kwargs: dict[str, Any], bad_input: str) -> None:
    with pytest.raises(InvalidInput) as info:
        matrix.identity_matrix(**kwargs)
    assert info.value.name == bad_input


def test_a_matrix_file_with_an_unknown_verdict_names_where(
    no_cluster: None, tmp_path: Path
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: m\nsources: {a: {namespace: default, selector: app=a}}\n"
        "destinations: {b: {url: 'http://b.default:80/'}}\nexpect: {a: {b: deny}}\n"
    )
    with pytest.raises(InvalidInput) as info:
        matrix.identity_matrix(matrix=str(path))
    assert "expect.a.b" in info.value.name and "deny" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"matrix": ""}, "matrix"),
        ({"matrix": GOOD, "sources": "sleep-v9"}, "sources"),
        ({"matrix": GOOD, "narrow_sources": "sleep-v2"}, "narrow_sources"),
        ({"matrix": GOOD, "prefer_sources": "sleep-v2"}, "prefer_sources"),
        ({"matrix": GOOD, "prefer_sources": "ghost=app=x"}, "prefer_sources"),
        ({"matrix": GOOD, "prefer_sources": "sleep-v2=app in (x"}, "prefer_sources"),
        ({"matrix": GOOD, "prefer_sources": 3}, "prefer_sources"),
        ({"matrix": GOOD, "duration_seconds": 0}, "duration_seconds"),
        ({"matrix": GOOD, "duration_seconds": 100_000}, "duration_seconds"),
        ({"matrix": GOOD, "interval_seconds": 0}, "interval_seconds"),
        ({"matrix": GOOD, "interval_seconds": "5"}, "interval_seconds"),
        ({"matrix": GOOD, "wait_seconds": -1}, "wait_seconds"),
        ({"matrix": GOOD, "parallel": 0}, "parallel"),
    ],
)
def test_sample_matrix_rejects(no_cluster: None, kwargs: dict[str, Any], bad_input: str) -> None:
    with pytest.raises(InvalidInput) as info:
        matrix.sample_matrix(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize("probe", [matrix.identity_matrix, matrix.sample_matrix])
def test_a_matrix_file_that_is_not_text_is_invalid_input(
    no_cluster: None, tmp_path: Path, probe: Any
) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_bytes(b"\xff\xfe\x00 not utf-8")
    with pytest.raises(InvalidInput) as info:
        probe(matrix=str(path))
    assert info.value.name == "matrix" and "UTF-8" in str(info.value)
    assert info.value.__cause__ is None
