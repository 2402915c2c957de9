"""``promdrift-overview``: the drift status of every feature of the selected models, per
baseline (a rolling update, a canary or champion/challenger lists each baseline the
replicas serve: the "Versions" row).

    >>> from promdrift.promql import RulesConfig
    >>> d = overview(RulesConfig())
    >>> d["uid"], [p["title"] for p in d["panels"] if p["type"] == "table"]
    ('promdrift-overview', ['Baselines served', 'Numeric features: KS statistic / critical value',
                            'Categorical features: (TVD - noise) / threshold'])
"""

from __future__ import annotations

from typing import Any, Dict

from promdrift.extras import require
from promdrift.promql.config import RulesConfig
from promdrift.promql.expr import FEATURE, Expressions, indent

from .board import Board
from .panels import feature_link, instant, query, stat, table, table_query, timeseries

require("rules", "grafana_foundation_sdk", "grafana-foundation-sdk")

from grafana_foundation_sdk.builders import dashboard as sdk  # noqa: E402
from grafana_foundation_sdk.models import dashboard as model  # noqa: E402

__all__ = ["overview"]

RATE = "$__rate_interval"


def overview(config: RulesConfig) -> Dict[str, Any]:
    t, n = config.thresholds, Expressions.num
    b = Board(config, "promdrift-overview", "promdrift / Overview", multi=True,
              description="Drift status of every feature of the selected models")
    e = b.e()
    mf = b.by("model", "feature")
    on_f = f"on ({mf})"
    ks = b.rule("model_feature:promdrift_ks_statistic:{w}")
    crit = b.rule("model_feature:promdrift_ks_critical:{w}")
    psi = b.rule("model_feature:promdrift_psi:{w}")
    tvd = b.rule("model_feature:promdrift_category_tvd:{w}")
    noise = b.rule("model_feature:promdrift_category_tvd_noise:{w}")
    fast_invalid = b.rule(f"model_feature:promdrift_invalid:ratio_rate{config.fast_window}")
    alerts = b.alerts("Promdrift.*")
    baseline_info = e.sel("promdrift_baseline_info")

    b.row("Status", [
        stat("Numeric features drifting",
             f"Numeric features whose KS statistic over the window exceeds both its critical "
             f"value and the minimum effect size ({n(t.ks_min_effect)}): the condition of "
             f"PromdriftFeatureDrift, before its sample-count floor ({n(t.min_samples)} "
             f"values) and its pending period.",
             instant(f"count(\n  {ks}\n    > {on_f} {crit}\n    > {n(t.ks_min_effect)}\n)"),
             steps=[1]),
        stat("Categorical features drifting",
             f"Categorical features whose total variation distance minus its no-drift "
             f"(sampling noise) value exceeds {n(t.tvd_max)}: the condition of "
             f"PromdriftCategoricalDrift, before its sample-count floor and pending period.",
             instant(f"count(\n  {tvd}\n    - {on_f} {noise}\n    > {n(t.tvd_max)}\n)"),
             steps=[1]),
        stat("Firing drift alerts", "promdrift alerts firing now (Prometheus' ALERTS series).",
             instant(f"count({alerts})"), steps=[1]),
        stat("Features with invalid values above threshold",
             f"Features whose invalid-value share over {config.fast_window} exceeds "
             f"{n(t.invalid_ratio_max)} (the condition of PromdriftInvalidValuesHigh).",
             instant(f"count(\n  {fast_invalid}\n    > {n(t.invalid_ratio_max)}\n)"),
             steps=[(1, "orange")]),
        stat("Inferences / s", "Rows observed per second, all replicas of the selected models.",
             instant(f"sum(rate({e.sel('promdrift_inferences_total')}[{RATE}]))"),
             unit="reqps", no_value=None, decimals=1),
        stat("Baselines per model (max)",
             "Distinct baselines served by the replicas of one model: 1 while every replica "
             "serves the same; more during a rolling update, a canary or champion/"
             "challenger, each baseline compared with its own live counts (Versions, below).",
             instant(f"max(count by ({b.by('model', per_baseline=False)}) "
                     f"(group by ({b.by('model')}) ({baseline_info})))"),
             steps=[(2, "blue")], no_value=None),
    ])

    versions = b.by("model")
    rate_inferences = f"rate({e.sel('promdrift_inferences_total')}[{RATE}])"
    zero = f"group by ({versions}) ({baseline_info}) * 0"
    b.row("Versions: the baselines served, side by side", [
        table("Baselines served",
              "One row per model version and baseline the replicas serve (a rolling update "
              "or a canary shows two, champion/challenger two for good): each is compared "
              "with its own baseline, its live counts summed over the replicas that serve "
              "it. Traffic share: its part of the model's inferences. Drifting: its "
              "features and outputs whose KS exceeds the critical value and the minimum "
              "effect size. Alerts: promdrift alerts firing for it.",
              [table_query(f"count by ({versions}) ({baseline_info})"),
               table_query(f"sum by ({versions}) ({rate_inferences})"),
               table_query(f"sum by ({versions}) ({rate_inferences})\n"
                           f"/ on ({b.by('model', per_baseline=False)}) group_left ()\n"
                           f"sum by ({b.by('model', per_baseline=False)}) ({rate_inferences})"),
               table_query(f"count by ({versions}) (\n  {ks}\n    > {on_f} {crit}\n"
                           f"    > {n(t.ks_min_effect)}\n)\nor\n{zero}"),
               table_query(f"count by ({versions}) ({alerts})\nor\n{zero}")],
              ["replicas", "inferences / s", "traffic share", "drifting features",
               "firing alerts"], rank="firing alerts", rank_decimals=0, width=24, height=6),
    ])

    def features_table(title: str, description: str, columns: Dict[str, str], width: int):
        """One row per feature, a column per query (name -> PromQL), worst first by the
        first column; each feature links to its detail dashboard."""
        return table(title, description,
                     [table_query(f"max by ({mf}) (\n  {indent(expr, 2)}\n)")
                      for expr in columns.values()],
                     list(columns), rank=next(iter(columns)), width=width,
                     link=feature_link(["model", "baseline", "feature", *config.keep_labels]))

    b.row("Drift status of every feature (worst first)", [
        features_table(
            "Numeric features: KS statistic / critical value",
            f"One row per numeric feature, sorted by KS / critical value (above 1: the live "
            f"distribution differs from the baseline at the configured alpha). PSI above "
            f"{n(t.psi_max)} is a large shift. n: valid values in the window, m: training "
            f"values. Click a feature for its detail.",
            {"KS / critical": f"{ks}\n/ {crit}", "KS": ks, "critical value": crit, "PSI": psi,
             "n (window)": b.rule("model_feature:promdrift_feature_value_count:increase{w}"),
             "m (baseline)": f"({e.baseline_count(FEATURE)})\nand {ks}"}, width=14),
        features_table(
            "Categorical features: (TVD - noise) / threshold",
            f"One row per categorical feature, sorted by (TVD - noise) / {n(t.tvd_max)}, where "
            f"noise is the no-drift TVD that sampling alone gives at this window count and "
            f"baseline size; PromdriftCategoricalDrift fires above 1. Unseen share: live share "
            f"of values outside the training top-K (__other__), next to its training share.",
            {"(TVD - noise) / threshold": f"({tvd}\n- {noise})\n/ {n(t.tvd_max)}",
             "TVD": tvd, "no-drift TVD": noise,
             "unseen share": b.rule("model_feature:promdrift_category_unseen:ratio{w}"),
             "unseen share (baseline)": f"({e.baseline_unseen_ratio()})\nand {tvd}",
             "n (window)": b.rule("model_feature:promdrift_feature_category:increase{w}")},
            width=10),
    ])

    legend = b.legend("model", "feature")
    b.row("Drift over time", [
        timeseries("KS statistic / critical value, 10 worst features",
                   "Above 1 (dashed line): the feature's live distribution differs from its "
                   "baseline.", [query(f"topk(10,\n  {ks}\n  / {crit}\n)", legend)],
                   threshold=1, width=8, height=9),
        timeseries("PSI, 10 worst features",
                   f"Population stability index; above {n(t.psi_max)} (dashed line) is a "
                   f"large shift.", [query(f"topk(10, {psi})", legend)],
                   threshold=t.psi_max, width=8, height=9),
        timeseries("(TVD - noise) / threshold, 10 worst categorical features",
                   "Total variation distance minus its no-drift value, over the alert "
                   "threshold; above 1 (dashed line) PromdriftCategoricalDrift fires.",
                   [query(f"topk(10,\n  ({tvd}\n  - {noise})\n  / {n(t.tvd_max)}\n)", legend)],
                   threshold=1, width=8, height=9),
    ])

    invalid_total = e.sel(FEATURE.invalid)
    b.row("Invalid values", [
        timeseries("Invalid share by feature",
                   f"Share of values that were missing, null, NaN, infinite or of the wrong "
                   f"type, per feature with any (features at 0 are hidden). The alert fires "
                   f"above {n(t.invalid_ratio_max)} (dashed line) on the {config.fast_window} "
                   f"window.",
                   [query(f"{b.rule('model_feature:promdrift_invalid:ratio_rate{w}')} > 0",
                          legend)], unit="percentunit", threshold=t.invalid_ratio_max),
        timeseries("Invalid values / s by reason",
                   "Invalid values per second, all features of a model, by reason.",
                   [query(f"sum by ({b.by('model', 'reason')}) "
                          f"(rate({invalid_total}[{RATE}])) > 0",
                          b.legend("model", "reason"))], stacked=True),
    ])

    by_model = b.legend("model")
    b.row("Traffic and instrumentation", [
        timeseries("Inferences / s", "Rows observed per second by model, all replicas.",
                   [query(f"sum by ({b.by('model')}) "
                          f"(rate({e.sel('promdrift_inferences_total')}[{RATE}]))", by_model)],
                   unit="reqps", width=8),
        timeseries("Replicas exporting a baseline",
                   "Scraped targets exporting promdrift_baseline_info, by model.",
                   [query(f"count by ({b.by('model')}) ({baseline_info})", by_model)], width=8),
        timeseries("Instrumentation errors",
                   "Errors inside DriftMonitor.observe over the window (requests are never "
                   "affected; see PromdriftInstrumentationErrors in the runbook).",
                   [query(b.rule("model:promdrift_instrumentation_errors:increase{w}"),
                          by_model)], width=8),
    ])
    b.link(sdk.DashboardLink("Outcomes: quality, bias, attributions")
           .type(model.DashboardLinkType.LINK).url("/d/promdrift-outcomes/promdrift-outcomes")
           .tooltip("Model quality from delayed labels, bias per facet group, feature "
                    "attributions").icon("dashboard").tags([]).as_dropdown(False)
           .include_vars(False).keep_time(True).target_blank(False))
    b.alerts_annotation("Drift alerts", alerts, "{{model}} {{feature}}{{output}}")
    return b.build()
