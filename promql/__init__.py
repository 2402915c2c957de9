"""promdrift's PromQL layer: recording rules, alerts and dashboards generated from one spec.

    >>> from promdrift.promql import RulesConfig, rules_yaml
    >>> text = rules_yaml(RulesConfig(keep_labels=["cluster"]))
    >>> "sum by (model, model_version, baseline, feature, le, cluster)" in text
    True

``promdrift rules -o DIR`` (``promdrift.promql.cli``) writes ``rules.yml``,
``alerts.yml``, ``prometheusrule.yaml`` and ``dashboards/*.json`` for a configuration
(:class:`RulesConfig`: windows, kept labels, a target selector, thresholds, ``for:``
durations, runbook URLs, a time scale). The files of this package's folder are the output of
the default configuration.

Modules, from the bottom: ``config`` (:class:`RulesConfig`), ``expr`` (the PromQL
fragments), ``rules`` and ``alerts`` (the groups), ``yamlout``, ``header`` (the version and
options every generated file states, the dashboards' too), ``generator`` (every output file:
the rule files, the manifest, and the dashboards ``promdrift.grafana`` builds), ``cli``
(``promdrift rules``). The names below are imported on first use.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .alerts import alert_group, alert_rules
    from .config import ALERT_NAMES, OPTIONS, RulesConfig, format_duration, parse_duration
    from .expr import PROMQL, Expressions
    from .generator import alerts_yaml, generate, outputs, prometheus_rule_yaml, rules_yaml
    from .rules import Group, Rule, recording_groups

__all__ = [
    "RulesConfig", "OPTIONS", "ALERT_NAMES", "Expressions", "PROMQL", "Rule", "Group",
    "recording_groups", "alert_rules", "alert_group", "rules_yaml", "alerts_yaml",
    "prometheus_rule_yaml", "outputs", "generate", "parse_duration", "format_duration",
]

__getattr__, __dir__ = _exports(__name__, {
    **dict.fromkeys(["alert_group", "alert_rules"], ".alerts"),
    **dict.fromkeys(["ALERT_NAMES", "OPTIONS", "RulesConfig", "format_duration",
                     "parse_duration"], ".config"),
    **dict.fromkeys(["PROMQL", "Expressions"], ".expr"),
    **dict.fromkeys(["alerts_yaml", "generate", "outputs", "prometheus_rule_yaml",
                     "rules_yaml"], ".generator"),
    **dict.fromkeys(["Group", "Rule", "recording_groups"], ".rules"),
})
