"""Input checks for activities: run them all before any API call or side effect.

Each check takes the input's name (as the experiment spells it) and its value,
returns the value with its proper type, or raises :class:`InvalidInput` naming it.
"""

import logging
import re
from typing import Any

from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "dns_label",
    "dns_subdomain",
    "image",
    "label_selector",
    "non_negative_int",
    "optional_dns_label",
]

logger = logging.getLogger("chaostoolkit")

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# One requirement of a label selector: key, key=value, key!=value, key in (a,b), !key ...
_SELECTOR_TERM = re.compile(
    r"!?[A-Za-z0-9][-A-Za-z0-9_./]*"
    r"(\s*(=|==|!=)\s*[-A-Za-z0-9_.]*"
    r"|\s+(in|notin)\s+\(\s*[-A-Za-z0-9_.]*(\s*,\s*[-A-Za-z0-9_.]*)*\s*\))?"
)


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {type(value).__name__}")
    return value


def dns_label(name: str, value: Any) -> str:
    """A namespace-style name: RFC 1123 label, at most 63 characters."""
    text = _string(name, value)
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise InvalidInput(
            name, f"{text!r} is not a valid name (lowercase letters, digits, '-'; max 63)"
        )
    return text


def dns_subdomain(name: str, value: Any) -> str:
    """An object name (ConfigMap, Secret, ...): RFC 1123 subdomain, at most 253 characters."""
    text = _string(name, value)
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise InvalidInput(
            name, f"{text!r} is not a valid object name (lowercase letters, digits, '-', '.')"
        )
    return text


def non_negative_int(name: str, value: Any) -> int:
    """An integer >= 0 (a bool is refused, although Python counts it as an int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"must be an integer, got {type(value).__name__}")
    if value < 0:
        raise InvalidInput(name, f"must be >= 0, got {value}")
    return value


def label_selector(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """A Kubernetes label selector such as ``app=istiod,tier!=canary``."""
    text = _string(name, value).strip()
    if not text:
        if allow_empty:
            return text
        raise InvalidInput(name, "must not be empty (it would select every pod)")
    for term in _split_terms(text):
        if not _SELECTOR_TERM.fullmatch(term.strip()):
            raise InvalidInput(name, f"{text!r} is not a label selector (bad term {term!r})")
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


def optional_dns_label(name: str, value: Any) -> str:
    """A DNS label, or "" for "not given" (names of baselines kept within a run)."""
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {type(value).__name__}")
    return dns_label(name, value) if value else ""


def image(name: str, value: Any, needs: str) -> str:
    """A container image reference for a pod the pack starts; ``needs`` says what it must hold."""
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise InvalidInput(name, f"must name an image that has {needs}")
    return value.strip()
