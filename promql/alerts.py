"""The alerts: each reads recording rules of one window group, with literal thresholds.

    >>> from promdrift.promql.config import RulesConfig
    >>> [a.alert for a in alert_rules(RulesConfig())][:3]
    ['PromdriftFeatureDrift', 'PromdriftPredictionDrift', 'PromdriftPredictionClassDrift']
    >>> a = alert_rules(RulesConfig(runbook_url="https://wiki/{alert}"))[0]
    >>> a.pending, a.labels["severity"], a.annotations["runbook_url"]
    ('15m', 'warning', 'https://wiki/PromdriftFeatureDrift')

Distribution alerts need three things at once, so that small windows do not page anyone and
huge windows do not fire on trivia: significance (the statistic exceeds the two-sample
critical value, or a fixed distance), effect size (KS at least ``ks_min_effect``) and sample
size (the window holds at least ``min_samples`` values). Every alert gets ``severity``, a
static ``summary``, a templated ``description`` and a ``runbook_url`` stamped from the
configured pattern in one pass (:func:`alert_rules`).
"""

from __future__ import annotations

from typing import List

from .config import ALERT_NAMES, RulesConfig, parse_duration
from .expr import FEATURE, Expressions, indent
from .rules import Group, Rule

__all__ = ["alert_rules", "alert_group", "window_words"]


def window_words(window: str) -> str:
    """How a description names a window: ``hour``, ``5 minutes``, ``day``, ``2 hours``.

        >>> [window_words(w) for w in ("1h", "5m", "1d", "2h", "90s", "1h30m")]
        ['hour', '5 minutes', 'day', '2 hours', '90 seconds', '90 minutes']
    """
    secs = parse_duration(window)
    for unit, mult in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if secs % mult == 0 and secs >= mult:
            n = int(secs // mult)
            return unit if n == 1 else f"{n} {unit}s"
    return window


def alert_rules(config: RulesConfig) -> List[Rule]:
    """Every alert of ``config``, runbook URLs and pending durations stamped."""
    e = Expressions(config)
    t = config.thresholds
    aw, fw = config.alert_window, config.fast_window
    last, last_fast = f"the last {window_words(aw)}", f"the last {window_words(fw)}"
    n = e.num
    kept = "".join(f", {k} {{{{ $labels.{k} }}}}" for k in config.keep_labels)
    # every statistic is per baseline: the text names the version (model_version when the
    # model server sets it) and the baseline's digest
    version = ("{{ with $labels.model_version }}version {{ . }}, {{ end }}"
               "baseline {{ $labels.baseline }}")

    def where(subject: str) -> str:
        return f"{subject} of model {{{{ $labels.model }}}} ({version}{kept})"

    feature = where("Feature {{ $labels.feature }}")
    output = where("Output {{ $labels.output }}")
    model = f"Model {{{{ $labels.model }}}} ({version}{kept})"
    versions = config.by("model", "model_version", per_baseline=False)
    versioned_info = e.sel("promdrift_baseline_info", 'model_version!=""')
    f_on = f"on ({e.by('model', 'feature')})"
    alerts = [
        Rule(alert="PromdriftFeatureDrift", labels={"severity": "warning"}, expr=(
            f"model_feature:promdrift_ks_statistic:{aw} > {f_on} model_feature:promdrift_ks_critical:{aw}\n"
            f"and model_feature:promdrift_ks_statistic:{aw} > {n(t.ks_min_effect)}\n"
            f"and {f_on} model_feature:promdrift_feature_value_count:increase{aw} >= {n(t.min_samples)}"),
            annotations={
                "summary": "A numeric feature's live distribution differs from its training baseline.",
                "description": f"{feature}: the KS statistic over {last} is "
                               f"{{{{ printf \"%.3f\" $value }}}}, above the two-sample critical "
                               f"value and the minimum effect size."}),
        Rule(alert="PromdriftPredictionDrift", labels={"severity": "critical"}, expr=(
            f"model_output:promdrift_prediction_ks_statistic:{aw} > on ({e.by('model', 'output')}) "
            f"model_output:promdrift_prediction_ks_critical:{aw}\n"
            f"and model_output:promdrift_prediction_ks_statistic:{aw} > {n(t.ks_min_effect)}\n"
            f"and on ({e.by('model', 'output')}) model_output:promdrift_prediction_value_count:increase{aw} "
            f">= {n(t.min_samples)}"),
            annotations={
                "summary": "A model's numeric predictions differ from their training-time distribution.",
                "description": f"{output}: the KS statistic over {last} is "
                               f"{{{{ printf \"%.3f\" $value }}}}, above the two-sample critical "
                               f"value and the minimum effect size."}),
        Rule(alert="PromdriftPredictionClassDrift", labels={"severity": "critical"}, expr=(
            f"model_output:promdrift_prediction_class_tvd:{aw}\n"
            f"  - on ({e.by('model', 'output')}) model_output:promdrift_prediction_class_tvd_noise:{aw}\n"
            f"  > {n(t.tvd_max)}\n"
            f"and on ({e.by('model', 'output')}) model_output:promdrift_prediction_class:increase{aw} "
            f">= {n(t.min_samples)}"),
            annotations={
                "summary": "A model's predicted class mix differs from its training-time class mix.",
                "description": f"{output}: the total variation distance between live and "
                               f"baseline class shares over {last} exceeds its no-drift "
                               f"(sampling noise) level by {{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftFeaturePSIHigh", labels={"severity": "warning"}, expr=(
            f"model_feature:promdrift_psi:{aw} > {n(t.psi_max)}\n"
            f"and {f_on} model_feature:promdrift_feature_value_count:increase{aw} >= {n(t.min_samples)}"),
            annotations={
                "summary": "A numeric feature's population stability index is high.",
                "description": f"{feature}: PSI over {last} is {{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftCategoricalDrift", labels={"severity": "warning"}, expr=(
            f"model_feature:promdrift_category_tvd:{aw}\n"
            f"  - {f_on} model_feature:promdrift_category_tvd_noise:{aw}\n"
            f"  > {n(t.tvd_max)}\n"
            f"and {f_on} model_feature:promdrift_feature_category:increase{aw} >= {n(t.min_samples)}"),
            annotations={
                "summary": "A categorical feature's category mix differs from its training baseline.",
                "description": f"{feature}: the total variation distance between live and "
                               f"baseline category shares over {last} exceeds its no-drift "
                               f"(sampling noise) level by {{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftUnseenCategoryShareHigh", labels={"severity": "warning"}, expr=(
            f"model_feature:promdrift_category_unseen:ratio{aw}\n"
            f"  - {f_on}\n"
            f"  (\n"
            f"    {indent(e.baseline_unseen_ratio(), 4)}\n"
            f"  )\n"
            f"  > {n(t.unseen_share_excess)}\n"
            f"and {f_on} model_feature:promdrift_feature_category:increase{aw} >= {n(t.min_samples)}"),
            annotations={
                "summary": "Many live values of a categorical feature were never frequent in training.",
                "description": f"{feature}: the share of values outside the training top-K "
                               f"(__other__) over {last} exceeds the baseline's share by "
                               f"{{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftInvalidValuesHigh", labels={"severity": "warning"}, expr=(
            f"model_feature:promdrift_invalid:ratio_rate{fw} > {n(t.invalid_ratio_max)}\n"
            f"and {f_on}\n"
            f"  {indent(e.observed_rate(fw, 'increase'), 2)} >= {n(t.ratio_min_count)}"),
            annotations={
                "summary": "Many values of a feature are missing or invalid.",
                "description": f"{feature}: {{{{ $value | humanizePercentage }}}} of the values "
                               f"of {last_fast} were missing, null, NaN, infinite or of the "
                               f"wrong type."}),
        Rule(alert="PromdriftBaselineMissing", labels={"severity": "warning"}, expr=(
            f"(\n"
            f"    group by ({e.by('model', 'feature')}) ({e.sel('promdrift_feature_value_count')})\n"
            f"  unless {f_on}\n"
            f"    group by ({e.by('model', 'feature')}) ({e.sel('promdrift_baseline_feature_value_count')})\n"
            f")\n"
            f"or\n"
            f"(\n"
            f"    group by ({e.by('model', 'feature')}) ({e.sel(FEATURE.cat_total)})\n"
            f"  unless {f_on}\n"
            f"    group by ({e.by('model', 'feature')}) ({e.sel(FEATURE.base_cat)})\n"
            f")"),
            annotations={
                "summary": "Live metrics of a feature have no baseline, so its drift cannot be computed.",
                "description": f"{feature} is exported by a model server but no replica "
                               f"exports a baseline for it."}),
        Rule(alert="PromdriftInstrumentationErrors", labels={"severity": "warning"}, expr=(
            f"model:promdrift_instrumentation_errors:increase{fw} > 0"),
            annotations={
                "summary": "promdrift's instrumentation is failing inside the model server.",
                "description": f"{model}: {{{{ printf \"%.0f\" $value }}}} errors inside "
                               f"promdrift's observe() in {last_fast}; the affected rows are "
                               f"missing from the drift statistics."}),
        Rule(alert="PromdriftExporterRejectionsHigh", labels={"severity": "warning"}, expr=(
            f"route:promdrift_exporter_rejected:ratio_rate{fw} > {n(t.exporter_rejected_ratio_max)}\n"
            f"and on ({e.by('route')})\n"
            f"  {e.exporter_requests('increase', fw)} >= {n(t.ratio_min_count)}"),
            annotations={
                "summary": "The promdrift exporter refuses many ingest requests.",
                "description": f"Exporter route {{{{ $labels.route }}}}{kept}: "
                               f"{{{{ $value | humanizePercentage }}}} of the ingest requests "
                               f"of {last_fast} were refused whole (none of their rows "
                               f"counted); promdrift_exporter_rejected_total tells why."}),
        Rule(alert="PromdriftBaselineInconsistent", labels={"severity": "warning"}, expr=(
            f"count by ({versions}) (\n"
            f"  group by ({e.by('model')}) ({versioned_info})\n"
            f") > 1"),
            annotations={
                "summary": "Replicas that report the same model version serve different baselines.",
                "description": f"Model {{{{ $labels.model }}}} version "
                               f"{{{{ $labels.model_version }}}}{kept}: its replicas serve "
                               f"{{{{ $value }}}} different baselines. Each baseline's drift "
                               f"statistics stay apart, but one version should ship one "
                               f"baseline file: a wrong file, or a new baseline deployed "
                               f"without a new model_version."}),
        Rule(alert="PromdriftModelQualityDegraded", labels={"severity": "critical"}, expr=(
            f"(\n"
            f"    model_output_metric:promdrift_quality_degradation:{aw}{{metric=~\"accuracy|macro_f1\"}}\n"
            f"      > {n(t.quality_tolerance)}\n"
            f"  or\n"
            f"    model_output_metric:promdrift_quality_degradation:{aw}{{metric=~\"mae|rmse\"}}\n"
            f"      > {n(t.quality_error_tolerance)}\n"
            f")\n"
            f"and on ({e.by('model', 'output')})\n"
            f"  model_output:promdrift_quality_labels:increase{aw} >= {n(t.quality_min_labels)}"),
            annotations={
                "summary": "A model's quality on labelled traffic is worse than on its validation set.",
                "description": f"{output}: {{{{ $labels.metric }}}} on the labels received in "
                               f"{last} is worse than the validation value by "
                               f"{{{{ printf \"%.3f\" $value }}}} (absolute for accuracy and "
                               f"macro_f1, relative for mae and rmse)."}),
        Rule(alert="PromdriftBiasDrift", labels={"severity": "warning"}, expr=(
            f"(\n"
            f"    model_facet_group_output_class_metric:promdrift_bias_change:{aw}{{metric=\"dppl\"}}\n"
            f"      > {n(t.bias_tolerance)}\n"
            f"  and on ({e.by('model', 'facet', 'group', 'output')})\n"
            f"    model_facet_group_output:promdrift_bias_predictions:increase{aw} >= {n(t.min_samples)}\n"
            f")\n"
            f"or\n"
            f"(\n"
            f"    model_facet_group_output_class_metric:promdrift_bias_change:{aw}{{metric=\"recall_difference\"}}\n"
            f"      > {n(t.bias_tolerance)}\n"
            f"  and on ({e.by('model', 'facet', 'group', 'output', 'class')})\n"
            f"    model_facet_group_output_class:promdrift_bias_labels:increase{aw} >= {n(t.quality_min_labels)}\n"
            f")"),
            annotations={
                "summary": "A group's predictions or recall, relative to the other groups, "
                           "moved away from the baseline.",
                "description": f"{model}, facet {{{{ $labels.facet }}}}, group "
                               f"{{{{ $labels.group }}}}, class {{{{ $labels.class }}}}: the "
                               f"group-minus-rest {{{{ $labels.metric }}}} over {last} differs "
                               f"from its validation value by {{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftAttributionDrift", labels={"severity": "warning"}, expr=(
            f"model:promdrift_attribution_ndcg:min < {n(t.attribution_ndcg_min)}"),
            annotations={
                "summary": "The features a model relies on, ranked by attribution, differ from "
                           "the baseline ranking.",
                "description": f"{model}: the nDCG of the live feature ranking by mean "
                               f"|attribution| against the baseline ranking is "
                               f"{{{{ printf \"%.3f\" $value }}}}."}),
        Rule(alert="PromdriftInvalidRequestsHigh", labels={"severity": "warning"}, expr=(
            f"model:promdrift_requests_invalid:ratio_rate{fw} > {n(t.invalid_request_ratio_max)}\n"
            f"and on ({e.by('model')}) model:promdrift_requests:increase{fw} "
            f">= {n(t.ratio_min_count)}"),
            annotations={
                "summary": "Many requests to a model have a body whose features cannot be read "
                           "(a client problem).",
                "description": f"{model}: {{{{ $value | humanizePercentage }}}} of the requests "
                               f"of {last_fast} were not JSON, not an object, had no features "
                               f"or features of the wrong shape; "
                               f"promdrift_requests_invalid_total tells which."}),
    ]
    assert [a.alert for a in alerts] == list(ALERT_NAMES), "ALERT_NAMES and the alerts disagree"
    for a in alerts:  # one pass: pending durations and runbook links
        a.pending = config.pending_for(a.alert)
        a.annotations["runbook_url"] = config.runbook(a.alert)
    return alerts


def alert_group(config: RulesConfig) -> Group:
    return Group("promdrift-alerts", alert_rules(config), doc="alerts")
