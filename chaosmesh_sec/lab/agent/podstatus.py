"""Pod status bodies the agent writes, as a kubelet reports them (pure).

kwok's pod-ready Stage gives every pod its IP and the Running phase at once; the
agent then corrects what only it knows: a sandbox that could not be set up, an init
container that failed (and is retried), init containers that completed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["init_failed", "running", "sandbox_failed", "stamp", "terminated"]


def stamp(at: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _waiting(pod: Any, reason: str, message: str = "") -> list[dict[str, Any]]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return [
        {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {"waiting": state},
        }
        for c in pod.spec.containers
    ]


def _not_ready(initialized: bool, reason: str) -> list[dict[str, Any]]:
    return [
        {"type": "Initialized", "status": "True" if initialized else "False", "reason": reason},
        {"type": "Ready", "status": "False", "reason": reason},
        {"type": "ContainersReady", "status": "False", "reason": reason},
    ]


def sandbox_failed(pod: Any, message: str) -> dict[str, Any]:
    """The pod waits in ContainerCreating: its network could not be set up."""
    return {
        "status": {
            "phase": "Pending",
            "podIP": pod.status.pod_ip,
            "conditions": _not_ready(True, "ContainersNotReady"),
            "containerStatuses": _waiting(pod, "ContainerCreating", message),
        }
    }


def ended(code: int, started: float, message: str) -> dict[str, Any]:
    """A container's run that ended now with ``code``: its ``terminated`` state."""
    return {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "message": message,
        "startedAt": stamp(started),
        "finishedAt": stamp(),
    }


def init_failed(
    pod: Any, name: str, code: int, started: float, restarts: int, message: str
) -> dict[str, Any]:
    """Init container ``name`` exited ``code``; it is retried (CrashLoopBackOff)."""
    statuses = []
    names = [c.name for c in pod.spec.init_containers or []]
    done = names[: names.index(name)] if name in names else []
    for c in pod.spec.init_containers or []:
        entry: dict[str, Any] = {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": False,
            "restartCount": restarts if c.name == name else 0,
        }
        if c.name == name:
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            entry["lastState"] = {"terminated": ended(code, started, message)}
        elif c.name in done:
            entry["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        else:
            entry["state"] = {"waiting": {"reason": "PodInitializing"}}
        statuses.append(entry)
    return {
        "status": {
            "phase": "Pending",
            "podIP": pod.status.pod_ip,
            "conditions": _not_ready(False, "ContainersNotInitialized"),
            "initContainerStatuses": statuses,
            "containerStatuses": _waiting(pod, "PodInitializing"),
        }
    }


def running(
    pod: Any,
    started: float,
    restarts: dict[str, int],
    last: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The pod runs: its sandbox is up and every init container (if any) exited 0;
    ``last``: the ``terminated`` state of an init container's run before that one."""
    before = last or {}
    statuses = [
        {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": True,
            "restartCount": restarts.get(c.name, 0),
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": stamp(started),
                    "finishedAt": stamp(),
                }
            },
            **({"lastState": {"terminated": before[c.name]}} if c.name in before else {}),
        }
        for c in pod.spec.init_containers or []
    ]
    probed = any(c.readiness_probe is not None for c in pod.spec.containers)
    ready = "False" if probed else "True"
    now = stamp()
    return {
        "status": {
            "phase": "Running",
            "podIP": pod.status.pod_ip,
            "conditions": [  # reason None: drop what a failure wrote
                {"type": "Initialized", "status": "True", "reason": None},
                {"type": "Ready", "status": ready, "reason": None},
                {"type": "ContainersReady", "status": ready, "reason": None},
            ],
            "initContainerStatuses": statuses,
            "containerStatuses": [
                {
                    "name": c.name,
                    "image": c.image,
                    "imageID": "",
                    "ready": c.readiness_probe is None,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in pod.spec.containers
            ],
        }
    }


def terminated(pod: Any, container: str, code: int, started: float) -> dict[str, Any]:
    """A pod whose restartPolicy lets it end has ended with ``container``'s ``code``."""
    statuses = [
        {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": code if c.name == container else 0,
                    "reason": "Error" if c.name == container and code != 0 else "Completed",
                    "startedAt": stamp(started),
                    "finishedAt": stamp(),
                }
            },
        }
        for c in pod.spec.containers
    ]
    return {
        "status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "podIP": pod.status.pod_ip,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted"},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"},
            ],
            "containerStatuses": statuses,
        }
    }
