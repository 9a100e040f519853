"""Short text for people: numbers, durations, and what one activity did.

Pure functions of journal values, shared by every writer. :func:`what` turns an
activity's output into one line ("lab-node-2 cut off from the API server ..."): this
pack's activities each get their own sentence, any other output gets
:func:`headline` (its scalar fields). Nothing here raises on a value of an
unexpected type: a journal of another pack is read as well as it can be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "at",
    "clip",
    "headline",
    "last_line",
    "millis",
    "number",
    "percent",
    "safety_net_what",
    "seconds",
    "what",
]

WHAT_CHARS = 240
HEADLINE_FIELDS = 6


# ---------------------------------------------------------------- numbers


def number(value: Any) -> float | None:
    """A finite int or float (a bool is not a number here), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def seconds(value: float | None) -> str:
    """``0.30 s``, ``12.9 s``, ``2 min 05 s``; empty for None."""
    if value is None:
        return ""
    if abs(value) < 10:
        return f"{value:.2f} s"
    if abs(value) < 120:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest:02d} s"


def at(t: float) -> str:
    """A moment of a timeline, to a tenth of a second: ``4 s``, ``7.5 s``."""
    return f"{t:.1f}".removesuffix(".0") + " s"


def millis(value: float | None) -> str:
    """``58.9 ms``, ``2003 ms``; empty for None."""
    if value is None:
        return ""
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def percent(rate: float | None) -> str:
    """A rate in [0, 1] as ``62.5%`` (``100%``, not ``100.0%``); empty for None."""
    if rate is None:
        return ""
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def clip(text: str, limit: int = WHAT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters (an ellipsis marks the cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def last_line(exception: Any) -> str:
    """The last non-blank line of a journal's ``exception`` (a list of lines, or a text)."""
    if isinstance(exception, list):
        text = "".join(str(part) for part in exception)
    elif exception is None:
        return ""
    else:
        text = str(exception)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------- outputs


def _word(value: Any) -> str:
    """A scalar as JSON writes it (``true``, ``null``, ``3``), a string as is."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list | dict):
        return f"[{len(value)} items]" if isinstance(value, list) else "{...}"
    return str(value)


def headline(output: Any) -> str:
    """An output in one line: a scalar as is; a mapping's first scalar fields; a list's size."""
    if output is None:
        return ""
    if isinstance(output, Mapping):
        parts = [
            f"{key}: {_word(value)}"
            for key, value in output.items()
            if value is None or isinstance(value, str | bool | int | float)
        ]
        if not parts:
            return f"{{{', '.join(str(k) for k in list(output)[:HEADLINE_FIELDS])}}}"
        more = ", ..." if len(parts) > HEADLINE_FIELDS else ""
        return clip(", ".join(parts[:HEADLINE_FIELDS]) + more)
    if isinstance(output, list):
        return f"{len(output)} items"
    return clip(_word(output))


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else _word(value))


def _ns_name(o: Mapping[str, Any]) -> str:
    name, namespace = _str(o.get("name")), _str(o.get("namespace"))
    return f"{namespace}/{name}" if namespace else name


def _partition(o: Mapping[str, Any]) -> str:
    node = _str(o.get("node")) or "a node"
    scope = _str(o.get("scope"))
    text = f"{node} cut off from the API server"
    details = [f"scope {scope}"] if scope else []
    if o.get("all_ports") is True:
        details.append("all ports")
    if o.get("run_id"):
        details.append(f"run {_str(o.get('run_id'))}")
    if details:
        text += f" ({', '.join(details)})"
    pod = _map(o.get("fault_pod"))
    if pod:
        text += f"; fault pod {_ns_name(pod)}"
    duration = number(o.get("duration_seconds"))
    if duration is not None:
        text += f"; self-heals after {duration:g} s"
    if o.get("effective_verified") is False:
        text += "; effect NOT verified"
    return text


def _heal_partition(o: Mapping[str, Any]) -> str:
    healed = [
        f"run {_str(h.get('run_id'))} on {_str(h.get('node'))}"
        for h in (_map(x) for x in _list(o.get("healed")))
    ]
    deleted = [_str(p) for p in _list(o.get("fault_pods_deleted"))]
    parts = []
    if healed:
        parts.append("healed " + ", ".join(healed))
    if deleted:
        parts.append("deleted fault pod " + ", ".join(deleted))
    return "; ".join(parts) or "no partition left to heal"


def _kill(o: Mapping[str, Any]) -> str:
    killed = [
        f"{_str(p.get('name'))} ({_str(p.get('node'))})" if p.get("node") else _str(p.get("name"))
        for p in (_map(x) for x in _list(o.get("killed")))
    ]
    text = f"killed {len(killed)}: {', '.join(killed)}" if killed else "killed none"
    before, after = o.get("ready_before"), o.get("ready_after")
    if before is not None:
        text += f"; Ready before {_word(before)}"
        if after is not None:
            text += f", after {_word(after)}"
    recovered = o.get("recovered")
    if recovered is True:
        text += f"; recovered in {seconds(number(o.get('recovery_seconds')))}"
    elif recovered is False:
        text += "; NOT recovered"
    elif recovered is None:
        text += "; recovery not awaited"
    return _with_reason(text, o)


def _cni(o: Mapping[str, Any]) -> str:
    nodes = []
    for entry in (_map(x) for x in _list(o.get("nodes"))):
        ready = number(entry.get("seconds_to_ready"))
        after = f"Ready in {seconds(ready)}" if ready is not None else "Ready not awaited"
        nodes.append(f"{_str(entry.get('node'))} ({after})")
    method = _str(o.get("method")) or "restart"
    text = f"{method} {_str(o.get('daemonset'))} pods on {', '.join(nodes) or 'no node'}"
    if o.get("recovered") is False:
        text += "; NOT recovered"
    return _with_reason(text, o)


def _scale(o: Mapping[str, Any]) -> str:
    text = (
        f"{_ns_name(o)}: {_word(o.get('previous_replicas'))} -> {_word(o.get('replicas'))} replicas"
    )
    return _with_reason(text + _ready(o), o)


def _restore(o: Mapping[str, Any]) -> str:
    if o.get("restored") is False:
        return f"{_ns_name(o)}: nothing to restore" + (
            f" ({_str(o.get('reason'))})" if o.get("reason") else ""
        )
    text = (
        f"{_ns_name(o)}: back to {_word(o.get('replicas'))} replicas "
        f"(from {_word(o.get('previous_replicas'))})"
    )
    return _with_reason(text + _ready(o), o)


def _ready(o: Mapping[str, Any]) -> str:
    if o.get("ready") is True:
        return f", Ready in {seconds(number(o.get('seconds')))}"
    if o.get("ready") is False:
        return ", NOT Ready"
    return ""


def _hunt(o: Mapping[str, Any]) -> str:
    rounds = _word(o.get("rounds"))
    story = f"; scenario {_str(o['scenario'])}" if o.get("scenario") else ""
    if o.get("found") is True:
        pod = _map(o.get("pod"))
        holder = _str(pod.get("name")) or "a pod"
        if pod.get("node"):
            holder += f" on {_str(pod.get('node'))}"
        return (
            f"recycled IP {_str(o.get('recycled_ip'))} (was {_str(o.get('victim'))}'s) "
            f"now held by {holder}, after {rounds} round(s){story}"
        )
    if story:  # the scenario's sentence already gives the reason
        return f"no recycled IP after {rounds} round(s){story}"
    return _with_reason(f"no recycled IP after {rounds} round(s)", o)


def _rollout(o: Mapping[str, Any]) -> str:
    text = (
        f"{_ns_name(o)}: {_word(o.get('completed_cycles'))}/{_word(o.get('cycles'))} "
        "restart cycle(s) completed"
    )
    return _with_reason(text, o)


def _matrix(o: Mapping[str, Any]) -> str:
    holds = o.get("holds")
    text = f"{_str(o.get('matrix')) or 'matrix'}: " + (
        "holds" if holds is True else "does NOT hold" if holds is False else "?"
    )
    counts = ", ".join(
        f"{n} {verdict}"
        for verdict, n in _map(o.get("counts")).items()
        if isinstance(n, int) and n > 0
    )
    if counts:
        text += f" ({counts})"
    fail_open = [_str(c) for c in _list(o.get("fail_open"))]
    if fail_open:
        text += f"; FAIL-OPEN: {', '.join(fail_open)}"
    changes = [
        f"{_str(c.get('cell'))} {_str(c.get('baseline'))} -> {_str(c.get('verdict'))}"
        for c in (_map(x) for x in _list(o.get("layer_changes")))
    ]
    if changes:
        text += f"; layer change: {', '.join(changes)}"
    return text


def _matrix_sampling(o: Mapping[str, Any]) -> str:
    """``m sampled 12 times: DEVIATED; FAIL-OPEN at ...; a -> b: denied_by_network,
    denied_by_mesh at 10 s, denied_by_network at 20 s``: each cell's verdicts in turn."""
    holds = o.get("holds")
    text = f"{_str(o.get('matrix')) or 'matrix'} sampled {_word(o.get('rounds'))} times: " + (
        "held" if holds is True else "DEVIATED" if holds is False else "?"
    )
    moments = [
        f"{_str(m.get('cell'))} at {_word(m.get('t'))} s"
        for m in (_map(x) for x in _list(o.get("fail_open")))
    ]
    if moments:
        text += f"; FAIL-OPEN: {', '.join(moments)}"
    paths = []
    for cell in (_map(c) for c in _list(o.get("cells"))):
        changes = [_map(x) for x in _list(cell.get("changes"))]
        if changes:
            path = [_str(changes[0].get("from"))]
            for c in changes:
                t = number(c.get("t"))
                path.append(f"{_str(c.get('to'))} at {at(t) if t is not None else '?'}")
            verdicts = {_str(c.get("from")) for c in changes} | {_str(c.get("to")) for c in changes}
            layers = len({v for v in verdicts if v.startswith("denied_")})  # L4 and L7 both
            paths.append((-layers, f"{_str(cell.get('cell'))}: {', '.join(path)}"))
    # a cell denied by one layer, then another, first: the line is clipped
    return "; ".join([text, *(p for _, p in sorted(paths, key=lambda x: x[0]))])


def _sampling(o: Mapping[str, Any]) -> str:
    parts = []
    for target, summary in _map(o.get("summary")).items():
        s = _map(summary)
        parts.append(
            f"{target} {percent(number(s.get('success_rate')))} "
            f"({_word(s.get('issued'))}/{_word(s.get('attempts'))})"
        )
    return _with_reason("issued: " + (", ".join(parts) or "no sample"), o)


def _issuance(o: Mapping[str, Any]) -> str:
    text = f"{_word(o.get('issuing_replicas'))}/{_word(o.get('replica_count'))} replicas issuing"
    service = _map(o.get("service"))
    if service:
        text += f"; service {_str(service.get('code')) or '?'}"
    return _with_reason(text, o)


def _enforced(o: Mapping[str, Any]) -> str:
    results = [_map(r) for r in _list(o.get("results"))]
    enforced = sum(1 for r in results if r.get("enforced") is True)
    return _with_reason(f"identity enforced by {enforced}/{len(results)} target(s)", o)


def _replicas_ready(o: Mapping[str, Any]) -> str:
    return (
        f"{_word(o.get('ready_replicas'))} Ready (min {_word(o.get('min_ready'))}) "
        f"in {_str(o.get('namespace'))}"
    )


def _root_cert(o: Mapping[str, Any]) -> str:
    if o.get("published") is True:
        return f"published in {_str(o.get('namespace'))}, until {_str(o.get('not_after'))}"
    return _with_reason(f"NOT published in {_str(o.get('namespace'))}", o)


def _findings(o: Mapping[str, Any], where: str) -> str:
    found = [_map(f) for f in _list(o.get("findings"))]
    if not found:
        return ""
    listed = ", ".join(f"{_str(f.get(where))}: {_str(f.get('kind'))}" for f in found)
    return f"{len(found)} finding(s): {listed}"


def _redirection(o: Mapping[str, Any]) -> str:
    counts = _map(o.get("counts"))
    text = ", ".join(f"{_word(counts.get(v))} {v}" for v in counts) or "no sidecar pod"
    caught = _list(o.get("caught"))
    if caught:
        text += f"; caught: {', '.join(map(_str, caught))}"
    bypassed = _list(o.get("unredirected"))
    if bypassed:
        text += f"; RUNNING WITHOUT CAPTURE: {', '.join(map(_str, bypassed))}"
    return text


def _cni_chain(o: Mapping[str, Any]) -> str:
    nodes = [_map(n) for n in _list(o.get("nodes"))]
    chains = sorted({" -> ".join(map(_str, _list(n.get("plugins")))) for n in nodes})
    text = f"{len(nodes)} node(s), chain {' | '.join(chains) or 'none'}"
    return f"{text}; {_findings(o, 'node') or 'no finding'}"


def _ambient(o: Mapping[str, Any]) -> str:
    text = f"{_word(o.get('ambient_pods'))} ambient pod(s)"
    return f"{text}; {_findings(o, 'pod') or 'no finding'}"


def _with_reason(text: str, o: Mapping[str, Any]) -> str:
    reason = o.get("reason")
    return f"{text}; {_str(reason)}" if reason else text


def safety_net_what(healed: Any) -> str:
    """What the safety net (or ``heal_leftovers``) did, from its ``healed`` record."""
    h = _map(healed)
    if h.get("nothing_left") is True:
        return "nothing left in effect"
    parts = []
    partition = _map(h.get("apiserver_partition"))
    if partition.get("healed") or partition.get("fault_pods_deleted"):
        parts.append(_heal_partition(partition))
    replicas = [
        f"{_ns_name(r)} back to {_word(r.get('replicas'))}"
        for r in (_map(x) for x in _list(h.get("replicas")))
    ]
    if replicas:
        parts.append("restored " + ", ".join(replicas))
    return clip("; ".join(parts) or headline(h) or "nothing recorded")


_DESCRIBERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "partition_node_from_apiserver": _partition,
    "heal_apiserver_partition": _heal_partition,
    "kill_istiod_replicas": _kill,
    "restart_cni_pods": _cni,
    "scale_deployment": _scale,
    "restore_replicas": _restore,
    "hunt_recycled_ip": _hunt,
    "rollout_restart": _rollout,
    "heal_leftovers": safety_net_what,
    "identity_matrix": _matrix,
    "sample_matrix": _matrix_sampling,
    "sample_issuance": _sampling,
    "certificate_issuance": _issuance,
    "identity_is_enforced": _enforced,
    "istiod_replicas_ready": _replicas_ready,
    "root_cert_published": _root_cert,
    "redirection_in_place": _redirection,
    "cni_chain_intact": _cni_chain,
    "ambient_posture": _ambient,
}


def what(module: str, func: str, output: Any) -> str:
    """What an activity did, in one line, from its output (this pack's, or any other)."""
    describe = _DESCRIBERS.get(func) if module.startswith("chaosmesh_sec.") else None
    if describe is None or not isinstance(output, Mapping):
        return headline(output)
    try:
        return clip(describe(output))
    except (TypeError, ValueError, AttributeError):  # a shape this version does not know
        return headline(output)
