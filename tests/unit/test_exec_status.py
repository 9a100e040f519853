"""The exec status channel: a command that could not run is an error; a non-zero exit is not."""

from __future__ import annotations

import json

import pytest

from chaosmesh_sec._kube import ExecFailed, _check_status

pytestmark = pytest.mark.unit

NOT_FOUND = 'no exec found for container "inspect" in pod "default/cms-cni-chain-faca9c"'


@pytest.mark.parametrize(
    "raw",
    [
        "",
        json.dumps({"metadata": {}, "status": "Success"}),
        json.dumps({"status": "Failure", "reason": "NonZeroExitCode", "message": "exit code 7"}),
        # kwok's wording of a non-zero exit
        json.dumps(
            {
                "status": "Failure",
                "reason": "InternalError",
                "message": "error executing command in container: cmd wait: curl: exit status 7",
            }
        ),
        "not json",
    ],
)
def test_a_command_that_ran_is_not_an_exec_failure(raw: str) -> None:
    _check_status(raw)


def test_a_command_that_could_not_run_is_an_exec_failure() -> None:
    raw = json.dumps({"status": "Failure", "reason": "InternalError", "message": NOT_FOUND})
    with pytest.raises(ExecFailed, match="no exec found"):
        _check_status(raw)
