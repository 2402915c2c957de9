"""promdrift's PromQL layer: recording rules, alerts and dashboards generated from one spec.

    >>> from promdrift.promql import RulesConfig, rules_yaml
    >>> text = rules_yaml(RulesConfig(keep_labels=["cluster"]))
    >>> "sum by (model, model_version, baseline, feature, le, cluster)" in text
    True

``promdrift rules -o DIR`` (``promdrift.exporter.cli``) writes ``rules.yml``,
``alerts.yml``, ``prometheusrule.yaml`` and ``dashboards/*.json`` for a configuration
(:class:`RulesConfig`: windows, kept labels, a target selector, thresholds, ``for:``
durations, runbook URLs, a time scale). The files of this package's folder are the output of
the default configuration.
"""

from .alerts import alert_group, alert_rules
from .config import ALERT_NAMES, OPTIONS, RulesConfig, format_duration, parse_duration
from .expr import PROMQL, Expressions
from .generate import alerts_yaml, generate, outputs, prometheus_rule_yaml, rules_yaml
from .rules import Group, Rule, recording_groups

__all__ = [
    "RulesConfig", "OPTIONS", "ALERT_NAMES", "Expressions", "PROMQL", "Rule", "Group",
    "recording_groups", "alert_rules", "alert_group", "rules_yaml", "alerts_yaml",
    "prometheus_rule_yaml", "outputs", "generate", "parse_duration", "format_duration",
]
