"""The identity matrix, pure: its file, the verdict of one request, and the comparison.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). No I/O here besides
parsing the text it is given: running the requests is the probe's job.
:func:`curl_command` is what it execs in a pod of each source, :func:`parse_curl_output`
turns what came back into :class:`Evidence`, :func:`classify` names the layer that
decided, and :func:`compare` holds the verdicts against the expectations.

A matrix file (YAML). Rows are sources (a pod of the workload runs ``curl``), columns
are destinations (a URL, or a port of a pod the probe resolves to its IP)::

    name: wrong-identity
    timeout_seconds: 5          # optional: per request, for every destination (default 5)
    sources:
      sleep-v1: {namespace: default, selector: "app=sleep,version=v1", container: sleep}
      sleep-v2: {namespace: default, selector: "app=sleep,version=v2"}
    destinations:
      helloworld-v1: {url: "http://helloworld-v1.default:5000/hello"}
      helloworld-v2: {url: "http://helloworld-v2.default:5000/hello", method: GET}
      v1-pod: {namespace: default, selector: "app=helloworld,version=v1", port: 5000,
               path: /hello, timeout_seconds: 3}
    default: denied             # optional: the expectation of every cell not written below
    expect:
      sleep-v1: {helloworld-v1: allowed, helloworld-v2: denied, v1-pod: denied_by_network}
      sleep-v2: denied          # a word alone: the whole row

Every key is checked (an unknown one is an error, so a typo does not go unnoticed), and
so is every cell: each source x destination has an expectation, from ``expect`` or
``default``. Expectations: ``allowed``, ``denied`` (any layer), or one layer's deny
(``denied_by_mesh``, ``denied_by_network``, ``mtls_failure``).

Verdicts (see :func:`classify` for the evidence behind each):

- ``allowed``: the request reached the application, whatever it answered (except a 5xx);
- ``denied_by_mesh``: the server's sidecar refused it (HTTP 403 ``RBAC: access denied``);
- ``denied_by_network``: an L4 policy dropped or refused the connection;
- ``mtls_failure``: the TLS handshake failed, or plaintext was refused under STRICT;
- ``error``: anything else (DNS failure, a 5xx, the exec failed...), evidence kept.

``mtls_failure`` counts as a deny: the request did not get through. How a deny-expected
cell is judged: any deny holds (``ok``); ``allowed`` is a fail-open, the worst result;
a deny by another layer than the one written holds but is listed as a layer mismatch.
An ``error`` is never ok. Against a baseline taken earlier in the run, every verdict
that changed is listed as a layer change (``denied_by_network -> denied_by_mesh``: L4
was bypassed and the mesh held).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import yaml

from chaosmesh_sec import _validate
from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "BODY_EXCERPT_CHARS",
    "DEFAULT_TIMEOUT_SECONDS",
    "DENIALS",
    "EXPECTATIONS",
    "HTTP_METHODS",
    "VERDICTS",
    "Cell",
    "CellKey",
    "CellOutcome",
    "Destination",
    "Evidence",
    "Matrix",
    "MatrixOutcome",
    "PodPort",
    "Source",
    "cell_id",
    "classify",
    "compare",
    "curl_command",
    "parse_curl_output",
    "parse_matrix",
    "verdicts_from_json",
]

logger = logging.getLogger("chaostoolkit")

VERDICTS = ("allowed", "denied_by_mesh", "denied_by_network", "mtls_failure", "error")
"""Every verdict of one request, attributed to the layer that decided."""
DENIALS = ("denied_by_mesh", "denied_by_network", "mtls_failure")
"""The verdicts that mean the request did not get through."""
EXPECTATIONS = ("allowed", "denied", *DENIALS)
"""What a cell may expect: ``denied`` accepts any of :data:`DENIALS`."""
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

CellKey: TypeAlias = tuple[str, str]
"""A cell's (source name, destination name)."""

DEFAULT_TIMEOUT_SECONDS = 5.0
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 300.0
BODY_EXCERPT_CHARS = 256  # room for Envoy's longest reset reason, with its TLS details
ERROR_EXCERPT_CHARS = 512

RBAC_DENIED = "RBAC: access denied"
UPSTREAM_CONNECT_ERROR = "upstream connect error"
_TLS_MARKERS = ("tls error", "tls_error", "ssl", "certificate")
_NETWORK_RESETS = ("connection timeout", "connection failure", "reset")
NETWORK_EXITS = frozenset({7, 28})  # couldn't connect (refused, unreachable); timed out
MTLS_EXITS = frozenset({35, 56})  # SSL connect error; recv failure (reset after connect)

HTTP_MARK = "curl-http:"
EXIT_MARK = "curl-exit:"
_WRITE_OUT = f"\\n{HTTP_MARK}%{{http_code}}\\n"  # curl expands the \n itself
_HTTP_CODE = re.compile(r"\d{3}")
_EXIT_CODE = re.compile(r"\d{1,5}")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_HOST = re.compile(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")

_TOP_REQUIRED = frozenset({"name", "sources", "destinations"})
_TOP_OPTIONAL = frozenset({"description", "timeout_seconds", "default", "expect"})
_SOURCE_KEYS = frozenset({"namespace", "selector", "container"})
_URL_KEYS = frozenset({"url", "method", "timeout_seconds"})
_POD_REQUIRED = frozenset({"namespace", "selector", "port"})
_POD_OPTIONAL = frozenset({"path", "scheme", "method", "timeout_seconds"})


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Source:
    """A row: the workload whose pod sends the requests (`container`: None for the default)."""

    name: str
    namespace: str
    selector: str
    container: str | None = None


@dataclass(frozen=True)
class PodPort:
    """A port of a pod of a workload, reached at the pod's IP (resolved by the probe)."""

    namespace: str
    selector: str
    port: int
    path: str = "/"
    scheme: str = "http"


@dataclass(frozen=True)
class Destination:
    """A column: a URL, or a pod's port (exactly one of `url` and `pod` is set)."""

    name: str
    method: str = "GET"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    url: str | None = None
    pod: PodPort | None = None

    def target_url(self, pod_ip: str | None = None) -> str:
        """The URL to request; a pod destination needs the IP of the pod picked for it."""
        if self.url is not None:
            return self.url
        assert self.pod is not None
        if pod_ip is None:
            raise ValueError(f"destination {self.name!r} is a pod port: give the pod's IP")
        ip = ipaddress.ip_address(pod_ip)  # raises ValueError on a bad address
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.pod.scheme}://{host}:{self.pod.port}{self.pod.path}"


@dataclass(frozen=True)
class Cell:
    """One source x destination, and what is expected of it (one of :data:`EXPECTATIONS`)."""

    source: Source
    destination: Destination
    expected: str

    @property
    def key(self) -> CellKey:
        return (self.source.name, self.destination.name)

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def command(self, pod_ip: str | None = None) -> list[str]:
        """The argv to exec in the source's container (see :func:`curl_command`)."""
        dest = self.destination
        return curl_command(dest.target_url(pod_ip), dest.method, dest.timeout_seconds)


@dataclass(frozen=True)
class Matrix:
    """A parsed matrix: `expectations[i][j]` is what source i expects of destination j."""

    name: str
    sources: tuple[Source, ...]
    destinations: tuple[Destination, ...]
    expectations: tuple[tuple[str, ...], ...]
    description: str = ""

    def cells(self) -> list[Cell]:
        """Every cell, row by row, in the file's order of sources and destinations."""
        return [
            Cell(source, dest, expected)
            for source, row in zip(self.sources, self.expectations, strict=True)
            for dest, expected in zip(self.destinations, row, strict=True)
        ]


def cell_id(key: CellKey) -> str:
    """``source -> destination``, as the journal names a cell (names hold no spaces)."""
    return f"{key[0]} -> {key[1]}"


# ---------------------------------------------------------------- parsing the file


def parse_matrix(text: str, origin: str = "<matrix>") -> Matrix:
    """Parse and check a matrix file; InvalidInput names `origin` and where in it.

    `origin` is what the error calls the file (its path, usually).
    """
    data = _load(text, origin)
    top = _mapping(origin, "", data)
    _check_keys(origin, "", top, _TOP_REQUIRED, _TOP_OPTIONAL)
    name = _name(_at(origin, "name"), top["name"])
    description = top.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput(_at(origin, "description"), "must be a string")
    timeout = DEFAULT_TIMEOUT_SECONDS
    if "timeout_seconds" in top:
        timeout = _timeout(_at(origin, "timeout_seconds"), top["timeout_seconds"])

    sources = tuple(
        _source(origin, f"sources.{key}", key, spec)
        for key, spec in _entries(origin, "sources", top["sources"])
    )
    destinations = tuple(
        _destination(origin, f"destinations.{key}", key, spec, timeout)
        for key, spec in _entries(origin, "destinations", top["destinations"])
    )
    default = _expectation(_at(origin, "default"), top["default"]) if "default" in top else None
    expect = _mapping(origin, "expect", top["expect"]) if "expect" in top else {}
    written = _written(origin, expect, sources, destinations)

    every = [(s.name, d.name) for s in sources for d in destinations]
    missing = [key for key in every if key not in written]
    if missing and default is None:
        listed = ", ".join(cell_id(k) for k in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InvalidInput(
            _at(origin, f"expect.{missing[0][0]}"),
            f"no expectation for {listed}{more} (write each cell, or a top-level `default:`)",
        )
    expectations = tuple(
        tuple(written.get((s.name, d.name)) or str(default) for d in destinations) for s in sources
    )
    return Matrix(name, sources, destinations, expectations, description)


def _load(text: str, origin: str) -> Any:
    """The YAML document, refusing duplicate keys (``safe_load`` keeps the last silently)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(origin, f"not valid YAML: {exc}") from None
    if root is not None:
        _refuse_duplicates(origin, root, "", set())
    return data


def _refuse_duplicates(origin: str, node: yaml.Node, path: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: walked already (and YAML may be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key in lines:
                raise InvalidInput(
                    _at(origin, _join_path(path, key)),
                    f"duplicate key {key!r} (lines {lines[key]} and {line})",
                )
            lines[key] = line
            _refuse_duplicates(origin, value_node, _join_path(path, key), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(origin, item, f"{path}[{i}]", seen)


def _source(origin: str, path: str, name: str, spec: Any) -> Source:
    fields = _mapping(origin, path, spec)
    _check_keys(origin, path, fields, frozenset({"namespace", "selector"}), _SOURCE_KEYS)
    container = fields.get("container")
    return Source(
        name=name,
        namespace=_validate.dns_label(_at(origin, f"{path}.namespace"), fields["namespace"]),
        selector=_validate.label_selector(_at(origin, f"{path}.selector"), fields["selector"]),
        container=None
        if container is None
        else _validate.dns_label(_at(origin, f"{path}.container"), container),
    )


def _destination(origin: str, path: str, name: str, spec: Any, timeout: float) -> Destination:
    fields = _mapping(origin, path, spec)
    method = _method(_at(origin, f"{path}.method"), fields.get("method", "GET"))
    if "timeout_seconds" in fields:
        timeout = _timeout(_at(origin, f"{path}.timeout_seconds"), fields["timeout_seconds"])
    if "url" in fields:
        _check_keys(origin, path, fields, frozenset({"url"}), _URL_KEYS, pod_keys=True)
        url = _url(_at(origin, f"{path}.url"), fields["url"])
        return Destination(name, method, timeout, url=url)
    if not fields.keys() & _POD_REQUIRED:
        raise InvalidInput(
            _at(origin, path), "needs a `url`, or a pod's `namespace`, `selector` and `port`"
        )
    _check_keys(origin, path, fields, _POD_REQUIRED, _POD_OPTIONAL)
    pod = PodPort(
        namespace=_validate.dns_label(_at(origin, f"{path}.namespace"), fields["namespace"]),
        selector=_validate.label_selector(_at(origin, f"{path}.selector"), fields["selector"]),
        port=_port(_at(origin, f"{path}.port"), fields["port"]),
        path=_url_path(_at(origin, f"{path}.path"), fields.get("path", "/")),
        scheme=_scheme(_at(origin, f"{path}.scheme"), fields.get("scheme", "http")),
    )
    return Destination(name, method, timeout, pod=pod)


def _written(
    origin: str,
    expect: Mapping[Any, Any],
    sources: tuple[Source, ...],
    destinations: tuple[Destination, ...],
) -> dict[CellKey, str]:
    """The cells `expect` writes, each checked: a known source, destination and verdict."""
    source_names = [s.name for s in sources]
    dest_names = [d.name for d in destinations]
    written: dict[CellKey, str] = {}
    for row_name, row in expect.items():
        where = f"expect.{row_name}"
        _known(_at(origin, where), "source", row_name, source_names)
        if isinstance(row, str):
            word = _expectation(_at(origin, where), row)
            written.update({(row_name, d): word for d in dest_names})
            continue
        if not isinstance(row, Mapping):
            raise InvalidInput(
                _at(origin, where),
                f"must be an expectation, or a mapping of destination to expectation, "
                f"got {_kind(row)}",
            )
        for dest_name, word in row.items():
            cell_where = _at(origin, f"{where}.{dest_name}")
            _known(cell_where, "destination", dest_name, dest_names)
            written[(row_name, dest_name)] = _expectation(cell_where, word)
    return written


# ---------------------------------------------------------------- checks of one value


def _at(origin: str, path: str) -> str:
    """How an error names a place: ``file.yaml: destinations.v1.url``."""
    return f"{origin}: {path}" if path else origin


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _mapping(origin: str, path: str, value: Any) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        what = "the file" if not path else "it"
        raise InvalidInput(_at(origin, path), f"{what} must be a mapping, got {_kind(value)}")
    return value


def _check_keys(
    origin: str,
    path: str,
    fields: Mapping[Any, Any],
    required: frozenset[str],
    allowed: frozenset[str],
    *,
    pod_keys: bool = False,
) -> None:
    """Refuse unknown keys (naming the allowed ones) and missing required keys."""
    for key in fields:
        if key not in required | allowed:
            pod_key = pod_keys and key in _POD_REQUIRED | _POD_OPTIONAL
            hint = " (a URL destination takes no pod keys)" if pod_key else ""
            raise InvalidInput(
                _at(origin, _join_path(path, str(key))),
                f"unknown key{hint}; expected one of {', '.join(sorted(required | allowed))}",
            )
    for key in sorted(required - fields.keys()):
        raise InvalidInput(_at(origin, _join_path(path, key)), "is required")


def _entries(origin: str, path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """The (name, spec) pairs of `sources` or `destinations`: at least one, names checked."""
    entries = _mapping(origin, path, value)
    if not entries:
        raise InvalidInput(_at(origin, path), "must name at least one entry")
    for key, spec in entries.items():
        yield _name(_at(origin, f"{path}.{key}"), key), spec


def _name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            name,
            f"{value!r} is not a name (letters, digits, '-', '_', '.'; "
            f"starts and ends with a letter or digit; max 63)",
        )
    return value


def _known(name: str, what: str, value: Any, names: list[str]) -> None:
    if value not in names:
        raise InvalidInput(name, f"unknown {what} {value!r} (known: {', '.join(names)})")


def _expectation(name: str, value: Any) -> str:
    if value == "error":
        raise InvalidInput(name, "'error' is a verdict, not an expectation (it is never ok)")
    if not isinstance(value, str) or value not in EXPECTATIONS:
        raise InvalidInput(
            name, f"unknown verdict {value!r}; expected one of {', '.join(EXPECTATIONS)}"
        )
    return value


def _method(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in HTTP_METHODS:
        raise InvalidInput(
            name, f"{value!r} is not an HTTP method; expected one of {', '.join(HTTP_METHODS)}"
        )
    return value


def _timeout(name: str, value: Any) -> float:
    """Seconds, a number in [0.1, 300]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number of seconds, got {_kind(value)}")
    seconds = float(value)
    if math.isnan(seconds) or not MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidInput(
            name,
            f"must be between {MIN_TIMEOUT_SECONDS:g} and {MAX_TIMEOUT_SECONDS:g} seconds, "
            f"got {value}",
        )
    return seconds


def _port(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(name, f"must be a port number (1-65535), got {value!r}")
    return value


def _scheme(name: str, value: Any) -> str:
    if value not in ("http", "https"):
        raise InvalidInput(name, f"must be http or https, got {value!r}")
    return str(value)


def _url_path(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or not _printable(value):
        raise InvalidInput(name, f"must be a path starting with '/', got {value!r}")
    return value


def _printable(text: str) -> bool:
    return all(c.isprintable() and not c.isspace() for c in text)


def _url(name: str, value: Any) -> str:
    """An http(s) URL with a host, no credentials, no spaces or control characters."""
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a URL string, got {_kind(value)}")
    if not _printable(value):
        raise InvalidInput(name, f"{value!r} holds spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(name, f"{value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(name, f"{value!r}: the scheme must be http or https")
    host = parts.hostname
    if not host:
        raise InvalidInput(name, f"{value!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(name, f"{value!r} carries credentials: they would reach the journal")
    if not _HOST.fullmatch(host) and not _is_ip(host):
        raise InvalidInput(name, f"{value!r}: {host!r} is not a host name or IP address")
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- one request


@dataclass(frozen=True)
class Evidence:
    """What one request left behind.

    `exit_code`: curl's, None when the exec itself failed. `http_code`: as curl
    printed it, "000" when no response came. `body`: an excerpt of the response.
    `error`: curl's message (stderr), or why the exec failed.
    """

    exit_code: int | None
    http_code: str
    body: str
    error: str = ""

    @classmethod
    def exec_failed(cls, error: str) -> Evidence:
        """The request could not even be sent (no pod, exec refused, ...)."""
        return cls(None, "000", "", _excerpt(error, ERROR_EXCERPT_CHARS))

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "http_code": self.http_code,
            "body": self.body,
            "error": self.error,
        }


def classify(evidence: Evidence) -> str:
    """The verdict of one request (one of :data:`VERDICTS`), from its evidence.

    A response came back (HTTP code other than 000), judged by the code:

    - 403 with ``RBAC: access denied``: ``denied_by_mesh``;
    - 503 with ``upstream connect error`` (the client's sidecar could not connect):
      ``mtls_failure`` when the reason names TLS / SSL / a certificate,
      ``denied_by_network`` on a connection timeout, failure or reset, ``error``
      otherwise (``overflow``: a circuit breaker);
    - any other 1xx-4xx: ``allowed``. The request reached the application, so
      neither the network nor the mesh stopped it (a 404, or the app's own 403,
      still counts: a deny-expected cell is then a fail-open);
    - any other 5xx: ``error``.

    Whatever curl's exit code: a timeout after the headers arrived still reached the
    application. No response (000), judged by curl's exit code: 7 (could not connect,
    refused) and 28 (timed out) are ``denied_by_network``; 35 (SSL connect error) and
    56 (reset after connect: plaintext refused under STRICT) are ``mtls_failure``;
    anything else (6: DNS failure, 0 without a response, the exec failed) is ``error``.

    Only what curl sees is used, so two denies may be put on the wrong layer (both
    still count as denies): ztunnel's L4 deny (ambient mode) resets the connection
    and reads as ``mtls_failure``; a client sidecar's plaintext refused under STRICT
    (``reset reason: connection termination``) reads as ``denied_by_network``.
    """
    if evidence.exit_code is None:
        return "error"
    code = evidence.http_code.strip()
    if code != "000":
        if not _HTTP_CODE.fullmatch(code):
            return "error"
        status = int(code)
        if status == 403 and RBAC_DENIED in evidence.body:
            return "denied_by_mesh"
        if status == 503 and UPSTREAM_CONNECT_ERROR in evidence.body:
            return _sidecar_503(evidence.body)
        return "allowed" if 100 <= status < 500 else "error"
    if evidence.exit_code in NETWORK_EXITS:
        return "denied_by_network"
    if evidence.exit_code in MTLS_EXITS:
        return "mtls_failure"
    return "error"


def _sidecar_503(body: str) -> str:
    """The verdict of Envoy's ``upstream connect error ... reset reason: ...``."""
    text = body.lower()
    if any(marker in text for marker in _TLS_MARKERS):
        return "mtls_failure"
    if "overflow" in text:
        return "error"
    if any(reason in text for reason in _NETWORK_RESETS):
        return "denied_by_network"
    return "error"


def curl_command(
    url: str, method: str = "GET", timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> list[str]:
    """The argv to exec in a source's container: curl, then its exit code on the last line.

    ``sh -c`` running ``curl -q -sS --noproxy '*' -m T -X METHOD -o - -w TRAILER URL;
    echo "curl-exit:$?"``, TRAILER being ``\\ncurl-http:%{http_code}\\n``. The shell
    always exits 0, so curl's exit code survives an exec that loses it. ``-q`` skips
    any ``.curlrc`` and ``--noproxy`` any proxy variable of the container: the request
    goes straight from the source. ``HEAD`` uses ``--head`` (``-X HEAD`` waits for a
    body). Read the output with :func:`parse_curl_output`.
    """
    url = _url("url", url)
    method = _method("method", method)
    seconds = _timeout("timeout_seconds", timeout_seconds)
    verb = ["--head"] if method == "HEAD" else ["-X", method]
    timeout = f"{seconds:.3f}".rstrip("0").rstrip(".")
    curl = ["curl", "-q", "-sS", "--noproxy", "*", "-m", timeout, *verb]
    curl += ["-o", "-", "-w", _WRITE_OUT, url]
    return ["sh", "-c", f'{shlex.join(curl)}; echo "{EXIT_MARK}$?"']


def parse_curl_output(stdout: str, stderr: str) -> Evidence:
    """The evidence in what :func:`curl_command` printed; never raises.

    Without the exit-code line (the shell did not run, the output was cut), the
    evidence has exit code None and says so in `error`. The body is cut to
    :data:`BODY_EXCERPT_CHARS`; `error` holds curl's own message, from `stderr`.
    """
    error = _excerpt(stderr.strip(), ERROR_EXCERPT_CHARS)
    text = stdout.replace("\r\n", "\n").rstrip()
    head, mark, tail = text.rpartition(EXIT_MARK)
    if not mark or not _EXIT_CODE.fullmatch(tail) or (head and not head.endswith("\n")):
        problem = f"no {EXIT_MARK!r} line in the output: the command did not run to its end"
        return Evidence(None, "000", _excerpt(stdout), _join(problem, error))
    exit_code = int(tail)
    head = head.removesuffix("\n")
    body, mark, code = head.rpartition("\n" + HTTP_MARK)
    if not mark and head.startswith(HTTP_MARK):  # nothing before the write-out at all
        body, mark, code = "", HTTP_MARK, head.removeprefix(HTTP_MARK)
    if not mark:  # curl did not write its trailer (not installed: exit 127)
        return Evidence(exit_code, "000", _excerpt(head), error)
    code = code.strip()
    if not _HTTP_CODE.fullmatch(code):
        return Evidence(exit_code, "000", _excerpt(body), _join(f"bad http code {code!r}", error))
    return Evidence(exit_code, code, _excerpt(body), error)


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------- the comparison


@dataclass(frozen=True)
class CellOutcome:
    """One cell's verdict against its expectation (and against the baseline's, if any).

    `ok`: the expectation held. `fail_open`: a deny was expected, it got through.
    `unexpected_deny`: ``allowed`` was expected, it was denied. `layer_mismatch`: a
    specific deny was expected, another layer denied it (still ok). `layer_change`:
    ``"baseline -> verdict"`` when the verdict differs from the baseline's, else None.
    `evidence`: None when the result was given as a verdict alone.
    """

    source: str
    destination: str
    expected: str
    verdict: str
    ok: bool
    evidence: Evidence | None
    fail_open: bool
    unexpected_deny: bool
    layer_mismatch: bool
    baseline: str | None
    layer_change: str | None

    @property
    def key(self) -> CellKey:
        return (self.source, self.destination)

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.id,
            "source": self.source,
            "destination": self.destination,
            "expected": self.expected,
            "verdict": self.verdict,
            "ok": self.ok,
            "fail_open": self.fail_open,
            "unexpected_deny": self.unexpected_deny,
            "layer_mismatch": self.layer_mismatch,
            "baseline": self.baseline,
            "layer_change": self.layer_change,
            "evidence": self.evidence.to_json() if self.evidence else None,
        }


@dataclass(frozen=True)
class MatrixOutcome:
    """Every cell's outcome, in the matrix's order, and what they add up to."""

    matrix: str
    cells: tuple[CellOutcome, ...]

    @property
    def holds(self) -> bool:
        """Every cell is ok (fail-opens, unexpected denies and errors break it)."""
        return all(c.ok for c in self.cells)

    @property
    def failures(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if not c.ok)

    @property
    def fail_open(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.fail_open)

    @property
    def unexpected_denies(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.unexpected_deny)

    @property
    def layer_mismatches(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.layer_mismatch)

    @property
    def layer_changes(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.layer_change)

    @property
    def errors(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.verdict == "error")

    def counts(self) -> dict[str, int]:
        """How many cells got each verdict (every verdict named, 0 included)."""
        counts = dict.fromkeys(VERDICTS, 0)
        for c in self.cells:
            counts[c.verdict] += 1
        return counts

    def verdicts(self) -> dict[CellKey, str]:
        """Each cell's verdict: the baseline for a later :func:`compare`."""
        return {c.key: c.verdict for c in self.cells}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready; the lists name cells as ``source -> destination``."""
        return {
            "matrix": self.matrix,
            "holds": self.holds,
            "total": len(self.cells),
            "counts": self.counts(),
            "failures": [c.id for c in self.failures],
            "fail_open": [c.id for c in self.fail_open],
            "unexpected_denies": [c.id for c in self.unexpected_denies],
            "layer_mismatches": [c.id for c in self.layer_mismatches],
            "errors": [c.id for c in self.errors],
            "layer_changes": [
                {"cell": c.id, "baseline": c.baseline, "verdict": c.verdict}
                for c in self.layer_changes
            ],
            "cells": [c.to_json() for c in self.cells],
        }


def compare(
    matrix: Matrix,
    results: Mapping[CellKey, Evidence | str],
    baseline: Mapping[CellKey, str] | MatrixOutcome | None = None,
) -> MatrixOutcome:
    """Hold each cell's result against its expectation, and against `baseline`.

    `results` maps a cell's key to its evidence (classified here) or to a verdict. A
    cell without a result is an ``error`` (it was not checked, so it cannot hold).
    `baseline`: verdicts from earlier in the run (:meth:`MatrixOutcome.verdicts`, or
    the outcome itself); a cell it lacks has no layer change. ValueError on a result
    for a cell the matrix does not have, or on a word that is not a verdict.
    """
    cells = matrix.cells()
    known = {cell.key for cell in cells}
    stray = [cell_id(key) for key in results if key not in known]
    if stray:
        raise ValueError(f"results for cells not in matrix {matrix.name!r}: {', '.join(stray)}")
    before = baseline.verdicts() if isinstance(baseline, MatrixOutcome) else (baseline or {})
    outcomes = []
    for cell in cells:
        result = results.get(cell.key)
        evidence: Evidence | None
        if result is None:
            evidence = Evidence(None, "000", "", "no result for this cell")
            verdict = "error"
        elif isinstance(result, Evidence):
            evidence, verdict = result, classify(result)
        else:
            evidence, verdict = None, _verdict(f"result of {cell.id}", result)
        previous = before.get(cell.key)
        if previous is not None:
            previous = _verdict(f"baseline of {cell.id}", previous)
        outcomes.append(_judge(cell, verdict, evidence, previous))
    return MatrixOutcome(matrix.name, tuple(outcomes))


def _verdict(what: str, value: object) -> str:
    if not isinstance(value, str) or value not in VERDICTS:
        raise ValueError(f"{what}: {value!r} is not a verdict ({', '.join(VERDICTS)})")
    return value


def _judge(
    cell: Cell, verdict: str, evidence: Evidence | None, previous: str | None
) -> CellOutcome:
    denied = verdict in DENIALS
    if cell.expected == "allowed":
        ok, fail_open, unexpected_deny, mismatch = verdict == "allowed", False, denied, False
    else:
        ok, fail_open, unexpected_deny = denied, verdict == "allowed", False
        mismatch = denied and cell.expected != "denied" and verdict != cell.expected
    change = f"{previous} -> {verdict}" if previous is not None and previous != verdict else None
    return CellOutcome(
        source=cell.source.name,
        destination=cell.destination.name,
        expected=cell.expected,
        verdict=verdict,
        ok=ok,
        evidence=evidence,
        fail_open=fail_open,
        unexpected_deny=unexpected_deny,
        layer_mismatch=mismatch,
        baseline=previous,
        layer_change=change,
    )


def verdicts_from_json(data: Mapping[str, Any]) -> dict[CellKey, str]:
    """The verdicts in a :meth:`MatrixOutcome.to_json` (a baseline kept in the journal).

    ValueError when `data` does not have that shape.
    """
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a matrix outcome: no `cells` list")
    verdicts: dict[CellKey, str] = {}
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise ValueError(f"cells[{i}] is not a mapping")
        source, destination = cell.get("source"), cell.get("destination")
        if not isinstance(source, str) or not isinstance(destination, str):
            raise ValueError(f"cells[{i}] has no source and destination names")
        verdicts[(source, destination)] = _verdict(f"cells[{i}]", cell.get("verdict"))
    return verdicts
