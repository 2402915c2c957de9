"""Binning and drift statistics: plain numpy, no Prometheus import.

The training side (``Baseline.fit``) and the serving side (``DriftMonitor``) both bin with
:func:`bin_index`, and every bucket label is produced by :func:`format_le`, so a baseline
bucket and a live bucket for the same edge always carry the same ``le`` string::

    >>> import numpy as np
    >>> edges = quantile_edges(np.arange(100.0), bins=4)
    >>> edges.tolist()
    [24.0, 49.0, 74.0]
    >>> bin_counts(edges, np.arange(100.0)).tolist()
    [25, 25, 25, 25]
    >>> format_le(2_500_000.0), format_le(float("inf"))
    ('2500000.0', '+Inf')
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "quantile_edges",
    "round_edges",
    "format_le",
    "bin_index",
    "bin_counts",
    "ks_statistic",
    "ks_critical_value",
    "psi",
    "total_variation",
    "C_ALPHA_05",
]

#: c(alpha) of the two-sample Kolmogorov-Smirnov critical value at alpha = 0.05.
C_ALPHA_05 = 1.358

#: Probability floor used for empty bins in PSI (the same value as the PromQL rules).
PSI_FLOOR = 1e-4


def round_edges(edges: np.ndarray, min_digits: int = 4) -> np.ndarray:
    """Round edges to the fewest significant digits (at least ``min_digits``) that keep
    every distinct edge distinct, so bucket labels stay short.

    The returned floats are exactly what their labels parse back to.
    """
    edges = np.unique(np.asarray(edges, dtype=np.float64))
    if edges.size == 0:
        return edges
    for digits in range(min_digits, 18):
        rounded = np.array([float(f"{e:.{digits}g}") for e in edges.tolist()])
        if np.unique(rounded).size == edges.size:
            return rounded
    return edges


def quantile_edges(values: np.ndarray, bins: int = 20) -> np.ndarray:
    """Interior bucket edges at the ``1/bins … (bins-1)/bins`` quantiles of ``values``.

    Edges are actual data values (inverted-CDF quantiles), rounded by :func:`round_edges`
    and deduplicated, so a discrete column (say, a year) gets one edge per distinct value
    instead of repeated or interpolated ones. Deterministic: no sampling. ``values`` must be
    finite and non-empty. Together with the implicit ``+Inf`` bucket this gives at most
    ``bins`` buckets.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot compute edges of an empty column")
    q = np.arange(1, bins) / bins
    edges = np.quantile(values, q, method="inverted_cdf")
    return round_edges(edges)


def format_le(edge: float) -> str:
    """The one and only label formatting of a bucket edge.

    Python's shortest round-trip ``repr`` (``float(format_le(x)) == x``), ``+Inf`` and
    ``-Inf`` for infinities. Used for baseline and live series alike.
    """
    edge = float(edge)
    if math.isinf(edge):
        return "+Inf" if edge > 0 else "-Inf"
    return repr(edge)


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bucket index of each value with Prometheus' ``le`` semantics.

    Index ``i`` means ``edges[i-1] < value <= edges[i]``; index ``len(edges)`` is the
    ``+Inf`` bucket. Values must be finite (invalid values are never binned).
    """
    return np.searchsorted(edges, values, side="left")


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Non-cumulative counts per bucket (``len(edges) + 1`` buckets, the last is ``+Inf``)."""
    idx = bin_index(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64))
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def _probabilities(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no observations")
    return counts / total


def ks_statistic(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between two binned samples over the same edges.

    The maximum absolute difference of the two empirical CDFs at the bucket edges. It is a
    lower bound on the exact two-sample KS of the underlying samples, and at most the
    largest single-bin probability of either side below it.
    """
    cdf_a = np.cumsum(_probabilities(counts_a))
    cdf_b = np.cumsum(_probabilities(counts_b))
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_critical_value(n: float, m: float, c_alpha: float = C_ALPHA_05) -> float:
    """Two-sample KS critical value ``c(alpha) * sqrt((n + m) / (n * m))``."""
    if n <= 0 or m <= 0:
        return math.inf
    return c_alpha * math.sqrt((n + m) / (n * m))


def psi(counts_live: np.ndarray, counts_base: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index ``sum((p - q) * ln(p / q))`` with a probability floor."""
    p = np.maximum(_probabilities(counts_live), floor)
    q = np.maximum(_probabilities(counts_base), floor)
    return float(np.sum((p - q) * np.log(p / q)))


def total_variation(counts_live: np.ndarray, counts_base: np.ndarray) -> float:
    """Total variation distance ``0.5 * sum(|p - q|)`` between two category distributions."""
    return float(0.5 * np.sum(np.abs(_probabilities(counts_live) - _probabilities(counts_base))))


def tvd_noise(counts_base: np.ndarray, n: float) -> float:
    """Expected total variation distance between a live sample of ``n`` values and the
    baseline when nothing drifted: ``0.5 * sum(sqrt(q(1 - q))) * sqrt(2/pi * (1/n + 1/m))``
    over the baseline shares ``q`` (``m`` the baseline count). The categorical alerts compare
    ``total_variation - tvd_noise`` with their threshold (promql/rules.yml, the
    ``..._tvd_noise`` rules), since sampling noise alone makes TVD grow with the number of
    categories.

        >>> round(tvd_noise(np.full(50, 200), 1000), 4)   # 50 even categories, m = 10,000
        0.0926
    """
    q = _probabilities(counts_base)
    m = float(np.asarray(counts_base, dtype=np.float64).sum())
    if n <= 0:
        return math.inf
    return float(0.5 * np.sum(np.sqrt(q * (1 - q))) * math.sqrt(2 / math.pi * (1 / n + 1 / m)))
