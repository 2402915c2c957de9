"""``promdrift-feature``: one feature of one model, live against its baseline.

    >>> from promdrift.promql import RulesConfig
    >>> d = feature(RulesConfig())
    >>> [p["title"] for p in d["panels"] if p["type"] == "row"]
    ['Numeric feature: live vs baseline (baseline $baseline)',
     'Categorical feature: live vs baseline (baseline $baseline)',
     'Invalid values and traffic (baseline $baseline)']

The bar charts compute the live bin and category shares and the CDFs at query time, with the
fragments the recording rules are built from (``Expressions.live_bin_ratio`` ...), so they
show exactly what the KS, PSI and TVD rules compare.
"""

from __future__ import annotations

from typing import Any, Dict

from promdrift.promql.config import RulesConfig
from promdrift.promql.expr import FEATURE, Expressions

from .board import Board
from .columns import bins_panel, cdf_panel, counts_panel, ks_panel, shares_panel, tvd_panel
from .panels import query, timeseries

__all__ = ["feature"]

RATE = "$__rate_interval"


def feature(config: RulesConfig) -> Dict[str, Any]:
    t, n = config.thresholds, Expressions.num
    b = Board(config, "promdrift-feature", "promdrift / Feature detail", ["feature"],
              description="One feature of one model: live distribution against its baseline")
    e = b.e("feature")

    def rule(template: str) -> str:
        return b.rule(template, "feature")

    b.row("Numeric feature: live vs baseline", [
        bins_panel(b, FEATURE, "the feature", width=24, height=10),
        ks_panel(b, FEATURE, "PromdriftFeatureDrift", height=9),
        timeseries("PSI",
                   f"Population stability index over the baseline bins; above "
                   f"{n(t.psi_max)} (dashed line) is a large shift.",
                   [query(rule("model_feature:promdrift_psi:{w}"), "PSI")],
                   threshold=t.psi_max, min_val=0, height=9),
        cdf_panel(b, FEATURE, "the feature", height=9),
        counts_panel(b, FEATURE, height=9),
    ])

    unseen = rule("model_feature:promdrift_category_unseen:ratio{w}")
    b.row("Categorical feature: live vs baseline", [
        shares_panel(b, FEATURE, "Category shares: live vs baseline",
                     "each training top-K category and __other__ (values never seen in "
                     "training)", width=24),
        tvd_panel(b, FEATURE, "Total variation distance", "PromdriftCategoricalDrift"),
        timeseries("Unseen category share (__other__)",
                   f"Live share of values outside the training top-K, its training share, and "
                   f"the excess that PromdriftUnseenCategoryShareHigh compares with "
                   f"{n(t.unseen_share_excess)} (dashed line).",
                   [query(unseen, "live"), query(e.baseline_unseen_ratio(), "baseline"),
                    query(f"{unseen}\n- on ({b.by('model', 'feature')})\n"
                          f"({e.baseline_unseen_ratio()})", "live - baseline")],
                   unit="percentunit", threshold=t.unseen_share_excess,
                   dashed={"baseline": "blue"}),
    ])

    b.row("Invalid values and traffic", [
        timeseries("Invalid share by reason",
                   f"Share of all values of the feature that were not binned, by reason "
                   f"(missing, null, nan, inf, wrong_type); PromdriftInvalidValuesHigh fires "
                   f"when all reasons together exceed {n(t.invalid_ratio_max)} (dashed line) "
                   f"over {config.fast_window}.",
                   [query(rule("model_feature_reason:promdrift_feature_invalid:ratio_rate{w}"),
                          "{{reason}}")],
                   unit="percentunit", stacked=True, threshold=t.invalid_ratio_max, min_val=0),
        timeseries("Values / s",
                   "Valid and invalid values of the feature per second, all replicas.",
                   [query(e.valid_rate(FEATURE, RATE), "valid"),
                    query(e.invalid_rate(RATE, by_reason=False), "invalid")], stacked=True),
    ])
    b.alerts_annotation("Drift alerts", b.alerts("Promdrift.*"),
                        "{{model}} {{feature}}{{output}}")
    return b.build()
