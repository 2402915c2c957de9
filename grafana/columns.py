"""Panels of one column, a feature or a prediction output, live against its baseline.

    >>> from promdrift.promql import RulesConfig
    >>> from promdrift.promql.expr import OUTPUT
    >>> from .board import Board
    >>> b = Board(RulesConfig(), "promdrift-x", "promdrift / X", ["output"])
    >>> ks_panel(b, OUTPUT, "PromdriftPredictionDrift").build().targets[0].expr
    'model_output:promdrift_prediction_ks_statistic:${window:text}{model="$model",
     baseline=~"$baseline", output="$output"}'

The feature detail and the predictions dashboards show the same statistics of their column
(``promdrift.promql.expr.FEATURE`` or ``OUTPUT``): the bars are computed at query time with
the fragments the rules are built from, the time series read the rules of that kind.
"""

from __future__ import annotations

from typing import Any

from promdrift.promql.expr import Expressions, Kind

from .board import WINDOW_RANGE, Board
from .panels import bars, plus_infinity, query, table_query, timeseries

__all__ = ["bins_panel", "cdf_panel", "shares_panel", "ks_panel", "tvd_panel", "counts_panel"]

_LIVE_BASE = ["live", "baseline"]


def _hidden(b: Board, k: Kind) -> list:
    return ["model", k.key, *b.config.keep_labels]


def _rule(b: Board, k: Kind, metric: str) -> str:
    return b.rule(f"{k.level}:{metric}", k.key)


def bins_panel(b: Board, k: Kind, what: str, **size: Any):
    """Live vs baseline probability of each baseline bin (floored as PSI floors them)."""
    e = b.e(k.key)
    return bars(
        "Distribution per bin: live vs baseline",
        f"Probability of each bin (lower, upper] of the baseline's equal-mass quantile bins of "
        f"{what}, live over the window against training (x: the bin's upper edge; empty bins "
        f"show the {Expressions.num(b.config.thresholds.psi_bin_floor)} floor used by PSI). "
        f"Empty for categorical {k.key}s.",
        [table_query(plus_infinity(e.live_bin_ratio(k, WINDOW_RANGE), "upper")),
         table_query(plus_infinity(e.baseline_bin_ratio(k), "upper"))],
        _LIVE_BASE, x="upper", numeric_x=True, hidden=_hidden(b, k), **size)


def cdf_panel(b: Board, k: Kind, what: str, **size: Any):
    """Live vs baseline CDF at every bucket edge."""
    e = b.e(k.key)
    return bars(
        "Cumulative distribution: live vs baseline",
        f"CDF of {what} at every bucket edge (le), live over the window against training; "
        f"the KS statistic is the largest vertical gap.",
        [table_query(plus_infinity(e.live_cdf(k, WINDOW_RANGE), "le")),
         table_query(plus_infinity(e.baseline_cdf(k), "le"))],
        _LIVE_BASE, x="le", numeric_x=True, hidden=_hidden(b, k), **size)


def shares_panel(b: Board, k: Kind, title: str, what: str, **size: Any):
    """Live vs baseline share of each category / class."""
    e = b.e(k.key)
    return bars(title, f"Share of {what}, live over the window against training. Empty for "
                       f"numeric {k.key}s.",
                [table_query(e.category_ratio(k, WINDOW_RANGE)),
                 table_query(e.baseline_category_ratio(k))],
                _LIVE_BASE, x=k.cat_label, hidden=_hidden(b, k), **size)


def ks_panel(b: Board, k: Kind, alert: str, **size: Any):
    """The KS statistic against its critical value and the minimum effect size."""
    t, n = b.config.thresholds, Expressions.num
    return timeseries(
        "KS statistic vs critical value",
        f"Kolmogorov-Smirnov statistic (max over bucket edges of |live CDF - baseline CDF|) "
        f"and its two-sample critical value c * sqrt(1/n + 1/m). {alert} needs KS above both "
        f"the critical value and the minimum effect size {n(t.ks_min_effect)} (dashed line), "
        f"with at least {n(t.min_samples)} values in the window.",
        [query(_rule(b, k, f"{k.ks_rule}:{{w}}"), "KS statistic"),
         query(_rule(b, k, f"{k.crit_rule}:{{w}}"), "critical value")],
        threshold=(t.ks_min_effect, "orange"), dashed={"critical value": "red"}, min_val=0,
        **size)


def tvd_panel(b: Board, k: Kind, title: str, alert: str, **size: Any):
    """The total variation distance, its no-drift value and their difference."""
    t, n = b.config.thresholds, Expressions.num
    tvd, noise = _rule(b, k, f"{k.tvd_rule}:{{w}}"), _rule(b, k, f"{k.noise_rule}:{{w}}")
    return timeseries(
        title,
        f"0.5 * sum over {k.cat_label} values of |live share - baseline share| (TVD); the "
        f"no-drift TVD that sampling noise alone gives at this window count and baseline size; "
        f"and their difference, which {alert} compares with {n(t.tvd_max)} (dashed line).",
        [query(tvd, "TVD"), query(noise, "no-drift TVD (noise)"),
         query(f"{tvd}\n  - {noise}", "TVD - noise")],
        threshold=t.tvd_max, dashed={"no-drift TVD (noise)": "blue"}, min_val=0, **size)


def counts_panel(b: Board, k: Kind, **size: Any):
    """n, the window's valid values, and m, the baseline's."""
    return timeseries(
        "Sample counts",
        f"n: valid values of the {k.key} in the window (all replicas); m: training values of "
        f"the baseline.",
        [query(_rule(b, k, f"{k.count_rule}:increase{{w}}"), "n (window)"),
         query(b.e(k.key).baseline_count(k), "m (baseline)")], **size)
