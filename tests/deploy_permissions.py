"""The runner's permissions (``deploy/permissions.yaml``) and the RBAC that grants them.

Shared by ``tests/unit/test_deploy.py`` (the list and ``deploy/rbac.yaml`` agree, both
ways) and ``tests/integration/test_deploy.py`` (the API server agrees). Run as a
module to regenerate the comment block at the top of ``deploy/rbac.yaml``::

    .venv/bin/python -m tests.deploy_permissions
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PERMISSIONS = DEPLOY / "permissions.yaml"
RBAC = DEPLOY / "rbac.yaml"
COMPONENTS = DEPLOY / "components"
BEGIN = "# ---- BEGIN generated from permissions.yaml"
END = "# ---- END generated ----"
CLUSTER = "*"  # the namespace of a cluster-wide grant


class Grant(NamedTuple):
    """One thing the runner may do: a SubjectAccessReview's resource attributes."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str  # CLUSTER for a ClusterRoleBinding
    name: str  # "" when the rule names no object

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        res = f"{self.group}/{res}" if self.group else res
        where = "cluster-wide" if self.namespace == CLUSTER else f"in {self.namespace}"
        named = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {res}{named} {where}"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PERMISSIONS.read_text())
    return data


def subject(data: Mapping[str, Any] | None = None) -> str:
    runner = (data or load())["runner"]
    return f"system:serviceaccount:{runner['namespace']}:{runner['serviceAccount']}"


def _split(resource: str) -> tuple[str, str]:
    res, _, sub = resource.partition("/")
    return res, sub


def expected(data: Mapping[str, Any], components: Iterable[str] = ()) -> set[Grant]:
    """The grants permissions.yaml asks for (entries of the given components included)."""
    wanted = set(components)
    out: set[Grant] = set()
    for entry in data["permissions"]:
        if entry.get("component") and entry["component"] not in wanted:
            continue
        out |= set(_entry_grants(entry))
    return out


def _entry_grants(entry: Mapping[str, Any]) -> Iterator[Grant]:
    res, sub = _split(entry["resource"])
    namespaces = [CLUSTER] if entry["bound"] == "cluster" else entry["bound"]
    for ns in namespaces:
        for verb in entry["verbs"]:
            for name in entry.get("resourceNames") or [""]:
                yield Grant(verb, entry["apiGroup"], res, sub, ns, name)


def documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def rbac_documents(components: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The RBAC objects of deploy/ (rbac.yaml and the named components' rbac.yaml)."""
    return documents([RBAC, *(COMPONENTS / c / "rbac.yaml" for c in components)])


def granted(docs: Iterable[Mapping[str, Any]], runner: str) -> set[Grant]:
    """What the RBAC objects in ``docs`` grant to ``runner`` (``system:serviceaccount:ns:name``)."""
    docs = list(docs)
    roles = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
    }
    out: set[Grant] = set()
    for binding in docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(_names(s) == runner for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        role = roles.get((ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"]))
        if role is None:
            raise AssertionError(f"{binding['kind']} {binding['metadata']['name']}: no {ref}")
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups") or [""]:
                for resource in rule.get("resources") or []:
                    res, sub = _split(resource)
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [""]:
                            out.add(Grant(verb, group, res, sub, ns or CLUSTER, name))
    return out


def _names(subject_: Mapping[str, Any]) -> str:
    if subject_.get("kind") == "ServiceAccount":
        return f"system:serviceaccount:{subject_.get('namespace')}:{subject_.get('name')}"
    return f"{subject_.get('kind')}:{subject_.get('name')}"


def header(data: Mapping[str, Any]) -> str:
    """The comment block at the top of rbac.yaml: every permission, its scope, why."""
    lines = [
        f"{BEGIN}: .venv/bin/python -m tests.deploy_permissions ----",
        f"# Granted to {subject(data)}:",
        "# verb(s), resource, scope; then the granting role and the activities that need it.",
        "#",
    ]
    for entry in data["permissions"]:
        res = entry["resource"]
        res = f"{entry['apiGroup']}/{res}" if entry["apiGroup"] else res
        if entry.get("resourceNames"):
            res += f" [{', '.join(entry['resourceNames'])}]"
        scope = "cluster" if entry["bound"] == "cluster" else ", ".join(entry["bound"])
        if entry.get("component"):
            scope += f" (component {entry['component']})"
        lines.append(f"# {','.join(entry['verbs']):<16} {res:<40} {scope}")
        lines.append(f"#   {entry['role']}: {' '.join(str(entry['why']).split())}")
    lines.append("#")
    lines.append("# Not granted, on purpose:")
    for entry in data.get("not_granted") or []:
        res = entry["resource"]
        res = f"{entry['apiGroup']}/{res}" if entry["apiGroup"] else res
        lines.append(f"# {','.join(entry['verbs']):<16} {res}")
        lines.append(f"#   {' '.join(str(entry['why']).split())}")
    lines.append(END)
    return "\n".join(_wrap(line) for line in lines)


def _wrap(line: str, width: int = 100) -> str:
    """Long ``#   why`` lines folded at word boundaries, as comments."""
    if len(line) <= width or not line.startswith("#   "):
        return line
    words, out, current = line[4:].split(), [], "#  "
    for word in words:
        if len(current) + 1 + len(word) > width:
            out.append(current)
            current = "#  "
        current += " " + word
    out.append(current)
    return "\n".join(out)


def rbac_header_in_file() -> str:
    text = RBAC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def write_header() -> None:
    text = RBAC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    RBAC.write_text(text[:start] + header(load()) + text[end:])


if __name__ == "__main__":
    write_header()
    sys.stdout.write(f"rewrote the header of {RBAC.relative_to(ROOT)}\n")
