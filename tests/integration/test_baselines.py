"""A baseline (``record_as``) is recorded once per run: the first record of a name wins.

Under ``--hypothesis-strategy continuously`` the steady-state hypothesis, and so its
``record_as``, runs again while the fault is on; the baseline must stay the one taken
before. Here the first record covers only sleep-v1's row; a second record under the
same name covers every row and must be ignored, which a later ``compare_to`` shows:
sleep-v2's cells have no baseline.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from chaosmesh_sec.probes import matrix

pytestmark = pytest.mark.usefixtures("kit_holds")


def test_a_second_record_under_the_same_name_is_ignored(lab: Path) -> None:
    name = f"once-{uuid.uuid4().hex[:8]}"
    first = matrix.identity_matrix(
        matrix="wrong-identity", sources="sleep-v1", record_as=name, wait_seconds=60
    )
    assert {c["source"] for c in first["cells"]} == {"sleep-v1"}
    matrix.identity_matrix(matrix="wrong-identity", record_as=name, wait_seconds=60)
    later = matrix.identity_matrix(matrix="wrong-identity", compare_to=name, wait_seconds=60)
    baselines = {(c["source"], c["destination"]): c["baseline"] for c in later["cells"]}
    assert baselines[("sleep-v1", "helloworld-v1")] == "allowed"
    assert baselines[("sleep-v1", "helloworld-v2")] is not None
    assert baselines[("sleep-v2", "helloworld-v1")] is None, "the second record replaced the first"
    assert baselines[("sleep-v2", "helloworld-v2")] is None
