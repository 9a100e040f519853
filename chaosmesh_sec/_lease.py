"""One run at a time per cluster: a ``coordination.k8s.io/v1`` Lease, taken, renewed, released.

The Lease is :data:`LEASE_NAME` in the fault namespace. A run takes it before the
steady state is first probed (the safety-net control: :mod:`chaosmesh_sec.controls`) or
for its whole length (a game day), renews it while it lasts (:class:`Renewal`, a daemon
thread) and deletes it when it is done. A second run that finds it held and live is
refused with :class:`~chaosmesh_sec.errors.RunRefused`, naming the holder (run id, host,
pid, what it runs) and its age; nothing else has been asked of the cluster by then.

Figures: the Lease lasts :data:`LEASE_SECONDS` (30 s) after its last renewal and is
renewed every :data:`RENEW_SECONDS` (10 s). Two renewals in a row may fail (an API
server restarting, a slow network) before a live run loses it, and a run that died
without releasing it (SIGKILL, a lost node) blocks the next one for 30 s at most: short
next to any experiment, long next to the API's latency.

Every write is conditional on what was read: a create fails with 409 if another run
created it first, a replace or a delete carries the ``resourceVersion`` read, so of two
runs starting at once exactly one wins and the other is refused by name. Expiry is
judged with this machine's clock against the holder's ``renewTime``: clocks skewed by
more than a few seconds between two runners shorten or lengthen the wait by as much.

A game day's children join its Lease instead of taking one: the game day puts its
holder identity in :data:`chaosmesh_sec._run.HOLDER_ENV` for each ``chaos run``; a child
whose environment names the holder in force joins (:attr:`Held.joined`) and neither
renews nor releases it. That is a guard against accidents, not an access control:
whoever may edit the Lease may take the cluster anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec import _run
from chaosmesh_sec.client import api_errors, exception_brief
from chaosmesh_sec.errors import ApiError, RunRefused

__all__ = [
    "LEASE_NAME",
    "LEASE_SECONDS",
    "RENEW_SECONDS",
    "Held",
    "Holder",
    "Renewal",
    "release",
    "take",
]

logger = logging.getLogger("chaostoolkit")

LEASE_NAME = "chaosmesh-sec-run"
LEASE_SECONDS = 30
RENEW_SECONDS = 10.0
RUN_ID = "chaosmesh-sec.io/run-id"
HOST = "chaosmesh-sec.io/host"
PID = "chaosmesh-sec.io/pid"
RUNS = "chaosmesh-sec.io/runs"
MAX_RUNS_TEXT = 200


@dataclass(frozen=True)
class Holder:
    """Who takes the Lease: a run (its id), where it runs, and what it runs."""

    run_id: str
    host: str
    pid: int
    runs: str

    @classmethod
    def this_process(cls, run_id: str, runs: str) -> Holder:
        return cls(run_id, _run.this_host(), os.getpid(), " ".join(runs.split())[:MAX_RUNS_TEXT])

    @property
    def identity(self) -> str:
        """The Lease's ``holderIdentity``: ``<run id>@<host>:<pid>``."""
        return f"{self.run_id}@{self.host}:{self.pid}"

    def annotations(self) -> dict[str, str]:
        return {RUN_ID: self.run_id, HOST: self.host, PID: str(self.pid), RUNS: self.runs}

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "host": self.host, "pid": self.pid, "runs": self.runs}


@dataclass
class Held:
    """A Lease this process holds (or, ``joined``, its game day holds)."""

    namespace: str
    holder: Holder
    identity: str  # the Lease's holderIdentity (the game day's, when joined)
    resource_version: str
    acquired: datetime
    joined: bool = False
    lost: str = ""  # why the renewal stopped holding it, if it did
    released: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": LEASE_NAME,
            "namespace": self.namespace,
            "holder": self.identity,
            "run_id": self.holder.run_id,
            "joined": self.joined,
            "acquired": self.acquired.isoformat(),
            "lost": self.lost or None,
            "released": self.released,
        }


def _micro(moment: datetime) -> datetime:
    """``moment`` as the API's MicroTime can read it: the client writes no fraction for
    a whole second, which the API server refuses, so a whole second gets 1 µs."""
    return moment if moment.microsecond else moment.replace(microsecond=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _body(holder: Holder, acquired: datetime, transitions: int, version: str) -> k8s.V1Lease:
    now = _micro(_now())
    return k8s.V1Lease(
        metadata=k8s.V1ObjectMeta(
            name=LEASE_NAME,
            annotations=holder.annotations(),
            resource_version=version or None,
        ),
        spec=k8s.V1LeaseSpec(
            holder_identity=holder.identity,
            lease_duration_seconds=LEASE_SECONDS,
            acquire_time=_micro(acquired),
            renew_time=now,
            lease_transitions=transitions,
        ),
    )


def _expires_at(lease: Any) -> datetime | None:
    spec = lease.spec
    renewed: datetime | None = spec.renew_time or spec.acquire_time
    if renewed is None or not spec.holder_identity:
        return None  # released, or never held: free
    return renewed + timedelta(seconds=spec.lease_duration_seconds or LEASE_SECONDS)


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "an unknown time"
    return f"{max(0.0, (now - moment).total_seconds()):.0f} s"


def describe(lease: Any, now: datetime | None = None) -> str:
    """The holder of ``lease`` in words: run id, host, pid, what it runs, age, expiry."""
    now = now or _now()
    notes = lease.metadata.annotations or {}
    expires = _expires_at(lease)
    left = f"{max(0.0, (expires - now).total_seconds()):.0f} s" if expires else "now"
    return (
        f"run {notes.get(RUN_ID, '?')} on host {notes.get(HOST, '?')}, pid "
        f"{notes.get(PID, '?')} ({notes.get(RUNS, 'unknown')}), holder "
        f"{lease.spec.holder_identity!r}, took it {_age(lease.spec.acquire_time, now)} ago, "
        f"renewed {_age(lease.spec.renew_time, now)} ago; it expires in {left} unless renewed"
    )


def _api(api_client: Any) -> k8s.CoordinationV1Api:
    return k8s.CoordinationV1Api(api_client)


def take(api_client: Any, namespace: str, holder: Holder, join: str = "") -> Held:
    """Take the run Lease in ``namespace`` for ``holder``, or join it if ``join`` holds it.

    Raises RunRefused when another holder's Lease is live (or won a race to it).
    """
    api = _api(api_client)
    where = f"the run lease {namespace}/{LEASE_NAME}"
    for _attempt in range(3):  # a lost race is re-read once or twice, then judged
        try:
            with api_errors(f"read {where}"):
                try:
                    lease: Any = api.read_namespaced_lease(LEASE_NAME, namespace)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    lease = None
            if lease is None:
                acquired = _now()
                with api_errors(f"create {where}"):
                    made: Any = api.create_namespaced_lease(
                        namespace, _body(holder, acquired, 0, "")
                    )
                return _held(namespace, holder, made, acquired)
            now = _now()
            current = lease.spec.holder_identity or ""
            if join and current == join:
                logger.info("run lease: joining %s's lease", join)
                return Held(
                    namespace,
                    holder,
                    current,
                    str(lease.metadata.resource_version),
                    lease.spec.acquire_time or now,
                    joined=True,
                )
            expires = _expires_at(lease)
            if expires is not None and now < expires:
                raise RunRefused(f"another run holds {where}: {describe(lease, now)}")
            if expires is not None:
                logger.warning("run lease: taking over an expired lease (%s)", describe(lease))
            acquired = now
            transitions = (lease.spec.lease_transitions or 0) + 1
            body = _body(holder, acquired, transitions, str(lease.metadata.resource_version))
            with api_errors(f"take over {where}"):
                taken: Any = api.replace_namespaced_lease(LEASE_NAME, namespace, body)
            return _held(namespace, holder, taken, acquired)
        except ApiError as exc:
            if exc.status != 409:
                raise
            logger.info("run lease: another run wrote %s first; reading it again", where)
    raise RunRefused(f"{where} kept changing under this run: another run is starting")


def _held(namespace: str, holder: Holder, lease: Any, acquired: datetime) -> Held:
    logger.info("run lease: %s holds %s/%s", holder.identity, namespace, LEASE_NAME)
    return Held(namespace, holder, holder.identity, str(lease.metadata.resource_version), acquired)


def renew(api_client: Any, held: Held) -> bool:
    """Renew ``held`` once (a conditional replace); False, with ``held.lost``, if lost."""
    api = _api(api_client)
    with held.lock:
        try:
            lease: Any = api.read_namespaced_lease(LEASE_NAME, held.namespace)
            if lease.spec.holder_identity != held.identity:
                held.lost = f"the lease is now held by {describe(lease)}"
                return False
            transitions = lease.spec.lease_transitions or 0
            version = str(lease.metadata.resource_version)
            body = _body(held.holder, held.acquired, transitions, version)
            renewed: Any = api.replace_namespaced_lease(LEASE_NAME, held.namespace, body)
        except ApiException as exc:
            if exc.status in (404, 409):
                held.lost = f"the lease was deleted or rewritten ({exc.status} {exc.reason})"
                return False
            logger.warning("run lease: renewal failed (%s); trying again", exception_brief(exc))
            return True
        except Exception as exc:  # noqa: BLE001 - a network hiccup: the next try may pass
            logger.warning("run lease: renewal failed (%s); trying again", exception_brief(exc))
            return True
        held.resource_version = str(renewed.metadata.resource_version)
        return True


def release(api_client: Any, held: Held) -> str:
    """Delete the Lease if this process still holds it (conditional on its version).

    A joined Lease is left to its game day. Returns what was done, in words; never raises.
    """
    if held.joined:
        return "joined: left to its holder"
    if held.lost or held.released:
        return f"not released: {held.lost or 'released already'}"
    api = _api(api_client)
    with held.lock:
        options = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(resource_version=held.resource_version)
        )
        try:
            api.delete_namespaced_lease(LEASE_NAME, held.namespace, body=options)
        except ApiException as exc:
            logger.warning("run lease: not released (%s)", exception_brief(exc))
            return f"not released ({exception_brief(exc)}): it expires on its own"
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            logger.warning("run lease: not released (%s)", exception_brief(exc))
            return f"not released ({exception_brief(exc)}): it expires on its own"
        held.released = True
    logger.info("run lease: %s released %s/%s", held.identity, held.namespace, LEASE_NAME)
    return "released"


class Renewal:
    """Renew a held Lease every :data:`RENEW_SECONDS` in a daemon thread until stopped."""

    def __init__(self, api_client: Any, held: Held, every: float = RENEW_SECONDS) -> None:
        self.api_client, self.held, self.every = api_client, held, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaosmesh-sec-lease", daemon=True)

    def start(self) -> Renewal:
        if not self.held.joined:
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            if not renew(self.api_client, self.held):
                logger.error("run lease: lost (%s); this run no longer holds it", self.held.lost)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.every + 30)
