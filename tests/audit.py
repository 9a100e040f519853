"""The lab API server's audit log: every write request, who made it and what became of it.

The policy (:data:`chaosmesh_sec.lab.controlplane.AUDIT_POLICY`) logs every verb but
get, list and watch at Metadata level, one JSON event per line, when the request is
answered (the API server's default blocking mode: the event is written before the
response goes out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaosmesh_sec.lab.paths import LabPaths


def audit_log() -> Path:
    """The audit log; fails the test when the lab keeps none (it was brought up by code
    older than its audit policy: bring it up again)."""
    path = LabPaths.default().audit_log
    assert path.is_file(), (
        f"the lab keeps no audit log at {path}: it was brought up without the audit "
        "policy; run `chaosmesh-sec lab up` again"
    )
    return path


def writes_by(username: str) -> list[dict[str, Any]]:
    """Every audited request made by ``username`` (``verb``, ``objectRef``, response code)."""
    found = []
    for line in audit_log().read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") == username:
            found.append(
                {
                    "verb": event.get("verb"),
                    "uri": event.get("requestURI"),
                    "code": event.get("responseStatus", {}).get("code"),
                }
            )
    return found
