"""The recording rule groups: one drift group and one outcome group per window.

    >>> from promdrift.promql.config import RulesConfig
    >>> groups = recording_groups(RulesConfig())
    >>> [g.name for g in groups]
    ['promdrift-5m', 'promdrift-quality-5m', 'promdrift-1h', 'promdrift-quality-1h', 'promdrift-attribution']
    >>> [r.record for r in groups[2].rules][:4]
    ['model_feature:promdrift_feature_value_count:increase1h', 'model_feature:promdrift_ks_statistic:1h', 'model_feature:promdrift_ks_critical:1h', 'model_feature:promdrift_psi:1h']

Names follow ``level:metric:operations``; the level lists the labels a rule keeps (the kept
labels of the configuration come on top of them), the operations the window. Every rule is
computed from the raw series (``expr.Expressions``), so the groups can run in any order, on
any engine, at any interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .config import RulesConfig
from .expr import FEATURE, OUTPUT, Expressions

__all__ = ["Rule", "Group", "recording_groups"]


@dataclass
class Rule:
    """A recording rule (``record``) or an alert (``alert``), with a comment for the file."""

    expr: str
    record: Optional[str] = None
    alert: Optional[str] = None
    doc: str = ""
    pending: Optional[str] = None
    labels: Dict[str, str] = field(default_factory=dict)
    annotations: Dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = {}
        if self.record:
            out["record"] = self.record
        if self.alert:
            out["alert"] = self.alert
        out["expr"] = self.expr
        if self.pending:
            out["for"] = self.pending
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass
class Group:
    name: str
    rules: List[Rule]
    interval: Optional[str] = None
    doc: str = ""

    def as_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = {"name": self.name}
        if self.interval:
            out["interval"] = self.interval
        out["rules"] = [r.as_dict() for r in self.rules]
        return out


def drift_rules(e: Expressions, w: str) -> List[Rule]:
    """Features and prediction outputs over window ``w``."""
    rules = [
        Rule(e.numeric_count(FEATURE, w) + " > 0",
             f"model_feature:promdrift_feature_value_count:increase{w}",
             doc="n: valid values of a numeric feature in the window (absent when 0)"),
        Rule(e.ks(FEATURE, w), f"model_feature:promdrift_ks_statistic:{w}",
             doc="KS statistic: max over le of |live CDF - baseline CDF|"),
        Rule(e.ks_critical(FEATURE, w), f"model_feature:promdrift_ks_critical:{w}",
             doc=("two-sample critical value c * sqrt(1/n + 1/m), c = c(ks_alpha / F), F the "
                  "model's numeric features (family-wise)" if e.t.ks_familywise else
                  "two-sample critical value c(ks_alpha) * sqrt(1/n + 1/m)")),
        Rule(e.psi(FEATURE, w), f"model_feature:promdrift_psi:{w}",
             doc="PSI over the baseline bins: sum of (p_live - p_base) * ln(p_live / p_base)"),
        Rule(e.category_count(FEATURE, w), f"model_feature:promdrift_feature_category:increase{w}",
             doc="n: valid values of a categorical feature in the window (absent when 0)"),
        Rule(e.tvd(FEATURE, w), f"model_feature:promdrift_category_tvd:{w}",
             doc="total variation distance 0.5 * sum |p_live - p_base| of the category shares"),
        Rule(e.tvd_noise(FEATURE, w), f"model_feature:promdrift_category_tvd_noise:{w}",
             doc="the TVD an undrifted feature shows from sampling noise alone"),
        Rule(e.unseen_ratio(w), f"model_feature:promdrift_category_unseen:ratio{w}",
             doc="live share of __other__ (values outside the training top-K)"),
        Rule(e.invalid_ratio(w, by_reason=True),
             f"model_feature_reason:promdrift_feature_invalid:ratio_rate{w}",
             doc="invalid share of all values of a feature, by reason"),
        Rule(e.invalid_ratio(w, by_reason=False), f"model_feature:promdrift_invalid:ratio_rate{w}",
             doc="invalid share of all values of a feature, every reason"),
        Rule(e.numeric_count(OUTPUT, w) + " > 0",
             f"model_output:promdrift_prediction_value_count:increase{w}",
             doc="n of a numeric prediction output"),
        Rule(e.ks(OUTPUT, w), f"model_output:promdrift_prediction_ks_statistic:{w}",
             doc="KS statistic of a numeric prediction output"),
        Rule(e.ks_critical(OUTPUT, w), f"model_output:promdrift_prediction_ks_critical:{w}",
             doc="its critical value (family-wise over the model's numeric outputs)"
             if e.t.ks_familywise else "its critical value"),
        Rule(e.category_count(OUTPUT, w), f"model_output:promdrift_prediction_class:increase{w}",
             doc="n of a categorical prediction output"),
        Rule(e.tvd(OUTPUT, w), f"model_output:promdrift_prediction_class_tvd:{w}",
             doc="total variation distance of the predicted class mix"),
        Rule(e.tvd_noise(OUTPUT, w), f"model_output:promdrift_prediction_class_tvd_noise:{w}",
             doc="its no-drift value"),
        Rule(e.instrumentation_errors(w), f"model:promdrift_instrumentation_errors:increase{w}",
             doc="errors inside observe() in the window"),
        Rule(e.requests(w) + " > 0", f"model:promdrift_requests:increase{w}",
             doc="requests handed to the model's monitors in the window (absent when 0)"),
        Rule(e.invalid_request_ratio(w, by_reason=True),
             f"model_reason:promdrift_requests_invalid:ratio_rate{w}",
             doc="share of the requests whose features could not be read, by reason"),
        Rule(e.invalid_request_ratio(w, by_reason=False),
             f"model:promdrift_requests_invalid:ratio_rate{w}",
             doc="share of the requests whose features could not be read (a client error)"),
        Rule(e.exporter_rejected_ratio(w), f"route:promdrift_exporter_rejected:ratio_rate{w}",
             doc="share of the standalone exporter's ingest requests refused whole"),
    ]
    return rules


def outcome_rules(e: Expressions, w: str) -> List[Rule]:
    """Quality from delayed labels, bias per facet group, mean attributions over ``w``."""
    return [
        Rule(e.precision(w), f"model_output_class:promdrift_quality_precision:{w}",
             doc="precision TP / predicted (absent when nothing was predicted as the class)"),
        Rule(e.recall(w), f"model_output_class:promdrift_quality_recall:{w}",
             doc="recall TP / actual (absent without labels of the class)"),
        Rule(e.f1(w), f"model_output_class:promdrift_quality_f1:{w}",
             doc="F1 = 2 TP / (actual + predicted)"),
        Rule(e.accuracy(w), f"model_output:promdrift_quality_accuracy:{w}",
             doc="accuracy of a categorical output on the labels received in the window"),
        Rule(e.macro_f1(w), f"model_output:promdrift_quality_macro_f1:{w}",
             doc="mean F1 of the classes occurring as actual or predicted"),
        Rule(e.mae(w), f"model_output:promdrift_quality_mae:{w}",
             doc="mean absolute error of a numeric output"),
        Rule(e.rmse(w), f"model_output:promdrift_quality_rmse:{w}",
             doc="root mean squared error of a numeric output"),
        Rule(e.quality_labels(w), f"model_output:promdrift_quality_labels:increase{w}",
             doc="labelled pairs in the window, either kind of output (absent when 0)"),
        Rule(e.quality(w), f"model_output_metric:promdrift_quality:{w}",
             doc="accuracy, macro_f1, mae, rmse as one family (label metric)"),
        Rule(e.quality_degradation(w), f"model_output_metric:promdrift_quality_degradation:{w}",
             doc="validation - live (accuracy, macro_f1); (live - validation) / validation "
                 "(mae, rmse)"),
        Rule(e.bias_group_predictions(w),
             f"model_facet_group_output:promdrift_bias_predictions:increase{w}",
             doc="predictions of a facet group (absent when 0)"),
        Rule(e.bias_labels(w), f"model_facet_group_output_class:promdrift_bias_labels:increase{w}",
             doc="joined labels per facet group and actual class"),
        Rule(e.bias_dppl(w), f"model_facet_group_output_class:promdrift_bias_dppl:{w}",
             doc="difference in proportions of the predicted class: group minus the rest"),
        Rule(e.bias_recall_difference(w),
             f"model_facet_group_output_class:promdrift_bias_recall_difference:{w}",
             doc="recall of the class: group minus the rest"),
        Rule(e.bias_change(w), f"model_facet_group_output_class_metric:promdrift_bias_change:{w}",
             doc="|live - validation| of dppl and recall_difference"),
        Rule(e.attribution_abs_mean(w), f"model_feature:promdrift_attribution_abs_mean:{w}",
             doc="mean |attribution| per feature, all replicas"),
    ]


def recording_groups(config: RulesConfig) -> List[Group]:
    """Every recording rule group of ``config``, window by window."""
    e = Expressions(config)
    groups: List[Group] = []
    for w in config.windows:
        interval = config.interval(w)
        groups.append(Group(f"promdrift-{w}", drift_rules(e, w), interval,
                            doc=f"drift statistics over {w}"))
        groups.append(Group(f"promdrift-quality-{w}", outcome_rules(e, w), interval,
                            doc=f"model quality, bias and attributions over {w}"))
    groups.append(Group("promdrift-attribution", [
        Rule(e.attribution_ndcg_min(), "model:promdrift_attribution_ndcg:min",
             doc="the worst replica's nDCG among those with min_samples rows in their window "
                 "(each model server keeps its own window: PromQL cannot rank series)"),
    ], doc="attribution ranking"))
    return groups
