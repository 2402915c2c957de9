"""The rule generator's options: validation, kept labels, selector, windows, time scale,
the YAML it writes, the PrometheusRule manifest and the ``promdrift rules`` command."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from promdrift.exporter.cli import main
from promdrift.instrumentation.spec import SETTINGS, STATISTICS, Thresholds
from promdrift.promql import (ALERT_NAMES, OPTIONS, PROMQL, Expressions, RulesConfig,
                              alert_group, alerts_yaml, prometheus_rule_yaml,
                              recording_groups, rules_yaml)
from promdrift.promql.config import format_duration, parse_duration
from promdrift.promql.expr import FEATURE

from . import PROMTOOLS

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CUSTOM = RulesConfig(keep_labels=["cluster", "env"], selector='job="model", env!~"dev|test"',
                     windows=["5m", "1h", "1d"], thresholds={"psi_max": 0.2, "min_samples": 50},
                     pending={"PromdriftFeatureDrift": "30m"})


def records(config: RulesConfig):
    return [r for g in recording_groups(config) for r in g.rules]


@pytest.mark.parametrize("options, message", [
    ({"windows": ["5m", "1hour"]}, "windows: '1hour' is not a Prometheus duration"),
    ({"windows": ["5m", "60m"]}, "write '60m' as '1h'"),
    ({"windows": ["5m", "5m", "1h"]}, "listed twice"),
    ({"windows": ["5m"]}, "alert_window: '1h' is not one of the windows"),
    ({"keep_labels": ["feature"]}, "'feature' is one of promdrift's own labels"),
    ({"keep_labels": ["1cluster"]}, "'1cluster' is not a valid Prometheus label name"),
    ({"keep_labels": ["__meta"]}, "not a valid Prometheus label name"),
    ({"selector": "job=model"}, "selector: cannot read"),
    ({"selector": 'job=~"(unclosed"'}, "not a valid regular expression"),
    ({"thresholds": {"psi_max": -1}}, "threshold psi_max must be > 0"),
    ({"thresholds": {"ks_alpha": 2}}, "threshold ks_alpha must be > 0 and <= 0.5"),
    ({"thresholds": {"min_samples": 2.5}}, "min_samples must be a whole number"),
    ({"thresholds": {"nope": 1}}, "unknown threshold 'nope'"),
    ({"for": {"PromdriftNope": "5m"}}, "for: unknown alert 'PromdriftNope'"),
    ({"for": {"*": "soon"}}, "for: *: 'soon' is not a Prometheus duration"),
    ({"intervals": {"2h": "1m"}}, "intervals: '2h' is not one of the windows"),
    ({"time_scale": 0}, "time_scale: must be a positive number"),
    ({"runbook_url": "https://x/{name}"}, "runbook_url: only {alert} and {anchor}"),
    ({"manifest": {"name": "Bad_Name"}}, "not a Kubernetes name"),
    ({"colour": "red"}, "unknown option(s) ['colour']"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError) as e:
        RulesConfig.from_mapping(options)
    assert message in str(e.value)


def test_durations():
    assert parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5
    for secs in (1, 59, 60, 90, 3600, 5400, 86400, 0.25):
        assert parse_duration(format_duration(secs)) == secs


def test_every_statistic_has_a_numpy_and_a_promql_implementation():
    assert set(PROMQL) == set(STATISTICS)
    e = Expressions(RulesConfig())
    for name, stat in STATISTICS.items():
        assert PROMQL[name](e, "1h").strip()
        # the recording rule named by the spec exists for every window
        assert any(stat.rule in r.record for r in records(RulesConfig())), name


def test_written_yaml_reads_back_as_the_groups():
    for config in (RulesConfig(), CUSTOM):
        data = yaml.safe_load(rules_yaml(config))
        assert data == {"groups": [g.as_dict() for g in recording_groups(config)]}
        alerts = yaml.safe_load(alerts_yaml(config))
        assert alerts == {"groups": [alert_group(config).as_dict()]}


def test_no_recording_rule_reads_another_rule():
    for config in (RulesConfig(), CUSTOM):
        names = {r.record for r in records(config)}
        for r in records(config):
            for name in names:
                assert not re.search(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])", r.expr), \
                    (r.record, name)
            assert "promdrift:config" not in r.expr


def test_kept_labels_are_in_every_grouping_and_matching_list():
    for r in records(CUSTOM) + alert_group(CUSTOM).rules:
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", r.expr):
            labels = [x.strip() for x in clause.split(",")]
            assert "cluster" in labels and "env" in labels, (r.record or r.alert, clause)


def test_selector_is_in_every_series_selector():
    for r in records(CUSTOM) + alert_group(CUSTOM).rules:
        for m in re.finditer(r"\b(promdrift_[a-z_]+)(\{[^}]*\})?", r.expr):
            if m.group(1).startswith("promdrift_") and ":" not in r.expr[max(0, m.start() - 1):m.start()]:
                assert m.group(2) and 'job="model", env!~"dev|test"' in m.group(2), \
                    (r.record or r.alert, m.group(0))


def test_windows_intervals_and_time_scale():
    groups = {g.name: g for g in recording_groups(CUSTOM)}
    assert set(groups) == {"promdrift-5m", "promdrift-1h", "promdrift-1d", "promdrift-quality-5m",
                           "promdrift-quality-1h", "promdrift-quality-1d", "promdrift-attribution"}
    assert (groups["promdrift-5m"].interval, groups["promdrift-1h"].interval,
            groups["promdrift-1d"].interval) == ("1m", "1m", "5m")
    global_5m = RulesConfig(intervals={"5m": None})
    assert {g.name: g for g in recording_groups(global_5m)}["promdrift-5m"].interval is None
    assert "[1d]" in groups["promdrift-1d"].rules[1].expr
    scaled = RulesConfig(time_scale=60)
    g = {g.name: g for g in recording_groups(scaled)}
    assert "[1m]" in g["promdrift-1h"].rules[1].expr and "[5s]" in g["promdrift-5m"].rules[1].expr
    assert g["promdrift-1h"].interval == "1s"
    alerts = {a.alert: a for a in alert_group(scaled).rules}
    assert alerts["PromdriftFeatureDrift"].pending == "15s"
    assert "over the last hour" in alerts["PromdriftFeatureDrift"].annotations["description"]
    ranged = RulesConfig(ranges={"1h": "60s", "5m": "15s"})
    assert "[60s]" in {g.name: g for g in recording_groups(ranged)}["promdrift-1h"].rules[1].expr


def test_thresholds_and_pending_durations_are_stamped():
    alerts = {a.alert: a for a in alert_group(CUSTOM).rules}
    assert set(alerts) == set(ALERT_NAMES)
    assert "model_feature:promdrift_psi:1h > 0.2" in alerts["PromdriftFeaturePSIHigh"].expr
    assert ">= 50" in alerts["PromdriftFeatureDrift"].expr
    assert alerts["PromdriftFeatureDrift"].pending == "30m"
    assert alerts["PromdriftInvalidValuesHigh"].pending == "10m"
    for name, a in alerts.items():
        assert a.annotations["runbook_url"].endswith("#" + name.lower())
        assert "{{ $labels.cluster }}" in a.annotations["description"], name
    default = {a.alert: a for a in alert_group(RulesConfig()).rules}
    t = Thresholds()
    assert f"> {t.psi_max}" in default["PromdriftFeaturePSIHigh"].expr


def test_family_wise_critical_value_can_be_switched_off():
    fw = Expressions(RulesConfig()).ks_critical(FEATURE, "1h")
    assert "count by (model, model_version, baseline)" in fw and f"ln({Thresholds().ks_alpha}" in fw
    plain = RulesConfig(thresholds={"ks_familywise": False, "ks_alpha": 0.05})
    text = Expressions(plain).ks_critical(FEATURE, "1h")
    assert text.startswith("1.358") and "count by" not in text


def test_prometheus_rule_manifest():
    config = RulesConfig(manifest={"namespace": "monitoring",
                                   "labels": {"release": "kube-prometheus-stack"}})
    doc = yaml.safe_load(prometheus_rule_yaml(config))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["namespace"] == "monitoring"
    assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert doc["spec"]["groups"] == ([g.as_dict() for g in recording_groups(config)]
                                     + [alert_group(config).as_dict()])


@pytest.mark.skipif(not PROMTOOLS, reason="needs promtool")
@pytest.mark.parametrize("promtool", PROMTOOLS)
def test_promtool_accepts_a_custom_configuration(promtool, tmp_path):
    for name, text in (("rules.yml", rules_yaml(CUSTOM)), ("alerts.yml", alerts_yaml(CUSTOM))):
        (tmp_path / name).write_text(text)
    out = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml"),
                          str(tmp_path / "alerts.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["rules", "-o", str(out), "--no-dashboards", "--keep-label", "cluster",
                 "--set", "psi_max=0.3", "--window", "5m", "--window", "1h", "-q"]) == 0
    assert sorted(os.listdir(out)) == ["alerts.yml", "prometheusrule.yaml", "rules.yml"]
    assert "sum by (model, model_version, baseline, feature, le, cluster)" in (out / "rules.yml").read_text()
    assert '"psi_max": 0.3' in (out / "rules.yml").read_text().splitlines()[1]
    args = ["rules", "-o", str(out), "--no-dashboards", "--keep-label", "cluster",
            "--set", "psi_max=0.3", "--check"]
    assert main(args) == 0
    (out / "alerts.yml").write_text("changed\n")
    assert main(args) == 1
    assert "alerts.yml is not what `promdrift rules` generates" in capsys.readouterr().err
    config = tmp_path / "c.yaml"
    config.write_text("keep_labels: [cluster]\nthresholds: {psi_max: 0.3}\n")
    assert main(["rules", "-o", str(out), "--no-dashboards", "--config", str(config), "-q"]) == 0
    assert main(args) == 0  # the file and the flags give the same output
    config.write_text("keep_labels: [le]\n")
    assert main(["rules", "-o", str(out), "--config", str(config)]) == 2
    assert "keep_labels: 'le' is one of promdrift's own labels" in capsys.readouterr().err
    assert main(["rules", "-o", str(out), "--set", "psi_max"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_docs_list_every_option_and_threshold_with_its_default():
    with open(os.path.join(ROOT, "docs", "rules.md"), encoding="utf-8") as f:
        text = f.read()
    for name in OPTIONS:
        assert f"| `{name}` |" in text, name
    for s in SETTINGS:
        default = str(s.default).lower() if s.boolean else f"{s.default:g}"
        assert f"| `{s.name}` | {default} |" in text, s.name
