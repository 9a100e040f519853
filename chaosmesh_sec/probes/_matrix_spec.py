"""The identity matrix's file, pure: sources, destinations and what each cell expects.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). No I/O here besides
parsing the text it is given. :func:`parse_matrix` reads and checks a file into a
:class:`Matrix`; each :class:`Cell` gives the command the probe execs for it
(:mod:`~chaosmesh_sec.probes._matrix_evidence` reads what came back, and
:mod:`~chaosmesh_sec.probes._matrix_judgement` holds it against the expectation).

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
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import yaml

from chaosmesh_sec import _validate
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes._matrix_evidence import (
    DEFAULT_TIMEOUT_SECONDS,
    DENIALS,
    curl_command,
    request_timeout,
)

__all__ = [
    "EXPECTATIONS",
    "Cell",
    "CellKey",
    "Destination",
    "Matrix",
    "PodPort",
    "Source",
    "cell_id",
    "parse_matrix",
]

EXPECTATIONS = ("allowed", "denied", *DENIALS)
"""What a cell may expect: ``denied`` accepts any of the denying verdicts."""

CellKey: TypeAlias = tuple[str, str]
"""A cell's (source name, destination name)."""

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")

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
        timeout = request_timeout(_at(origin, "timeout_seconds"), top["timeout_seconds"])

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
    method = _validate.http_method(_at(origin, f"{path}.method"), fields.get("method", "GET"))
    if "timeout_seconds" in fields:
        timeout = request_timeout(_at(origin, f"{path}.timeout_seconds"), fields["timeout_seconds"])
    if "url" in fields:
        _check_keys(origin, path, fields, frozenset({"url"}), _URL_KEYS, pod_keys=True)
        url = _validate.http_url(_at(origin, f"{path}.url"), fields["url"])
        return Destination(name, method, timeout, url=url)
    if not fields.keys() & _POD_REQUIRED:
        raise InvalidInput(
            _at(origin, path), "needs a `url`, or a pod's `namespace`, `selector` and `port`"
        )
    _check_keys(origin, path, fields, _POD_REQUIRED, _POD_OPTIONAL)
    pod = PodPort(
        namespace=_validate.dns_label(_at(origin, f"{path}.namespace"), fields["namespace"]),
        selector=_validate.label_selector(_at(origin, f"{path}.selector"), fields["selector"]),
        port=_validate.port(_at(origin, f"{path}.port"), fields["port"]),
        path=_validate.url_path(_at(origin, f"{path}.path"), fields.get("path", "/")),
        scheme=_validate.http_scheme(_at(origin, f"{path}.scheme"), fields.get("scheme", "http")),
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
