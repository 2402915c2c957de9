"""``promdrift-outcomes``: quality from delayed labels, bias per facet group, attributions.

    >>> from promdrift.promql import RulesConfig
    >>> d = outcomes(RulesConfig())
    >>> [p["title"] for p in d["panels"] if p["type"] == "row"][:3]
    ['Labels (baseline $baseline)', 'Categorical output: classification quality (baseline $baseline)',
     'Numeric output: regression quality (baseline $baseline)']
"""

from __future__ import annotations

from typing import Any, Dict

from promdrift.promql.config import ALERT_NAMES, RulesConfig
from promdrift.promql.expr import Expressions, indent

from .board import Board
from .panels import bars, query, table, table_query, timeseries

__all__ = ["outcomes", "OUTCOME_ALERTS"]

RATE = "$__rate_interval"
#: The alerts of the outcome monitors, shown as annotations.
OUTCOME_ALERTS = ("PromdriftModelQualityDegraded", "PromdriftBiasDrift",
                  "PromdriftAttributionDrift")
assert set(OUTCOME_ALERTS) <= set(ALERT_NAMES)


def outcomes(config: RulesConfig) -> Dict[str, Any]:
    t, n = config.thresholds, Expressions.num
    b = Board(config, "promdrift-outcomes", "promdrift / Outcomes", ["output", "facet"],
              description="Quality from delayed labels, bias per facet group and feature "
                          "attributions of one model")
    e, eo, ef = b.e(), b.e("output"), b.e("output", "facet")

    def rate(metric: str, *by: str) -> str:
        return f"sum by ({b.by('model', *by)}) (rate({e.sel(metric)}[{RATE}]))"

    def per(labels: str, expr: str) -> str:
        return f"max by ({b.by(*labels.split())}) (\n  {indent(expr, 2)}\n)"

    b.row("Labels", [
        timeseries("Labels joined / s",
                   "Labels joined to their prediction per second (promdrift_quality_labels_total"
                   "), all replicas; the quality panels read the labels received in the window.",
                   [query(rate("promdrift_quality_labels_total"), "joined")], width=8),
        timeseries("Mean label delay",
                   "Mean seconds from a prediction to its label, of the labels joined in each "
                   "interval (promdrift_quality_label_delay_seconds _sum / _count); 0 for a "
                   "label that arrived before its prediction.",
                   [query(f"{rate('promdrift_quality_label_delay_seconds_sum')}\n/\n"
                          f"{rate('promdrift_quality_label_delay_seconds_count')}",
                          "mean delay")], unit="s", width=8),
        timeseries("Pending rows in the label store",
                   "Predictions awaiting their label and labels awaiting their prediction "
                   "(max over replicas: processes sharing one store file report the whole "
                   "store).",
                   [query(f"max by ({b.by('model', 'kind')}) "
                          f"({e.sel('promdrift_quality_pending')})", "{{kind}}")], width=8),
        timeseries("Unmatched and duplicate labels / s",
                   "Labels not counted in quality, by reason (unknown: no prediction with that "
                   "id within the hold time; invalid), and second or later labels for an id "
                   "(ignored).",
                   [query(rate("promdrift_quality_labels_unmatched_total", "reason"),
                          "unmatched {{reason}}"),
                    query(rate("promdrift_quality_labels_duplicate_total"), "duplicate label")],
                   width=8),
        timeseries("Evicted and duplicate predictions / s",
                   "Predictions dropped from the label store before their label came (age: "
                   "older than max_age, count: beyond max_rows), and predictions observed with "
                   "an id already in the store.",
                   [query(rate("promdrift_quality_predictions_evicted_total", "reason"),
                          "evicted {{reason}}"),
                    query(rate("promdrift_quality_predictions_duplicate_total"),
                          "duplicate prediction")], width=8),
        timeseries("Labelled pairs in the window",
                   f"Labels of the output joined in the window (either kind of output); below "
                   f"{n(t.quality_min_labels)} (dashed line) the quality alerts stay silent.",
                   [query(b.rule("model_output:promdrift_quality_labels:increase{w}", "output"),
                          "labelled pairs")], threshold=(t.quality_min_labels, "orange"),
                   min_val=0, width=8),
    ])

    def quality(metric: str) -> str:
        return b.rule(f"model_output:promdrift_quality_{metric}:{{w}}", "output")

    def vs_validation(title: str, what: str, metrics: Dict[str, str], other: str, **kw: Any):
        """Live ``metrics`` (rule name -> legend) against their validation values (dashed)."""
        matcher = f'metric=~"{"|".join(metrics)}"'
        validation = f"max by ({b.by('metric')}) ({eo.sel('promdrift_baseline_quality', matcher)})"
        return timeseries(
            title, f"{what} of the labels joined in the window against the baseline's validation "
                   f"values (promdrift_baseline_quality, dashed). Empty for {other} outputs.",
            [query(quality(m), legend) for m, legend in metrics.items()]
            + [query(validation, "validation {{metric}}")],
            min_val=0, height=9,
            dashed={f"validation {m}": c for m, c in zip(metrics, ("blue", "orange"))}, **kw)

    def degradation(metrics: str) -> str:
        return b.rule("model_output_metric:promdrift_quality_degradation:{w}", "output",
                      extra=[f'metric=~"{metrics}"'])

    def per_class(metric: str) -> str:
        return b.rule(f"model_output_class:promdrift_quality_{metric}:{{w}}", "output")

    b.row("Categorical output: classification quality", [
        vs_validation("Accuracy and macro F1 vs validation", "Live accuracy and macro F1",
                      {"accuracy": "accuracy", "macro_f1": "macro F1"}, "numeric",
                      unit="percentunit", max_val=1),
        timeseries("Degradation vs tolerance",
                   f"Validation minus live accuracy / macro F1; PromdriftModelQualityDegraded "
                   f"fires above {n(t.quality_tolerance)} (dashed line) with at least "
                   f"{n(t.quality_min_labels)} labels in the window.",
                   [query(degradation("accuracy|macro_f1"), "{{metric}}")],
                   threshold=t.quality_tolerance, height=9),
        bars("Per-class precision, recall and F1",
             "Precision (TP / predicted), recall (TP / actual) and F1 of each class over the "
             "window; a class absent as prediction (precision) or label (recall) has no bar.",
             [table_query(per("model output class", per_class(m)))
              for m in ("precision", "recall", "f1")],
             ["precision", "recall", "F1"], x="class",
             hidden=["model", "output", *config.keep_labels]),
        timeseries("Per-class F1 over time",
                   "F1 = 2 TP / (actual + predicted) of each class over the window.",
                   [query(per_class("f1"), "{{class}}")], unit="percentunit", min_val=0,
                   max_val=1, height=9),
    ])

    b.row("Numeric output: regression quality", [
        vs_validation("MAE and RMSE vs validation",
                      "Mean absolute error and root mean squared error",
                      {"mae": "MAE", "rmse": "RMSE"}, "categorical"),
        timeseries("Relative error increase vs tolerance",
                   f"(live - validation) / validation of MAE and RMSE; "
                   f"PromdriftModelQualityDegraded fires above {n(t.quality_error_tolerance)} "
                   f"(dashed line).",
                   [query(degradation("mae|rmse"), "{{metric}}")], unit="percentunit",
                   threshold=t.quality_error_tolerance, height=9),
    ])

    def bias(metric: str) -> str:
        return b.rule(f"model_facet_group_output_class:promdrift_bias_{metric}:{{w}}",
                      "output", "facet")

    def bias_validation(metric: str) -> str:
        return ef.sel("promdrift_baseline_bias", f'metric="{metric}"')

    change = b.rule("model_facet_group_output_class_metric:promdrift_bias_change:{w}",
                    "output", "facet")
    cell = "model facet group output class"
    b.row("Bias: facet groups", [
        timeseries("DPPL by group and class",
                   "Difference in proportions of predicted labels: share of the class among "
                   "the group's predictions minus its share in all other groups, over the "
                   "window.", [query(bias("dppl"), "{{group}} / {{class}}")],
                   unit="percentunit", height=9),
        timeseries("Recall difference by group and class",
                   "Recall of the class in the group minus its recall in all other groups, "
                   "from the labels joined in the window.",
                   [query(bias("recall_difference"), "{{group}} / {{class}}")],
                   unit="percentunit", height=9),
        table("Bias: live vs validation",
              f"Per group and class: DPPL and recall difference live over the window and on "
              f"the validation set (promdrift_baseline_bias), and the largest |live - "
              f"validation| over the tolerance {n(t.bias_tolerance)}: PromdriftBiasDrift fires "
              f"above 1. Worst first.",
              [table_query(per(cell, bias("dppl"))),
               table_query(per(cell, bias_validation("dppl"))),
               table_query(per(cell, bias("recall_difference"))),
               table_query(per(cell, bias_validation("recall_difference"))),
               table_query(per(cell, f"{change}\n/ {n(t.bias_tolerance)}"))],
              ["DPPL", "DPPL validation", "recall difference", "recall difference validation",
               "largest change / tolerance"],
              rank="largest change / tolerance",
              hidden=["model", "facet", "output", *config.keep_labels], decimals=3, height=9),
        timeseries("Largest change vs tolerance",
                   f"|live - validation| of DPPL and recall difference, the largest over the "
                   f"facet's groups and classes, against the tolerance {n(t.bias_tolerance)} "
                   f"(dashed line).",
                   [query(f"max by ({b.by('metric')}) ({change})", "{{metric}}")],
                   unit="percentunit", threshold=t.bias_tolerance, min_val=0, height=9),
    ])

    b.row("Attributions", [
        timeseries("Attribution ranking nDCG vs threshold",
                   f"nDCG of the live feature ranking by mean |attribution| against the "
                   f"baseline ranking, the worst replica with at least {n(t.min_samples)} rows "
                   f"in its window (computed by each server over its own window, so independent "
                   f"of the window variable); PromdriftAttributionDrift fires below "
                   f"{n(t.attribution_ndcg_min)} (dashed line).",
                   [query(b.rule("model:promdrift_attribution_ndcg:min"), "nDCG")],
                   threshold=t.attribution_ndcg_min, min_val=0, max_val=1, width=8, height=9),
        bars("Mean |attribution| per feature: live vs baseline",
             "Mean absolute attribution of each feature over the window, all replicas, "
             "against the baseline's mean (promdrift_baseline_attribution); sorted by the "
             "baseline, most important first.",
             [table_query(per("model feature", b.rule(
                 "model_feature:promdrift_attribution_abs_mean:{w}"))),
              table_query(per("model feature", e.sel("promdrift_baseline_attribution")))],
             ["live", "baseline"], x="feature", sort_by="baseline", desc=True,
             hidden=["model", *config.keep_labels], unit="short", width=10),
        timeseries("Inferences with attributions / s",
                   "Inferences that passed attributions, by status (invalid: wrong length or "
                   "not readable).",
                   [query(rate("promdrift_attribution_rows_total", "status"), "{{status}}")],
                   width=6, height=9),
    ])
    b.alerts_annotation("Outcome alerts", b.alerts("|".join(OUTCOME_ALERTS)),
                        "{{model}} {{output}} {{facet}} {{metric}}")
    return b.build()
