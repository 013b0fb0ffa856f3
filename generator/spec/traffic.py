"""Traffic rules of an AksEndpoint: the default version takes what the others leave.

`effective_shares` applies the default-version rule; `route_weights` turns the
shares into the integer weights an Istio route needs (summing to exactly 100)
with the largest-remainder method: every version first gets the whole part of
its share, then the points still missing go, one each, to the versions with
the largest fractional parts, ties going to the version listed first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import MAX_PREC, Context, Decimal, localcontext
from typing import Any

HUNDRED = Decimal(100)
EXACT = Context(prec=MAX_PREC)
"""Decimal context for sums and differences of percentiles: they never round, so shares add up to 100."""


def default_index(versions: Sequence[Mapping[str, Any]]) -> int:
    """Index of the default version: the one flagged is_default, else the first."""
    for index, version in enumerate(versions):
        if version.get("is_default") is True:
            return index
    return 0


def percentile(version: Mapping[str, Any]) -> Decimal:
    """A version's traffic_percentile as an exact decimal (0 when unset)."""
    return Decimal(str(version.get("traffic_percentile") or 0))


def effective_shares(versions: Sequence[Mapping[str, Any]]) -> list[Decimal]:
    """Each version's share of traffic in percent; the default gets 100 minus the others."""
    default = default_index(versions)
    shares = [percentile(v) for v in versions]
    with localcontext(EXACT):
        shares[default] = HUNDRED - sum((s for i, s in enumerate(shares) if i != default), Decimal(0))
    return shares


def route_weights(shares: Sequence[Decimal]) -> list[int]:
    """Integer weights summing to 100 (largest remainder, ties to the earlier version)."""
    with localcontext(EXACT):
        if any(s < 0 for s in shares) or sum(shares, Decimal(0)) != HUNDRED:
            raise ValueError(f"shares must be non-negative and sum to 100, got {list(shares)}")
        weights = [int(s) for s in shares]
        missing = 100 - sum(weights)
        remainders = [s - w for s, w in zip(shares, weights)]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:missing]:
        weights[index] += 1
    return weights
