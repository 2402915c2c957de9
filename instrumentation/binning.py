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
    ('2.5e+06', '+Inf')
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

__all__ = [
    "quantile_edges",
    "round_edges",
    "format_le",
    "bin_index",
    "bin_counts",
    "ks_statistic",
    "ks_c_alpha",
    "ks_critical_value",
    "psi",
    "total_variation",
    "C_ALPHA_05",
]

#: c(alpha) of the two-sample Kolmogorov-Smirnov critical value at alpha = 0.05, rounded to
#: three decimals (``ks_c_alpha(0.05)`` is 1.35810).
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
    """The one and only label formatting of a bucket edge, for baseline and live alike.

    Exactly the string Prometheus 3 stores for a scraped ``le`` (it parses the label of a
    histogram bucket and formats it again): Go's shortest round-trip ``%g``, which switches
    to an exponent from 1e+06 and below 1e-04, with ``.0`` appended when the result has
    neither a point nor an exponent; ``+Inf`` / ``-Inf`` for infinities. Prometheus 2 and
    VictoriaMetrics keep the exposed string, so every engine sees the same ``le``, and a
    gauge label holding an edge (``upper``, ``lower``) can be joined with it as a string.
    ``float(format_le(x)) == x`` for every finite ``x``::

        >>> [format_le(x) for x in (0.25, 5.0, 100000.0, 1068000.0, 1e16, 1e-05, -3.0)]
        ['0.25', '5.0', '100000.0', '1.068e+06', '1e+16', '1e-05', '-3.0']
    """
    edge = float(edge)
    if math.isinf(edge):
        return "+Inf" if edge > 0 else "-Inf"
    if edge != edge:
        return "NaN"
    # The shortest round-trip digits, as Python's repr and Go's strconv both find them.
    digits = repr(abs(edge))
    if "e" in digits:
        digits, _, e = digits.partition("e")
        exponent = int(e)
    else:
        exponent = None
    sign = "-" if math.copysign(1.0, edge) < 0 else ""
    ints, _, frac = digits.partition(".")
    if exponent is None:  # repr gave positional digits "ints.frac": normalise to d.ddd e X
        if frac == "0":
            frac = ""
        raw = (ints + frac).lstrip("0")
        if not raw:  # zero
            return sign + "0.0"
        lead_zeros = len(ints + frac) - len((ints + frac).lstrip("0"))
        exponent = len(ints) - 1 - lead_zeros
        sig = raw.rstrip("0")
    else:
        sig = (ints + frac).rstrip("0") or "0"
    # Go's 'g' with the shortest precision: exponent form when exp < -4 or exp >= 6.
    if exponent < -4 or exponent >= 6:
        body = sig[0] + ("." + sig[1:] if len(sig) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent >= 0:
        whole = sig[:exponent + 1].ljust(exponent + 1, "0")
        rest = sig[exponent + 1:]
    else:
        whole, rest = "0", "0" * (-exponent - 1) + sig
    return f"{sign}{whole}.{rest or '0'}"


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


def ks_c_alpha(alpha: float = 0.05, tests: int = 1) -> float:
    """c(alpha) of the two-sample KS critical value, family-wise over ``tests`` tests.

        >>> round(ks_c_alpha(0.05), 4)                # one test: the classic 1.358
        1.3581
        >>> round(ks_c_alpha(0.01, tests=100), 3)     # a model with 100 numeric features
        2.225

    ``sqrt(-ln(alpha / (2 * tests)) / 2)``: each of ``tests`` tests runs at level
    ``alpha / tests`` (Bonferroni), so the probability that any of them exceeds its critical
    value when nothing drifted is at most ``alpha``, however the features are correlated.
    The formula solves ``2 exp(-2 c^2) = alpha / tests``, the first term of the tail of the
    asymptotic Kolmogorov distribution ``2 sum_k (-1)^(k-1) exp(-2 k^2 c^2)``; the exact
    quantile (``scipy.stats.kstwobign.isf(alpha / tests)``) is smaller by less than 3e-6
    for ``alpha / tests <= 0.05``, the tail at this c being ``alpha / tests`` times
    ``1 - (alpha / (2 tests))^3``.
    """
    if (isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating))
            or not 0 < alpha < 1):
        raise ValueError(f"alpha must be a probability strictly between 0 and 1, got {alpha!r}")
    if isinstance(tests, bool) or not isinstance(tests, (int, np.integer)) or tests < 1:
        raise ValueError(f"tests (the number of features tested together) must be an "
                         f"integer >= 1, got {tests!r}")
    return math.sqrt(-math.log(alpha / (2 * int(tests))) / 2)


def ks_critical_value(n: float, m: float, c_alpha: Optional[float] = None, *,
                      alpha: Optional[float] = None, tests: int = 1) -> float:
    """Two-sample KS critical value ``c * sqrt((n + m) / (n * m))``, ``inf`` without data.

        >>> round(ks_critical_value(500, 10_000), 4)                       # c = 1.358
        0.0622
        >>> round(ks_critical_value(500, 10_000, alpha=0.01, tests=1000), 4)
        0.1132

    ``n`` is the live window's count and ``m`` the baseline's. ``c`` is ``c_alpha`` when
    given, else :func:`ks_c_alpha` ``(alpha, tests)`` (the family-wise value for a model
    with ``tests`` numeric features; ``alpha`` defaults to 0.05), and :data:`C_ALPHA_05`
    when none of the three is given.
    """
    if c_alpha is None:
        if alpha is None and tests == 1:
            c_alpha = C_ALPHA_05
        else:
            c_alpha = ks_c_alpha(0.05 if alpha is None else alpha, tests)
    elif alpha is not None or tests != 1:
        raise ValueError("give either c_alpha or alpha and tests, not both")
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
