"""Traffic: the default version takes what the others leave; route weights are integers summing to 100."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.spec.traffic import EXACT, default_index, effective_shares, percentile, route_weights


def D(*values: str | int) -> list[Decimal]:
    return [Decimal(str(v)) for v in values]


def exact_sum(values: list[Decimal]) -> Decimal:
    with localcontext(EXACT):
        return sum(values, Decimal(0))


# --- the default-version rule --------------------------------------------------------------------

def test_microsoft_example_first_step() -> None:
    """Version a (default) 20%, version b 10% -> a gets 90%, b 10%."""
    versions = [{"version_name": "a", "is_default": True, "traffic_percentile": 20},
                {"version_name": "b", "traffic_percentile": 10}]
    assert effective_shares(versions) == D(90, 10)


def test_microsoft_example_second_step() -> None:
    """b becomes the default with 40% while a keeps 20% -> a 20%, b 80%."""
    versions = [{"version_name": "a", "traffic_percentile": 20},
                {"version_name": "b", "is_default": True, "traffic_percentile": 40}]
    assert effective_shares(versions) == D(20, 80)


def test_first_version_is_the_default_when_none_is_flagged() -> None:
    versions = [{"traffic_percentile": 50}, {"traffic_percentile": 30}, {}]
    assert default_index(versions) == 0
    assert effective_shares(versions) == D(70, 30, 0)


def test_is_default_false_does_not_make_a_default() -> None:
    assert default_index([{"is_default": False}, {"is_default": False}]) == 0


def test_single_version_takes_everything() -> None:
    assert effective_shares([{"traffic_percentile": 5}]) == D(100)


def test_fractional_percentiles_are_exact() -> None:
    versions = [{}, {"traffic_percentile": 0.1}, {"traffic_percentile": 0.2}]
    assert effective_shares(versions) == D("99.7", "0.1", "0.2")


def test_tiny_percentiles_keep_the_sum_exact() -> None:
    """Found by hypothesis: with 28-digit rounding the shares no longer summed to exactly 100."""
    versions = [{}, {"traffic_percentile": 1.757908877442388e-14}, {"traffic_percentile": 1.757908877442388e-14}]
    shares = effective_shares(versions)
    assert exact_sum(shares) == 100
    assert shares[1:] == D("1.757908877442388E-14", "1.757908877442388E-14")
    assert route_weights(shares) == [100, 0, 0]


def test_percentile_of_unset_or_null_is_zero() -> None:
    assert percentile({}) == 0 and percentile({"traffic_percentile": None}) == 0
    assert percentile({"traffic_percentile": 12.5}) == Decimal("12.5")


# --- route weights --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("shares", "weights"),
    [
        (D(90, 10), [90, 10]),
        (D("33.3", "33.3", "33.4"), [33, 33, 34]),
        (D("33.4", "33.3", "33.3"), [34, 33, 33]),
        (D("33.33", "33.33", "33.34"), [33, 33, 34]),
        (D("12.6", "12.6", "74.8"), [13, 12, 75]),
        (D("0.4", "0.4", "99.2"), [1, 0, 99]),
        (D("0.6", "0.6", "98.8"), [1, 0, 99]),
        (D("12.25", "12.25", "12.25", "63.25"), [13, 12, 12, 63]),
    ],
)
def test_largest_remainder_rounding(shares: list[Decimal], weights: list[int]) -> None:
    assert route_weights(shares) == weights


@pytest.mark.parametrize(
    ("shares", "weights"),
    [
        (D("33.5", "33.5", "33"), [34, 33, 33]),
        (D("33", "33.5", "33.5"), [33, 34, 33]),
        (D("24.5", "25.5", "24.5", "25.5"), [25, 26, 24, 25]),
        (D("0.5", "0.5", "99"), [1, 0, 99]),
    ],
)
def test_ties_go_to_the_earlier_version(shares: list[Decimal], weights: list[int]) -> None:
    assert route_weights(shares) == weights


def test_zero_shares_never_get_weight() -> None:
    assert route_weights(D(0, "99.5", "0.5", 0)) == [0, 100, 0, 0]
    assert route_weights(D(0, "0.5", "0.5", 99, 0)) == [0, 1, 0, 99, 0]


@pytest.mark.parametrize("shares", [D(50, 40), D(60, 50), D(110, -10), D("-0.5", "100.5")],
                         ids=["below-100", "above-100", "negative", "negative-fraction"])
def test_shares_must_be_non_negative_and_sum_to_100(shares: list[Decimal]) -> None:
    with pytest.raises(ValueError, match="non-negative and sum to 100"):
        route_weights(shares)


# --- properties -------------------------------------------------------------------------------------

percentiles = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.decimals(min_value=0, max_value=100, places=3).map(float),
)


@st.composite
def endpoint_versions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1 to 6 versions whose non-default percentiles sum to at most 100 (what validation lets through)."""
    count = draw(st.integers(min_value=1, max_value=6))
    versions: list[dict[str, Any]] = [{"traffic_percentile": draw(percentiles)} for _ in range(count)]
    default = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=count - 1)))
    if default is not None:
        versions[default]["is_default"] = True
    index = default_index(versions)
    others = [percentile(v) for i, v in enumerate(versions) if i != index]
    while exact_sum(others) > 100:  # scale the others down until validation would accept them
        for i, v in enumerate(versions):
            if i != index:
                v["traffic_percentile"] = v["traffic_percentile"] / 2
        others = [percentile(v) for i, v in enumerate(versions) if i != index]
    return versions


@settings(max_examples=300, deadline=None)
@given(endpoint_versions())
def test_weights_are_integers_summing_to_100_each_within_1_of_its_share(versions: list[dict[str, Any]]) -> None:
    shares = effective_shares(versions)
    assert exact_sum(shares) == 100 and all(s >= 0 for s in shares)
    weights = route_weights(shares)
    assert all(type(w) is int for w in weights)
    assert sum(weights) == 100
    for share, weight in zip(shares, weights):
        assert abs(weight - share) < 1
        if share == 0:
            assert weight == 0


@settings(max_examples=300, deadline=None)
@given(endpoint_versions())
def test_default_share_is_100_minus_the_others(versions: list[dict[str, Any]]) -> None:
    shares = effective_shares(versions)
    index = default_index(versions)
    others = [percentile(v) for i, v in enumerate(versions) if i != index]
    assert shares[index] + exact_sum(others) == 100
    assert [s for i, s in enumerate(shares) if i != index] == others
    assert shares[index] >= 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6).filter(lambda xs: sum(xs) > 0))
def test_largest_remainder_rounds_every_share_down_or_up(raw: list[int]) -> None:
    """Shares in hundredths of a percent: weights are floor or floor+1; ties favour the earlier version."""
    total = sum(raw)
    shares = [Decimal(x) * 100 / total for x in raw]
    with localcontext(EXACT):
        shares[-1] = Decimal(100) - sum(shares[:-1], Decimal(0))
    if shares[-1] < 0:
        return
    weights = route_weights(shares)
    floors = [int(s) for s in shares]
    assert sum(weights) == 100
    assert all(w - f in (0, 1) for w, f in zip(weights, floors))
    remainders = [s - f for s, f in zip(shares, floors)]
    for i in range(len(shares)):
        for j in range(len(shares)):
            if weights[j] > floors[j] and weights[i] == floors[i]:  # j got a point, i did not
                assert remainders[j] > remainders[i] or (remainders[j] == remainders[i] and j < i)
