"""Every public activity, fed bad input, raises InvalidInput and makes no API request.

The cluster is a tiny HTTPS recorder on 127.0.0.1 (a throwaway self-signed certificate
made at test time, trusted through the kubeconfig written to tmp_path): it answers
every request with 403 and remembers it. A case fails if anything but InvalidInput
comes out, or if the recorder saw a request. No fake stands in for the client: the
pack builds its real client from the kubeconfig and would really send a request.
"""

import inspect
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import chaosmesh_sec
from chaosmesh_sec import _validate
from chaosmesh_sec.errors import InvalidInput
from tests.recorder import Recorder

# Values that are valid for the activity, so that only the one fuzzed input is wrong.
BASE: dict[str, dict[str, Any]] = {
    "identity_matrix": {"matrix": "wrong-identity"},
    "sample_matrix": {"matrix": "wrong-identity"},
    "certificate_rotation": {"compare_to": "before"},
    "hunt_recycled_ip": {"victim": "a", "hunter": "b"},
    "restore_replicas": {"name": "web"},
    "deployment_available": {"name": "web"},
    "daemonset_available": {"name": "istio-cni-node"},
    "rollout_restart": {"name": "web"},
    "scale_deployment": {"name": "web", "replicas": 1},
    "partition_node_from_apiserver": {"node": "lab-node-2"},
    "identity_is_enforced": {"requested_identity": "spiffe://cluster.local/ns/a/sa/b"},
}
# Inputs for which a value below is a valid one (so it is not fuzzed with it).
VALID_ZERO = {
    "wait_seconds",
    "min_valid_seconds",
    "fraction",
    "replicas",
    "min_ready",
    "min_issuing_replicas",
}
VALID_NEGATIVE_ONE = {"replicas"}  # "not given"

HUGE_INT = 10**13
OVERLONG = "a" * 100_000


def _bad_values(name: str, default: Any) -> list[Any]:
    if isinstance(default, bool):
        return ["yes", "0", "False ", "TRUE", "", 0, 1, None, [], 2.5]
    if isinstance(default, int | float):
        values: list[Any] = ["1", None, True, [], -7, HUGE_INT, -HUGE_INT, 1e308, -1e308]
        values += [math.nan, math.inf, -math.inf]
        if name not in VALID_ZERO:
            values += [0, 0.0]
        if name not in VALID_NEGATIVE_ONE:
            values += [-1]
        return values
    if isinstance(default, str):
        values = [None, 5, True, [], {}, OVERLONG, "\x00", "a\nb", "../../etc/passwd\x00"]
        return values + ([""] if default else [])
    if isinstance(default, list):
        return ["x", None, 5, [5], [None], ["Bad_Name"], [OVERLONG]]
    raise AssertionError(f"{name}: default {default!r} is not a plain JSON type")


def _activities() -> list[tuple[str, str]]:
    found = []
    for item in chaosmesh_sec.discover()["activities"]:
        found.append((item["mod"], item["name"]))
    return sorted(found)


def _cases() -> Iterator[Any]:
    for mod, name in _activities():
        func = getattr(__import__(mod, fromlist=[name]), name)
        for param in inspect.signature(func).parameters.values():
            if param.name in ("configuration", "secrets"):
                continue
            yield pytest.param(mod, name, param.name, id=f"{name}.{param.name}")


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    with Recorder(tmp_path_factory.mktemp("recorder")) as rec:
        yield rec.kubeconfig, rec.seen


def test_the_recorder_sees_a_request_that_is_made(recorder: tuple[Path, list[str]]) -> None:
    """The proof has teeth: a valid call reaches the recorder (and gets its 403)."""
    from chaosmesh_sec.probes.control_plane import root_cert_published

    kubeconfig, seen = recorder
    before = len(seen)
    with pytest.raises(Exception):  # noqa: B017 - any failure: the point is the request
        root_cert_published(configuration={"kubeconfig_path": str(kubeconfig)})
    assert len(seen) > before


@pytest.mark.parametrize(("mod", "func_name", "param"), list(_cases()))
def test_bad_input_is_refused_before_any_request(
    recorder: tuple[Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    mod: str,
    func_name: str,
    param: str,
) -> None:
    kubeconfig, seen = recorder
    monkeypatch.delenv("KUBECONFIG", raising=False)
    func: Callable[..., Any] = getattr(__import__(mod, fromlist=[func_name]), func_name)
    default = inspect.signature(func).parameters[param].default
    problems = []
    for value in _bad_values(param, default):
        before = len(seen)
        kwargs = {**BASE.get(func_name, {}), param: value}
        try:
            func(**kwargs, configuration={"kubeconfig_path": str(kubeconfig)})
        except InvalidInput:
            pass
        except BaseException as exc:  # noqa: BLE001 - collected, reported below
            problems.append(f"{value!r:.40}: {type(exc).__name__}: {str(exc)[:160]}")
        else:
            problems.append(f"{value!r:.40}: accepted")
        if len(seen) > before:
            problems.append(f"{value!r:.40}: API request(s) made: {seen[before:][:3]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("mod", "func_name", "param"), list(_cases()))
def test_the_preflight_refuses_what_the_activity_refuses(
    mod: str, func_name: str, param: str
) -> None:
    """The activity's declared check (what the safety net's preflight calls) refuses each
    bad value above by itself, naming the same input, and takes the valid ones: so the
    activity checks nothing before its first request that the preflight does not."""
    func: Callable[..., Any] = getattr(__import__(mod, fromlist=[func_name]), func_name)
    check = _validate.check_of(func)
    assert check is not None
    params = inspect.signature(func).parameters
    defaults = {n: p.default for n, p in params.items() if n not in ("configuration", "secrets")}
    check(**{**defaults, **BASE.get(func_name, {})})  # the valid inputs pass
    problems = []
    for value in _bad_values(param, params[param].default):
        try:
            check(**{**defaults, **BASE.get(func_name, {}), param: value})
        except InvalidInput as exc:
            if exc.name != param and not _named_elsewhere(func_name, param, exc.name):
                problems.append(f"{value!r:.40}: refused as {exc.name!r}")
        except BaseException as exc:  # noqa: BLE001 - collected, reported below
            problems.append(f"{value!r:.40}: {type(exc).__name__}: {str(exc)[:160]}")
        else:
            problems.append(f"{value!r:.40}: accepted by the check")
    assert not problems, "\n".join(problems)


def _named_elsewhere(func_name: str, param: str, named: str) -> bool:
    """A bad value that the check names by another input on purpose: count and fraction
    decide together (a count of 0 with no fraction is "count must be >= 1")."""
    return func_name == "kill_istiod_replicas" and {param, named} <= {"count", "fraction"}
