"""Summaries of measured latencies and the gateway/baseline ratio (pure)."""

from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies: list[float]) -> dict:
    return {"count": len(latencies), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None}


def ratio(gateway: float | None, baseline: float | None) -> float | None:
    """gateway / baseline, or None when either is missing or the baseline is zero."""
    if gateway is None or baseline is None or baseline == 0:
        return None
    return gateway / baseline


def median_by_last(rounds: list[dict]) -> dict:
    """The round with the median time to its last answer (or boot); a round with failures, or with no
    time at all, ranks slowest. Its failures are those of every round together, so none is hidden."""
    ranked = sorted(rounds, key=lambda r: (bool(r["failures"]) or r["last"] is None, r["last"] or 0.0))
    median = dict(ranked[(len(ranked) - 1) // 2])
    failures: dict = {}
    for r in rounds:
        for kind, count in r["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    median["failures"] = failures
    return median
