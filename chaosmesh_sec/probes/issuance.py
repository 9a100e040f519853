"""Probes: istiod keeps issuing certificates, to the right identity, during a fault.

Each probe sends real CSRs to ``istio.v1.auth.IstioCertificateService/CreateCertificate``
(gRPC over TLS, port 15012) as a ServiceAccount would: a token from the TokenRequest
API (audience ``istio-ca``), the root from ``istio-ca-root-cert``, server name
``istiod.istio-system.svc``. Every replica is asked on its own (port-forward from
outside the cluster, pod IP from inside) and so is the Service. Every leaf is checked
to carry the caller's SPIFFE identity.

What the cluster refuses before a CSR (no such ServiceAccount, no istiod pod, no root
published) is a verdict with a reason, not an error; only malformed inputs raise
InvalidInput. Nothing secret is returned or logged: tokens stay in memory, keys are
made per CSR and dropped. No ``from __future__ import annotations``: chaoslib reads
these signatures.
"""

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import core_v1, discovery_v1
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes._ca_client import new_csr

__all__ = ["certificate_issuance", "identity_is_enforced", "sample_issuance"]

logger = logging.getLogger("chaostoolkit")

TOKEN_SECRET = "ca_token"  # noqa: S105 - the name of a secrets key, not a secret
TARGET_KINDS = ("replicas", "service")
MAX_SAMPLING_SECONDS = 3600
TARGETS_MAX_AGE = 1.0  # a sampler reads the istiod pods and the Service at most once a second
REREAD_FLOOR = 0.1  # ... or sooner after a failed sample, but never twice within 0.1 s
SAMPLE_INTERVAL_FLOOR = 0.02  # one CSR in flight per target: at most 50 CSRs/s to each
TOKEN_REFRESH = 300  # a sampler requests a new token every 5 minutes


def _issuance_inputs(
    min_issuing_replicas: Any, require_service: Any, max_latency_ms: Any, **shared: Any
) -> tuple[int, bool, int, dict[str, Any]]:
    """:func:`certificate_issuance`'s input check (pure): its own inputs, then those the
    issuance probes share (:meth:`_IssuanceRun.fields`)."""
    return (
        _validate.non_negative_int("min_issuing_replicas", min_issuing_replicas),
        _validate.boolean("require_service", require_service),
        _validate.positive_int("max_latency_ms", max_latency_ms, maximum=600_000),
        _IssuanceRun.fields(shared),
    )


@_validate.checks(_issuance_inputs)
def certificate_issuance(
    namespace: str = "default",
    service_account: str = "default",
    min_issuing_replicas: int = 1,
    require_service: bool = True,
    max_latency_ms: int = 2000,
    istiod_namespace: str = "istio-system",
    istiod_selector: str = "app=istiod",
    istiod_service: str = "istiod",
    via: str = "auto",
    timeout_seconds: int = 5,
    token_audience: str = "istio-ca",  # noqa: S107 - an audience, not a secret
    trust_domain: str = "cluster.local",
    cluster_id: str = "Kubernetes",
    server_name: str = "istiod.istio-system.svc",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Send one CSR to every istiod replica and one through the Service, as `service_account`.

    `ok` is true when at least `min_issuing_replicas` replicas (0: not required)
    issued, and the Service path did if `require_service`, each within
    `max_latency_ms` and each leaf for the caller's own identity. Returns `{"ok",
    "reason", "identity", "via", "issuing_replicas", "replica_count", "replicas":
    [{"target", "pod", "node", "pod_ip", "ready", "issued", "code", "message",
    "latency_ms", "leaf": {"spiffe_uris", "serial", "not_before", "not_after",
    "chain_length", "root_matches"}, "identity_ok", "in_time"}], "service": {same},
    "checked_at"}`. Tolerance: `$.ok`. A token to send instead of requesting one can
    be given as secret `ca_token` (to see how istiod treats it).
    """
    min_issuing_replicas, require_service, max_latency_ms, shared = _issuance_inputs(**locals())
    run = _IssuanceRun.built(shared, configuration, secrets)
    result = run.verdict_frame()
    try:
        with run:
            results = run.round(TARGET_KINDS)
    except ca.Refusal as refusal:
        return {**result, "ok": False, "reason": str(refusal)}
    replicas = [r for r in results if r["kind"] == "replica"]
    service = next((r for r in results if r["kind"] == "service"), None)
    for r in results:
        r["in_time"] = bool(r["issued"] and r["latency_ms"] <= max_latency_ms)
    good = sum(1 for r in replicas if r["in_time"] and r["identity_ok"])
    reasons = []
    if not replicas and min_issuing_replicas:
        reasons.append(f"no istiod pod matches {istiod_selector!r} in {istiod_namespace!r}")
    if good < min_issuing_replicas:
        reasons.append(
            f"{good} of {len(replicas)} replicas issued within {max_latency_ms} ms "
            f"(at least {min_issuing_replicas} required)"
        )
    if require_service and not (service and service["in_time"] and service["identity_ok"]):
        reasons.append(f"the Service path did not issue within {max_latency_ms} ms")
    reasons += [
        f"{r['target']} issued a certificate for {r['leaf']['spiffe_uris']}, not {run.identity}"
        for r in results
        if r["issued"] and not r["identity_ok"]
    ]
    return {
        **result,
        "ok": not reasons,
        "reason": "; ".join(reasons) or None,
        "issuing_replicas": good,
        "replica_count": len(replicas),
        "replicas": replicas,
        "service": service,
    }


def _enforced_inputs(requested_identity: Any, **shared: Any) -> tuple[str, dict[str, Any]]:
    """:func:`identity_is_enforced`'s input check (pure): the identity to ask for, and the
    shared inputs."""
    requested_identity = _validate.optional_spiffe_uri("requested_identity", requested_identity)
    trust_domain, istiod_namespace = shared.get("trust_domain"), shared.get("istiod_namespace")
    foreign = requested_identity or f"spiffe://{trust_domain}/ns/{istiod_namespace}/sa/istiod"
    if not isinstance(foreign, str) or not foreign.startswith("spiffe://"):
        raise InvalidInput("requested_identity", f"must be a spiffe:// URI, got {foreign!r}")
    return foreign, _IssuanceRun.fields(shared)


@_validate.checks(_enforced_inputs)
def identity_is_enforced(
    requested_identity: str = "",
    namespace: str = "default",
    service_account: str = "default",
    istiod_namespace: str = "istio-system",
    istiod_selector: str = "app=istiod",
    istiod_service: str = "istiod",
    via: str = "auto",
    timeout_seconds: int = 5,
    trust_domain: str = "cluster.local",
    cluster_id: str = "Kubernetes",
    server_name: str = "istiod.istio-system.svc",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Ask every replica and the Service for a certificate of a foreign identity.

    The CSR carries `requested_identity` as its URI SAN (default: istiod's own,
    `spiffe://<trust_domain>/ns/<istiod_namespace>/sa/istiod`); istiod must ignore it
    and sign the token's identity. `ok` is true when something was issued and every
    leaf names only the caller. Returns `{"ok", "reason", "requested_identity",
    "identity", "results": [{"target", "issued", "code", "spiffe_uris",
    "enforced"}]}`.
    """
    foreign, shared = _enforced_inputs(**locals())
    run = _IssuanceRun.built(shared, configuration, secrets)
    frame = {"requested_identity": foreign, "identity": run.identity}
    try:
        with run:
            results = run.round(TARGET_KINDS, requested_uri=foreign)
    except ca.Refusal as refusal:
        return {**frame, "ok": False, "reason": str(refusal), "results": []}
    brief = [
        {
            "target": r["target"],
            "issued": r["issued"],
            "code": r["code"],
            "spiffe_uris": r["leaf"]["spiffe_uris"] if r["leaf"] else None,
            "enforced": r["identity_ok"] if r["issued"] else None,
        }
        for r in results
    ]
    issued = [b for b in brief if b["issued"]]
    broken = [b["target"] for b in issued if not b["enforced"]]
    reason = None
    if broken:
        reason = f"signed the requested identity {foreign}: {', '.join(broken)}"
    elif not issued:
        reason = "nothing was issued: cannot tell whether the identity is enforced"
    return {**frame, "ok": reason is None, "reason": reason, "results": brief}


def _sampling_inputs(
    duration_seconds: Any, interval_seconds: Any, targets: Any, **shared: Any
) -> tuple[int, float, tuple[str, ...], dict[str, Any]]:
    """:func:`sample_issuance`'s input check (pure)."""
    return (
        _validate.positive_int("duration_seconds", duration_seconds, maximum=MAX_SAMPLING_SECONDS),
        _validate.seconds("interval_seconds", interval_seconds, SAMPLE_INTERVAL_FLOOR),
        _target_kinds(targets),
        _IssuanceRun.fields(shared),
    )


@_validate.checks(_sampling_inputs)
def sample_issuance(
    duration_seconds: int = 30,
    interval_seconds: float = 1.0,
    targets: str = "service,replicas",
    namespace: str = "default",
    service_account: str = "default",
    istiod_namespace: str = "istio-system",
    istiod_selector: str = "app=istiod",
    istiod_service: str = "istiod",
    via: str = "auto",
    timeout_seconds: int = 2,
    trust_domain: str = "cluster.local",
    cluster_id: str = "Kubernetes",
    server_name: str = "istiod.istio-system.svc",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Issue every `interval_seconds` for `duration_seconds`: a timeline across a fault.

    Declare it with `"background": true` before the fault in the method: Chaos
    Toolkit runs it alongside and puts its result in the journal when it ends.
    `targets`: `service`, `replicas` or both (comma-separated); replicas (and the
    Service's endpoints) are read again at most once a second (sooner after a failed
    sample, at most every 0.1 s), so replacements join the timeline. Each target
    (each replica, and the Service) is sampled on its own, every `interval_seconds`
    (at least 0.02) on a grid from the start, one CSR in flight at a time: a target
    whose CSR hangs skips its own missed slots, never another target's. Each istiod
    pod keeps one port-forward and one channel for the run (the Service's endpoint
    shares its pod's). Returns `{"started_at", "ended_at", "interval_seconds",
    "identity", "summary": {target: {"attempts", "issued", "success_rate",
    "latency_ms": {"p50", "p90", "p99", "max"},
    "first_failure_s", "last_failure_s", "longest_outage_s"}}, "samples": [{"t",
    "target", "kind", "pod", "issued", "code", "latency_ms"}], "reason"}` (`t`:
    seconds since `started_at`, when the CSR was sent; samples in order of `t`).
    Tolerance: `$.summary.service.success_rate`.
    """
    duration_seconds, interval, kinds, shared = _sampling_inputs(**locals())
    run = _IssuanceRun.built(shared, configuration, secrets)
    started_at = datetime.now(UTC)
    with run:
        samples, reason = _Sampler(run, kinds, interval, duration_seconds).run()
    return {
        "started_at": started_at.isoformat(),
        "ended_at": datetime.now(UTC).isoformat(),
        "interval_seconds": interval,
        "identity": run.identity,
        "summary": _summary(samples, interval),
        "samples": samples,
        "reason": reason,
    }


class _Sampler:
    """:func:`sample_issuance`'s run: one thread (a lane) per target, each sending its
    CSRs on its own grid of `interval` from the common start, so that the rate is the
    sum of the targets' and a slow target holds back only itself.

    The calling thread reads the targets (through the run's cache: at most once a
    second, sooner after a failed sample), starts a lane for each target it has not
    seen running, closes the channels of pods gone, and records a refusal (no token,
    no istiod pod) as a sample per kind, retrying at most every 0.1 s. A lane ends
    when its target is no longer listed (a pod deleted) or the run is over; its own
    samples are in order of `t`.
    """

    def __init__(
        self, run: "_IssuanceRun", kinds: Sequence[str], interval: float, duration: float
    ) -> None:
        self._run, self._kinds = run, tuple(kinds)
        self._interval, self._duration = interval, duration
        self._start = time.monotonic()
        self._lanes: dict[str, tuple[threading.Thread, list[dict[str, Any]]]] = {}
        self._refused: list[dict[str, Any]] = []
        self._stop = threading.Event()  # interrupted, or a lane failed
        self._failure: Exception | None = None  # what a lane raised (not a verdict)

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def _sleep_to_next_slot(self, every: float) -> bool:
        """Sleep to the next slot of the grid of `every` s (slots already missed are
        skipped); False, without sleeping, when that slot is past the run's end or the
        run was interrupted."""
        elapsed = self._elapsed()
        slot = (math.floor(elapsed / every) + 1) * every
        if slot >= self._duration:
            return False
        return not self._stop.wait(slot - elapsed)

    def run(self) -> tuple[list[dict[str, Any]], str | None]:
        """Sample until the run is over (the lanes' last CSRs answered): the samples of
        every lane and refusal in order of `t`, and the first refusal's reason."""
        reason = None
        logged = 0
        # refused: a sample per kind every interval (at most every 0.1 s), as a lane's
        retry = max(self._interval, REREAD_FLOOR)
        every = min(TARGETS_MAX_AGE, retry)
        try:
            while (elapsed := self._elapsed()) < self._duration:
                why = self._tend(round(elapsed, 3))
                reason = reason or why
                if elapsed >= logged + 10:
                    logged = int(elapsed)
                    logger.info("issuance sampling: %.0fs of %ds", elapsed, self._duration)
                if not self._sleep_to_next_slot(retry if why else every):
                    break
        except BaseException:
            self._stop.set()  # the lanes end after their CSR in flight
            raise
        finally:
            for thread, _samples in self._lanes.values():
                thread.join()
        if self._failure is not None:
            raise self._failure  # as a round's CSR raising in its pool raised before
        merged = [s for _thread, samples in self._lanes.values() for s in samples]
        # stable: at the same t, the targets' order (replicas by name, then the Service)
        return sorted(merged + self._refused, key=lambda s: float(s["t"])), reason

    def _tend(self, t: float) -> str | None:
        """Start a lane for each target listed without one; the refusal, if refused."""
        try:
            self._run.caller(TOKEN_REFRESH)
            targets = self._run.targets(self._kinds, TARGETS_MAX_AGE, REREAD_FLOOR)
        except ca.Refusal as refusal:
            self._refused += [_sample_of(_refused(kind, str(refusal)), t) for kind in self._kinds]
            return str(refusal)
        channels = self._run.channels
        if "replicas" in self._kinds:  # a pod gone from the list: its channel goes too
            channels.keep_only(targets)
        for target in targets:
            lane = self._lanes.get(target.name)
            if lane is not None and lane[0].is_alive():
                continue
            samples = lane[1] if lane is not None else []
            thread = threading.Thread(
                target=self._lane,
                args=(target.name, samples),
                name=f"issuance-{target.name}",
                daemon=True,
            )
            self._lanes[target.name] = (thread, samples)
            thread.start()
        return None

    def _lane(self, name: str, samples: list[dict[str, Any]]) -> None:
        """One target's samples, each on its own slot of the grid, until the run is over;
        what it raises ends the run and is raised by :meth:`run`."""
        try:
            self._sample_lane(name, samples)
        except Exception as exc:  # noqa: BLE001 - handed to the calling thread
            self._failure = self._failure or exc
            self._stop.set()

    def _sample_lane(self, name: str, samples: list[dict[str, Any]]) -> None:
        while (elapsed := self._elapsed()) < self._duration:
            try:
                who = self._run.caller(TOKEN_REFRESH)
                targets = self._run.targets(self._kinds, TARGETS_MAX_AGE, REREAD_FLOOR)
            except ca.Refusal:
                return  # the main loop records it, and starts this lane again after
            target = next((t for t in targets if t.name == name), None)
            if target is None:
                return  # the pod is gone
            sample = _sample_of(self._run.issue_one(target, who), round(elapsed, 3))
            samples.append(sample)
            if not sample["issued"]:
                # a replica may be gone, or the Service's endpoint picked with it: read
                # both again soon instead of reusing the list for up to a second
                self._run.stale()
            if not self._sleep_to_next_slot(self._interval):
                return


def _sample_of(result: Mapping[str, Any], t: float) -> dict[str, Any]:
    """A timeline sample of one target's result (or refusal) at `t`."""
    return {
        "t": t,
        "target": result["target"] if result["kind"] == "replica" else "service",
        "kind": result["kind"],
        "pod": result["pod"],
        "issued": bool(result["issued"] and result["identity_ok"]),
        "code": result["code"],
        "latency_ms": result["latency_ms"],
    }


# ---------------------------------------------------------------- the shared run


@dataclass
class _IssuanceRun:
    """Checked inputs, clients and the caller's credentials for one probe call."""

    namespace: str
    service_account: str
    istiod_namespace: str
    istiod_selector: str
    istiod_service: str
    via: ca.Via
    timeout_seconds: int
    token_audience: str
    trust_domain: str
    cluster_id: str
    server_name: str
    given_token: str | None = field(repr=False)
    core: Any
    discovery: Any
    _who: ca.Caller | None = field(default=None, repr=False)
    _who_at: float = 0.0
    _channels: ca.Channels | None = field(default=None, repr=False)
    _targets: tuple[float, list[ca.CaTarget]] | None = field(default=None, repr=False)
    _stale: bool = False  # a sample failed since the targets were read
    # a sampler's lanes share the run: one lock for the token, one for the targets
    _who_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _targets_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self) -> "_IssuanceRun":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the tunnels and channels this call kept open."""
        with self._targets_lock:
            channels, self._channels = self._channels, None
        if channels is not None:
            channels.close()

    @property
    def channels(self) -> ca.Channels:
        """One port-forward and one gRPC channel per istiod pod, for the whole call."""
        with self._targets_lock:
            if self._channels is None:
                self._channels = ca.Channels(
                    self.core, self.via, server_name=self.server_name, cluster_id=self.cluster_id
                )
            return self._channels

    @property
    def identity(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @staticmethod
    def fields(inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Check the inputs the three probes share, taken by name (pure; other names are
        ignored). ``token_audience`` is only certificate_issuance's (the others send
        ``istio-ca``)."""
        via = inputs["via"]
        token_audience = inputs.get("token_audience", "istio-ca")
        if via not in ca.VIAS:
            raise InvalidInput("via", f"must be one of {', '.join(ca.VIAS)}, got {via!r}")
        _validate.word("token_audience", token_audience)
        _validate.word("cluster_id", inputs["cluster_id"])
        return {
            "namespace": _validate.dns_label("namespace", inputs["namespace"]),
            "service_account": _validate.dns_subdomain(
                "service_account", inputs["service_account"]
            ),
            "istiod_namespace": _validate.dns_label("istiod_namespace", inputs["istiod_namespace"]),
            "istiod_selector": _validate.label_selector(
                "istiod_selector", inputs["istiod_selector"]
            ),
            "istiod_service": _validate.dns_label("istiod_service", inputs["istiod_service"]),
            "via": via,
            "timeout_seconds": _validate.duration(
                "timeout_seconds", inputs["timeout_seconds"], maximum=300
            ),
            "token_audience": token_audience,
            "trust_domain": _validate.dns_subdomain("trust_domain", inputs["trust_domain"]),
            "cluster_id": inputs["cluster_id"],
            "server_name": _validate.dns_subdomain("server_name", inputs["server_name"]),
        }

    @classmethod
    def built(
        cls, fields: Mapping[str, Any], configuration: Configuration, secrets: Secrets
    ) -> "_IssuanceRun":
        """The run of checked ``fields``: the caller's token (secret ``ca_token``, if
        given) and the clients."""
        token = _validate.optional_token(TOKEN_SECRET, (secrets or {}).get(TOKEN_SECRET))
        return cls(
            **{**fields, "via": ca.resolve_via(fields["via"])},
            given_token=token or None,
            core=core_v1(configuration, secrets),
            discovery=discovery_v1(configuration, secrets),
        )

    def verdict_frame(self) -> JSONObject:
        return {
            "ok": False,
            "reason": None,
            "identity": self.identity,
            "via": self.via,
            "issuing_replicas": 0,
            "replica_count": 0,
            "replicas": [],
            "service": None,
            "checked_at": datetime.now(UTC).isoformat(),
        }

    def caller(self, refresh_after: float = 0) -> ca.Caller:
        """The credentials, requested once (again after ``refresh_after`` s when > 0)."""
        with self._who_lock:
            return self._caller(refresh_after)

    def _caller(self, refresh_after: float) -> ca.Caller:
        stale = refresh_after > 0 and time.monotonic() - self._who_at > refresh_after
        if self._who is None or stale:
            who = ca.caller(
                self.core,
                self.namespace,
                self.service_account,
                self.token_audience,
                self.trust_domain,
            )
            if self.given_token:
                who = ca.Caller(
                    who.namespace, who.service_account, who.identity, who.root_pem,
                    self.given_token,
                )  # fmt: skip
            self._who, self._who_at = who, time.monotonic()
        return self._who

    def targets(
        self, kinds: Sequence[str], max_age: float = 0, min_age: float = 0
    ) -> list[ca.CaTarget]:
        """The targets of `kinds`, read from the API again when the last read is older
        than `max_age` seconds (0: at every call), or than `min_age` once :meth:`stale`
        was called since."""
        with self._targets_lock:
            cached = self._targets
            if max_age > 0 and cached is not None:
                age = time.monotonic() - cached[0]
                if age < (min(min_age, max_age) if self._stale else max_age):
                    return list(cached[1])
            found = self._read_targets(kinds)
            self._targets, self._stale = (time.monotonic(), found), False
            return list(found)

    def stale(self) -> None:
        """A sample failed: the next :meth:`targets` reads again (after its `min_age`)."""
        self._stale = True

    def _read_targets(self, kinds: Sequence[str]) -> list[ca.CaTarget]:
        found: list[ca.CaTarget] = []
        if "replicas" in kinds:
            found += ca.replica_targets(self.core, self.istiod_namespace, self.istiod_selector)
            if not found and "service" not in kinds:
                raise ca.Refusal(
                    f"no istiod pod matches {self.istiod_selector!r} in {self.istiod_namespace!r}"
                )
        if "service" in kinds:
            found.append(
                ca.service_target(
                    self.discovery, self.istiod_namespace, self.istiod_service, self.via
                )
            )
        return found

    def issue_one(
        self, target: ca.CaTarget, who: ca.Caller, requested_uri: str = ""
    ) -> dict[str, Any]:
        """One CSR (a fresh key) to `target` on its pod's channel; its result dict."""
        if target.unavailable:
            return {**target.brief(), **_NOT_SENT, "message": target.unavailable}
        outcome = self.channels.issue(
            target,
            who,
            timeout_seconds=self.timeout_seconds,
            csr_pem=new_csr(requested_uri) if requested_uri else None,
        )
        out = {**target.brief(), **outcome.to_json()}
        out["identity_ok"] = bool(
            outcome.leaf is not None and list(outcome.leaf.spiffe_uris) == [who.identity]
        )
        return out

    def round(self, kinds: Sequence[str], requested_uri: str = "") -> list[dict[str, Any]]:
        """One CSR per target, in parallel; a result dict per target."""
        who = self.caller()
        targets = self.targets(kinds)
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            return list(pool.map(lambda t: self.issue_one(t, who, requested_uri), targets))


_NOT_SENT = {
    "issued": False,
    "code": "NO_ENDPOINT",
    "latency_ms": None,
    "leaf": None,
    "identity_ok": False,
}


def _refused(kind: str, reason: str) -> dict[str, Any]:
    return {
        "target": kind,
        "kind": "service" if kind == "service" else "replica",
        "pod": None,
        **_NOT_SENT,
        "code": "REFUSED",
        "message": reason,
    }


# ---------------------------------------------------------------- inputs and statistics


def _target_kinds(targets: Any) -> tuple[str, ...]:
    if not isinstance(targets, str):
        raise InvalidInput("targets", "must be a comma-separated string")
    kinds = tuple(k.strip() for k in targets.split(",") if k.strip())
    unknown = [k for k in kinds if k not in TARGET_KINDS]
    if not kinds or unknown:
        raise InvalidInput("targets", f"must name {' and/or '.join(TARGET_KINDS)}, got {targets!r}")
    return kinds


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _summary(samples: Sequence[dict[str, Any]], interval: float) -> dict[str, Any]:
    """Per target: success rate, latency percentiles, and the outage seen."""
    out: dict[str, Any] = {}
    for target in sorted({s["target"] for s in samples}):
        mine = [s for s in samples if s["target"] == target]
        ok_latency = [s["latency_ms"] for s in mine if s["issued"]]
        failures = [s["t"] for s in mine if not s["issued"]]
        out[target] = {
            "attempts": len(mine),
            "issued": len(ok_latency),
            "success_rate": round(len(ok_latency) / len(mine), 4) if mine else None,
            "latency_ms": {
                "p50": _percentile(ok_latency, 50),
                "p90": _percentile(ok_latency, 90),
                "p99": _percentile(ok_latency, 99),
                "max": max(ok_latency) if ok_latency else None,
            },
            "first_failure_s": failures[0] if failures else None,
            "last_failure_s": failures[-1] if failures else None,
            "longest_outage_s": _longest_outage(mine, interval),
        }
    return out


def _longest_outage(samples: Sequence[dict[str, Any]], interval: float) -> float:
    """The longest run of consecutive failed samples, in seconds: from the first one's
    ``t`` to the last one's, plus ``interval`` (n samples on the grid are n intervals;
    slots skipped while a failing CSR hung count too)."""
    longest, first = 0.0, None
    for s in samples:
        if s["issued"]:
            first = None
            continue
        first = s["t"] if first is None else first
        longest = max(longest, s["t"] - first + interval)
    return round(longest, 3)
