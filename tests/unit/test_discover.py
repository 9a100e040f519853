"""discover() is generated from the registry: every activity shows, with its kind and types."""

import importlib
import inspect
import json

import pytest

import chaosmesh_sec
from chaosmesh_sec._registry import ACTIVITY_MODULES

MODULES = [module for module, _ in ACTIVITY_MODULES]


def _exported_functions(module_name: str) -> dict[str, object]:
    module = importlib.import_module(module_name)
    return {name: getattr(module, name) for name in module.__all__}


def test_registry_is_not_empty_and_has_no_duplicates() -> None:
    assert MODULES
    assert len(MODULES) == len(set(MODULES))
    assert {kind for _, kind in ACTIVITY_MODULES} <= {"action", "probe"}


@pytest.mark.parametrize("module_name", MODULES)
def test_registered_module_imports_and_exports_only_functions(module_name: str) -> None:
    exported = _exported_functions(module_name)
    assert exported, f"{module_name} exports nothing"
    for name, obj in exported.items():
        assert inspect.isfunction(obj), f"{module_name}.{name} is in __all__ but not a function"
        assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


def test_every_registered_activity_is_discovered_with_its_kind() -> None:
    discovery = chaosmesh_sec.discover(discover_system=False)
    found = {(a["mod"], a["name"]): a["type"] for a in discovery["activities"]}
    expected = {
        (module, name): kind
        for module, kind in ACTIVITY_MODULES
        for name in _exported_functions(module)
    }
    assert found == expected
    assert discovery["extension"] == {"name": "chaosmesh-sec", "version": chaosmesh_sec.__version__}
    json.dumps(discovery)  # the CLI writes it as JSON


def test_discovered_arguments_are_typed_and_defaults_are_not_none() -> None:
    """chaoslib names `X | None`, `dict[...]` and string annotations "object": none allowed.

    `configuration` and `secrets` are chaoslib's own injected mappings (default None).
    """
    discovery = chaosmesh_sec.discover()
    for activity in discovery["activities"]:
        where = f"{activity['mod']}.{activity['name']}"
        assert activity.get("return_type") == "mapping", where
        for arg in activity["arguments"]:
            assert arg.get("type") not in (None, "object"), f"{where}({arg['name']}) untyped"
            if arg["name"] in ("configuration", "secrets"):
                assert arg["type"] == "mapping", where
            else:
                assert "default" in arg, f"{where}({arg['name']}) has no default"
                assert arg["default"] is not None, f"{where}({arg['name']}) defaults to None"


def test_registered_module_all_matches_its_public_functions() -> None:
    """A public function left out of __all__ would silently not be an activity."""
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        public = {
            name
            for name, obj in inspect.getmembers(module, inspect.isfunction)
            if obj.__module__ == module_name and not name.startswith("_")
        }
        assert public == set(module.__all__), module_name
