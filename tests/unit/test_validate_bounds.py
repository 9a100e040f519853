"""The floor's checks: one per kind of input, with its bounds (pure)."""

import math
from typing import Any

import pytest

from chaosmesh_sec import _validate
from chaosmesh_sec.errors import InvalidInput


@pytest.mark.parametrize(
    ("value", "want"), [(True, True), (False, False), ("true", True), ("false", False)]
)
def test_booleans_are_json_booleans_or_exactly_true_or_false(value: Any, want: bool) -> None:
    assert _validate.boolean("b", value) is want


@pytest.mark.parametrize(
    "value", ["yes", "0", "1", "False ", " true", "TRUE", "", 0, 1, None, [], 0.0]
)
def test_anything_else_is_not_a_boolean(value: Any) -> None:
    with pytest.raises(InvalidInput, match=r"'b'.*must be true or false"):
        _validate.boolean("b", value)


@pytest.mark.parametrize("value", [0, -5, 86401, 10**13, 1.5, math.nan, 1e308, "60", True, None])
def test_a_duration_is_whole_seconds_up_to_24_hours(value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        _validate.duration("timeout_seconds", value)
    assert info.value.name == "timeout_seconds"


def test_duration_messages_agree_whatever_side_is_missed() -> None:
    messages = []
    for value in (-5, 0, 86401):
        with pytest.raises(InvalidInput) as info:
            _validate.duration("d", value)
        messages.append(info.value.problem)
    assert messages == [f"must be between 1 and 86400 seconds, got {v}" for v in (-5, 0, 86401)]
    assert _validate.duration("d", 86400) == 86400
    assert _validate.duration("d", 0, minimum=0) == 0
    assert _validate.duration("d", 3600, maximum=10**9) == 3600
    with pytest.raises(InvalidInput):
        _validate.duration("d", 86401, maximum=10**9)  # never more than 24 h


@pytest.mark.parametrize("value", [10**13, -1, math.inf, math.nan, 1e308])
def test_counts_and_intervals_are_bounded(value: Any) -> None:
    for check in (_validate.positive_int, _validate.non_negative_int, _validate.positive_number):
        with pytest.raises(InvalidInput):
            check("n", value)
    with pytest.raises(InvalidInput):
        _validate.seconds("interval_seconds", value, 0.1)


def test_an_interval_has_a_floor_where_a_rate_follows() -> None:
    assert _validate.seconds("interval_seconds", 0.1, 0.1) == 0.1
    with pytest.raises(InvalidInput, match=r"between 0\.1 and 86400 seconds"):
        _validate.seconds("interval_seconds", 0.001, 0.1)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (_validate.label_selector, "a" * 5000),
        (_validate.image, "img:" + "a" * 5000),
        (_validate.word, "a" * 5000),
        (_validate.word, "two words"),
        (_validate.file_or_name, "a" * 300),
        (_validate.file_or_name, "dir/\x00"),
        (_validate.optional_dns_subdomain, None),
        (_validate.optional_dns_label, 5),
        (_validate.optional_label_selector, []),
        (_validate.optional_spiffe_uri, "https://x"),
    ],
)
def test_strings_are_bounded_and_typed(check: Any, value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        check("s", value) if check is not _validate.image else check("s", value, "sh")
    assert len(str(info.value)) < 400  # an over-long input is not echoed whole


def test_optional_strings_accept_not_given() -> None:
    assert _validate.optional_dns_subdomain("s", "") == ""
    assert _validate.optional_label_selector("s", " ") == ""
    assert _validate.optional_spiffe_uri("s", "") == ""
    assert _validate.optional_spiffe_uri("s", "spiffe://td/ns/a/sa/b") == "spiffe://td/ns/a/sa/b"
