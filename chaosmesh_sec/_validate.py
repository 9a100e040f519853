"""Every input check of the pack: run them all before any API call or side effect.

Each check takes the input's name (as the experiment spells it, or where in a file it
is) and its value, returns the value with its proper type, or raises
:class:`InvalidInput` naming it. Names (DNS labels and subdomains, label selectors,
images), numbers with the bounds each duration, interval and count needs (integers
with a floor and an optional ceiling, positive numbers, fractions, seconds within a
range), booleans, and the parts of an HTTP request (URL, method, scheme, path, port).
Faults and probes both use them: this module is on the floor below both.
"""

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "HTTP_METHODS",
    "MAX_COUNT",
    "MAX_SECONDS",
    "MAX_TEXT",
    "MAX_TOKEN",
    "boolean",
    "check_of",
    "checks",
    "dns_label",
    "dns_subdomain",
    "duration",
    "file_or_name",
    "fraction",
    "http_method",
    "http_scheme",
    "http_url",
    "image",
    "label_selector",
    "non_negative_int",
    "optional_dns_label",
    "optional_dns_subdomain",
    "optional_label_selector",
    "optional_spiffe_uri",
    "optional_token",
    "port",
    "positive_int",
    "positive_number",
    "seconds",
    "url_path",
    "word",
]

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_SECONDS = 24 * 3600
"""The longest duration, interval or timeout any input may ask for: 24 hours."""
MAX_COUNT = 10_000
"""The largest count (replicas, rounds, cycles) unless a check gives its own ceiling."""
MAX_TEXT = 1024
"""The longest free-form string an input may be (a selector, an image, a word)."""
MAX_PATH = 4096
MAX_TOKEN = 16_384
"""The longest bearer token an input may give (a ServiceAccount token is about 1 KiB)."""

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HOST = re.compile(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?")
# One requirement of a label selector: key, key=value, key!=value, key in (a,b), !key ...
_SELECTOR_TERM = re.compile(
    r"!?[A-Za-z0-9][-A-Za-z0-9_./]*"
    r"(\s*(=|==|!=)\s*[-A-Za-z0-9_.]*"
    r"|\s+(in|notin)\s+\(\s*[-A-Za-z0-9_.]*(\s*,\s*[-A-Za-z0-9_.]*)*\s*\))?"
)


_F = TypeVar("_F", bound=Callable[..., Any])
_CHECK = "__chaosmesh_sec_check__"


def checks(check: Callable[..., object]) -> Callable[[_F], _F]:
    """Declare ``check`` as the input check of the activity it decorates (one per activity).

    ``check`` takes the activity's inputs by name, every one but ``configuration`` and
    ``secrets``; it is pure (no API call, no side effect), raises :class:`InvalidInput`
    naming the input, and returns the checked values. The activity calls it first; the
    safety net's preflight calls it on every pack activity of an experiment, with the
    arguments chaoslib will pass, before the run touches the cluster. The activity is
    returned as it is (only marked), so its signature stays what chaoslib reads."""

    def mark(func: _F) -> _F:
        setattr(func, _CHECK, check)
        return func

    return mark


def check_of(func: object) -> Callable[..., object] | None:
    """The input check :func:`checks` declared for an activity, or None."""
    found = getattr(func, _CHECK, None)
    return found if callable(found) else None


# ---------------------------------------------------------------- names


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {type(value).__name__}")
    return value


def dns_label(name: str, value: Any) -> str:
    """A namespace-style name: RFC 1123 label, at most 63 characters."""
    text = _string(name, value)
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise InvalidInput(
            name, f"{text!r:.80} is not a valid name (lowercase letters, digits, '-'; max 63)"
        )
    return text


def dns_subdomain(name: str, value: Any) -> str:
    """An object name (ConfigMap, Secret, ...): RFC 1123 subdomain, at most 253 characters."""
    text = _string(name, value)
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise InvalidInput(
            name, f"{text!r:.80} is not a valid object name (lowercase letters, digits, '-', '.')"
        )
    return text


def optional_dns_label(name: str, value: Any) -> str:
    """A DNS label, or "" for "not given" (names of baselines kept within a run)."""
    return dns_label(name, value) if _string(name, value) else ""


def optional_dns_subdomain(name: str, value: Any) -> str:
    """A DNS subdomain (a node's name), or "" for "not given"; anything else is refused."""
    return dns_subdomain(name, value) if _string(name, value) else ""


def optional_label_selector(name: str, value: Any) -> str:
    """A label selector, or "" for "not given"."""
    return label_selector(name, value) if _string(name, value).strip() else ""


def word(name: str, value: Any) -> str:
    """A non-empty printable word without spaces, at most :data:`MAX_TEXT` characters."""
    text = _string(name, value)
    if not text or len(text) > MAX_TEXT or not _printable(text):
        raise InvalidInput(name, f"must be a non-empty word (max {MAX_TEXT}), got {text[:80]!r}")
    return text


def optional_token(name: str, value: Any) -> str:
    """A bearer token as given (visible ASCII, no space, at most :data:`MAX_TOKEN`
    characters), or "" for "not given" (None or ""). No message shows the value."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string (a ServiceAccount token), got {_kind(value)}")
    if len(value) > MAX_TOKEN:
        raise InvalidInput(name, f"is longer than {MAX_TOKEN} characters")
    if not all("!" <= c <= "~" for c in value):
        raise InvalidInput(
            name, "holds a space, a line break, a control or a non-ASCII character (not shown)"
        )
    return value


def optional_spiffe_uri(name: str, value: Any) -> str:
    """A ``spiffe://`` URI, or "" for "not given"."""
    text = _string(name, value)
    if text and (not text.startswith("spiffe://") or len(text) > 2048 or not _printable(text)):
        raise InvalidInput(name, f"must be a spiffe:// URI, got {text[:80]!r}")
    return text


def file_or_name(name: str, value: Any) -> str:
    """A name, or a file's path: a string without control characters, at most 4096
    characters, no part of it longer than 255 ("" is left to the caller to refuse)."""
    text = _string(name, value)
    if len(text) > MAX_PATH or any(len(part) > 255 for part in text.split("/")):
        raise InvalidInput(name, f"is too long for a name or a path: {text[:80]!r}...")
    if not all(c.isprintable() for c in text):
        raise InvalidInput(name, f"holds control characters: {text[:80]!r}")
    return text


def label_selector(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """A Kubernetes label selector such as ``app=istiod,tier!=canary``."""
    text = _string(name, value).strip()
    if not text:
        if allow_empty:
            return text
        raise InvalidInput(name, "must not be empty (it would select every pod)")
    if len(text) > MAX_TEXT:
        raise InvalidInput(name, f"is longer than {MAX_TEXT} characters: {text[:80]!r}...")
    for term in _split_terms(text):
        if not _SELECTOR_TERM.fullmatch(term.strip()):
            raise InvalidInput(
                name, f"{text!r:.80} is not a label selector (bad term {term!r:.80})"
            )
    return text


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` has two terms)."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def image(name: str, value: Any, needs: str) -> str:
    """A container image reference for a pod the pack starts; ``needs`` says what it must hold."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_TEXT or not _printable(text):
        raise InvalidInput(name, f"must name an image that has {needs}")
    return text


# ---------------------------------------------------------------- numbers and booleans


def _integer(name: str, value: Any, minimum: int, maximum: int, unit: str = "") -> int:
    """An integer in [minimum, maximum] (a bool is refused, although Python counts it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"must be a whole number{unit}, got {_kind(value)}")
    if not minimum <= value <= maximum:
        raise InvalidInput(name, f"must be between {minimum} and {maximum}{unit}, got {value}")
    return value


def non_negative_int(name: str, value: Any, maximum: int = MAX_COUNT) -> int:
    """An integer in [0, ``maximum``] (a count that may be 0)."""
    return _integer(name, value, 0, maximum)


def positive_int(name: str, value: Any, maximum: int = MAX_COUNT) -> int:
    """An integer in [1, ``maximum``] (a count)."""
    return _integer(name, value, 1, maximum)


def duration(name: str, value: Any, minimum: int = 1, maximum: int = MAX_SECONDS) -> int:
    """Whole seconds in [minimum, maximum] (a timeout, a fault's duration; at most 24 h)."""
    return _integer(name, value, minimum, min(maximum, MAX_SECONDS), " seconds")


def positive_number(name: str, value: Any, maximum: float = MAX_COUNT) -> float:
    """A finite number in (0, ``maximum``]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number, got {_kind(value)}")
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise InvalidInput(name, f"must be > 0 and at most {maximum:g}, got {value}")
    return float(value)


def fraction(name: str, value: Any) -> float:
    """A number in [0, 1] (0 meaning "not given")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise InvalidInput(name, f"must be in (0, 1] (or 0 for not given), got {value}")
    return number


def seconds(name: str, value: Any, minimum: float, maximum: float = MAX_SECONDS) -> float:
    """A number of seconds in [minimum, maximum] (a timeout; an interval, whose minimum
    bounds the rate that follows); never more than 24 h."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number of seconds, got {_kind(value)}")
    number = float(value)
    maximum = min(maximum, MAX_SECONDS)
    if math.isnan(number) or not minimum <= number <= maximum:
        raise InvalidInput(
            name, f"must be between {minimum:g} and {maximum:g} seconds, got {value}"
        )
    return number


def boolean(name: str, value: Any) -> bool:
    """A JSON boolean, or exactly the string ``true`` or ``false`` (what ``--var`` passes).

    Anything else is refused: ``"yes"``, ``"0"``, ``"False "``, 1 (the string "false"
    is truthy in Python, so a plain ``bool()`` would turn it into True)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    shown = f"{value!r:.80}"
    raise InvalidInput(name, f"must be true or false, got {_kind(value)} {shown}")


# ---------------------------------------------------------------- HTTP requests


def http_method(name: str, value: Any) -> str:
    """One of :data:`HTTP_METHODS`."""
    if not isinstance(value, str) or value not in HTTP_METHODS:
        raise InvalidInput(
            name, f"{value!r} is not an HTTP method; expected one of {', '.join(HTTP_METHODS)}"
        )
    return value


def http_scheme(name: str, value: Any) -> str:
    """``http`` or ``https``."""
    if value not in ("http", "https"):
        raise InvalidInput(name, f"must be http or https, got {value!r}")
    return str(value)


def port(name: str, value: Any) -> int:
    """A port number, 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(name, f"must be a port number (1-65535), got {value!r}")
    return value


def url_path(name: str, value: Any) -> str:
    """A URL's path: starts with ``/``, no spaces or control characters."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or len(value) > MAX_PATH
        or not _printable(value)
    ):
        raise InvalidInput(name, f"must be a path starting with '/', got {value!r:.80}")
    return value


def http_url(name: str, value: Any) -> str:
    """An http(s) URL with a host, no credentials, no spaces or control characters."""
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a URL string, got {_kind(value)}")
    if len(value) > MAX_PATH:
        raise InvalidInput(name, f"is longer than {MAX_PATH} characters: {value[:80]!r}...")
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


def _printable(text: str) -> bool:
    return all(c.isprintable() and not c.isspace() for c in text)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
