"""The redirection probe's verdict for one pod from its status alone (pure).

The statuses are the bodies the lab's node agent reports (:mod:`podstatus`), read back
through the ``kubernetes`` client's models: a pod caught by ``istio-validation``, one
that istio-cni's repair controller repaired in place (the validation exited 126, then
passed), one that passed at once. No node inspection: the exit codes are the witnesses.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_sec.lab.agent import podstatus
from chaosmesh_sec.probes._nat_rules import CHAINS, JUMPS, NatView
from chaosmesh_sec.probes.redirection import _judge
from tests.unit.test_ambient_enrolment import make_pod
from tests.unit.test_lab_cni import STARTED, as_api

pytestmark = pytest.mark.unit

VALIDATION = "istio-validation"
LABEL = "cni.istio.io/uninitialized"
SPEC = make_pod("app", "istio-proxy", init_containers=(VALIDATION,))
CAUGHT = podstatus.init_failed(SPEC, VALIDATION, 126, STARTED, 1, "no redirect")
REPAIRED = podstatus.running(
    SPEC, STARTED, {VALIDATION: 1}, {VALIDATION: podstatus.ended(126, STARTED, "no redirect")}
)
PASSED = podstatus.running(SPEC, STARTED, {})
FAILED_OTHERWISE = podstatus.init_failed(SPEC, VALIDATION, 1, STARTED, 1, "crashed")


@pytest.mark.parametrize(
    ("body", "verdict", "code", "repaired"),
    [
        (CAUGHT, "caught", 126, False),
        (REPAIRED, "redirected", 0, True),
        (PASSED, "redirected", 0, False),
        (FAILED_OTHERWISE, "unknown", 1, False),
    ],
    ids=["caught", "repaired-in-place", "passed", "failed-otherwise"],
)
def test_the_latest_validation_run_decides_and_an_earlier_126_reads_as_repaired(
    body: dict[str, Any], verdict: str, code: int, repaired: bool
) -> None:
    row = _judge(as_api(SPEC, body), VALIDATION, LABEL, False, {})
    assert (row["verdict"], row["validation_exit_code"], row["repaired"]) == (
        verdict,
        code,
        repaired,
    ), row
    assert ("repaired in place" in row["detail"]) is repaired


def test_a_caught_pod_with_the_rules_written_since_is_redirected_and_being_repaired() -> None:
    """Between the repair controller writing the rules into a caught pod and its
    validation's next run: traffic is captured and the app has not started."""
    view = NatView(CHAINS, tuple(f"{a} -> {b}" for a, b in JUMPS), (15001, 15006))
    pod = as_api(SPEC, CAUGHT)
    row = _judge(pod, VALIDATION, LABEL, True, {pod.status.pod_ip: view})
    assert (row["verdict"], row["validation_exit_code"], row["repaired"]) == (
        "redirected",
        126,
        False,
    ), row
    assert row["detail"].endswith("exited 126, the rules are in since: being repaired in place")


def test_a_running_pod_keeps_its_failed_init_run_in_last_state() -> None:
    pod = as_api(SPEC, REPAIRED)
    [validation] = pod.status.init_container_statuses
    assert validation.state.terminated.exit_code == 0
    assert validation.last_state.terminated.exit_code == 126
    assert validation.restart_count == 1
