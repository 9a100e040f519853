"""Shared test configuration. Markers are declared in pyproject.toml.

Tiers by directory: ``tests/unit`` (marked ``unit``), ``tests/integration`` (marked
``integration``: a real API server, the lab), ``tests/e2e`` (marked ``e2e``: ``chaos run``
against the lab), ``tests/packaging`` (marked ``packaging``: a wheel built and installed in
a fresh venv; no cluster, but the package index or pip's cache). The lab fixtures live in
``tests/lab_fixtures.py``; a lab is brought up only when a test asks for one. Unit tests
that need network namespaces or the lab's real ``pilot-agent`` take them from
``tests/netns.py`` (no lab is brought up for those).

Ordering: tests marked ``lab_before`` run first (they need a machine without a lab) and
tests marked ``lab_after`` run last (they take the lab down).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.lab_fixtures", "tests.netns"]

_TIERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "e2e": pytest.mark.e2e,
    "packaging": pytest.mark.packaging,
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in _TIERS:
            item.add_marker(_TIERS[tier])

    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("lab_before"):
            return 0
        if item.get_closest_marker("lab_after"):
            return 2
        return 1

    items.sort(key=order)
