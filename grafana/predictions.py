"""``promdrift-predictions``: one prediction output of one model, live against training.

    >>> from promdrift.promql import RulesConfig
    >>> d = predictions(RulesConfig())
    >>> [p["title"] for p in d["panels"] if p["type"] == "row"]
    ['Categorical output: predicted classes (baseline $baseline)',
     'Numeric output: predicted values (baseline $baseline)', 'Traffic (baseline $baseline)']
"""

from __future__ import annotations

from typing import Any, Dict

from promdrift.promql.config import RulesConfig
from promdrift.promql.expr import OUTPUT

from .board import Board
from .columns import bins_panel, cdf_panel, counts_panel, ks_panel, shares_panel, tvd_panel
from .panels import query, timeseries

__all__ = ["predictions"]

RATE = "$__rate_interval"


def predictions(config: RulesConfig) -> Dict[str, Any]:
    b = Board(config, "promdrift-predictions", "promdrift / Predictions", ["output"],
              description="One prediction output of one model against its training-time "
                          "distribution")
    e = b.e("output")

    b.row("Categorical output: predicted classes", [
        shares_panel(b, OUTPUT, "Class shares: live vs baseline", "each predicted class"),
        timeseries("Class shares over time",
                   "Share of each predicted class per rate interval (the bars on the left and "
                   "the TVD below cover the whole window).",
                   [query(e.category_ratio(OUTPUT, RATE), "{{class}}")],
                   unit="percentunit", stacked=True, min_val=0, max_val=1, height=9),
        tvd_panel(b, OUTPUT, "Class mix: total variation distance",
                  "PromdriftPredictionClassDrift", width=24),
    ])

    b.row("Numeric output: predicted values", [
        bins_panel(b, OUTPUT, "the predicted value"),
        cdf_panel(b, OUTPUT, "the predicted value"),
        ks_panel(b, OUTPUT, "PromdriftPredictionDrift", height=9),
        counts_panel(b, OUTPUT, height=9),
    ])

    b.row("Traffic", [
        timeseries("Predictions / s",
                   "Predicted values per second (numeric histogram count or class counter), "
                   "all replicas.", [query(e.valid_rate(OUTPUT, RATE), "{{output}}")]),
        timeseries("Invalid predictions / s by reason",
                   "Prediction values that were missing, null, NaN, infinite or of the wrong "
                   "type.",
                   [query(f"sum by ({b.by('model', 'output', 'reason')}) "
                          f"(rate({e.sel(OUTPUT.invalid)}[{RATE}]))", "{{reason}}")],
                   stacked=True),
    ])
    b.alerts_annotation("Drift alerts", b.alerts("Promdrift.*"),
                        "{{model}} {{feature}}{{output}}")
    return b.build()
