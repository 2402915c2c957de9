"""Static checks of promql/rules.yml, promql/alerts.yml and their promtool tests.

promtool checks syntax and the tested values (``make check-rules``); these tests check the
project's conventions: every recording rule has a ``promql_expr_test``, every alert is tested
on both sides of its ``for:``, thresholds live in the config group, replicas are aggregated
before any division, and every rule and alert is documented with a runbook entry.
"""

import functools
import glob
import os
import re
import shutil
import subprocess
from typing import Dict, List

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PROMQL = os.path.join(ROOT, "promql")
RUNBOOK_BASE = "https://github.com/promdrift/promdrift/blob/main/docs/runbook.md#"


def load(name: str) -> dict:
    with open(os.path.join(PROMQL, name)) as f:
        return yaml.safe_load(f)


RULES = load("rules.yml")
ALERTS = load("alerts.yml")
GROUPS = {g["name"]: g["rules"] for g in RULES["groups"]}
RECORDS = [r["record"] for g in RULES["groups"] for r in g["rules"]]
ALERT_RULES = [r for g in ALERTS["groups"] for r in g["rules"]]
TEST_FILES = sorted(glob.glob(os.path.join(PROMQL, "tests", "*.yml")))


@functools.lru_cache(maxsize=None)
def cases_in(path: str) -> List[dict]:
    with open(path) as f:
        return yaml.safe_load(f)["tests"]


@functools.lru_cache(maxsize=None)
def eval_interval(path: str) -> int:
    with open(path) as f:
        return duration(yaml.safe_load(f).get("evaluation_interval", "1m"))


def mentions(name: str, expr: str) -> bool:
    return re.search(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])", expr) is not None


def duration(text: str) -> int:
    """Seconds of a Prometheus duration such as ``1h5m`` or ``65m``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), text
    return sum(int(n) * units[u] for n, u in parts)


def test_files_exist() -> None:
    assert len(RECORDS) > 50 and len(ALERT_RULES) >= 8 and TEST_FILES


def test_record_names_follow_level_metric_operations() -> None:
    for name in RECORDS:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
    assert len(set(RECORDS)) == len(RECORDS), "a rule is recorded twice"


def test_alert_names_are_camel_case_with_prefix() -> None:
    for rule in ALERT_RULES:
        assert re.fullmatch(r"Promdrift(?:[A-Z][a-z]+|PSI)+", rule["alert"]), rule["alert"]


@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_has_an_expr_test(record: str) -> None:
    exprs = [t["expr"] for path in TEST_FILES for group in cases_in(path)
             for t in group.get("promql_expr_test", [])]
    assert any(mentions(record, e) for e in exprs), f"no promql_expr_test reads {record}"


@pytest.mark.parametrize("alert", [r["alert"] for r in ALERT_RULES])
def test_every_alert_is_tested_just_before_and_at_its_for(alert: str) -> None:
    """Some test group expects no alert one evaluation before the alert fires, and fires it."""
    rule = next(r for r in ALERT_RULES if r["alert"] == alert)
    assert rule.get("for"), f"{alert} has no for:"
    found = False
    for path in TEST_FILES:
        for group in cases_in(path):
            cases = [c for c in group.get("alert_rule_test", []) if c["alertname"] == alert]
            quiet = {duration(c["eval_time"]) for c in cases if not c.get("exp_alerts")}
            firing = {duration(c["eval_time"]) for c in cases if c.get("exp_alerts")}
            step = eval_interval(path)
            if any(t - step in quiet for t in firing):
                found = True
    assert found, f"{alert}: no test of 'not firing' one step before 'firing'"


@pytest.mark.parametrize("path", TEST_FILES, ids=os.path.basename)
def test_alert_tests_fix_the_group_evaluation_order(path: str) -> None:
    """Without group_eval_order, promtool evaluates groups in random order, so an alert may
    read the previous evaluation of a rule and fire one step late, now and then."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not any(g.get("alert_rule_test") for g in doc["tests"]):
        return
    groups = [g["name"] for g in RULES["groups"]] + [g["name"] for g in ALERTS["groups"]]
    assert doc.get("group_eval_order") == groups


@pytest.mark.parametrize("prefix", ["promdrift", "promdrift-quality"])
def test_5m_group_is_the_1h_group_with_its_window(prefix: str) -> None:
    as_text = yaml.safe_dump(GROUPS[prefix + "-1h"]).replace("1h", "5m")
    assert yaml.safe_dump(GROUPS[prefix + "-5m"]) == as_text


def test_live_counters_are_summed_across_replicas_before_anything_else() -> None:
    """Every rate()/increase() of an exposed series is directly inside a ``sum by``."""
    for group in RULES["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            for m in re.finditer(r"(rate|increase)\(promdrift_", expr):
                before = expr[:m.start()]
                assert re.search(r"sum by \([a-z_, ]+\) \($", before), (rule["record"], expr)


def test_baseline_series_are_max_aggregated() -> None:
    """Every exposed baseline series is read through ``max by`` (or only grouped)."""
    for group in RULES["groups"] + ALERTS["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            for m in re.finditer(r"(?<![\w:])promdrift_baseline_[a-z_]+(?![a-z_:])", expr):
                if m.group(0) == "promdrift_baseline_info":
                    continue
                before = expr[:m.start()]
                assert re.search(r"(max|group) by \([a-z_, ]+\) \($", before), \
                    (rule.get("record") or rule.get("alert"), m.group(0))


def config_names() -> Dict[str, str]:
    return {r["record"]: r["expr"] for r in GROUPS["promdrift-config"]}


def test_thresholds_come_from_the_config_group() -> None:
    config = config_names()
    for name, expr in config.items():
        assert re.fullmatch(r"vector\([0-9.e-]+\)", expr), name
    used = set()
    for group in RULES["groups"] + ALERTS["groups"]:
        if group["name"] == "promdrift-config":
            continue
        for rule in group["rules"]:
            refs = set(re.findall(r"promdrift:config:[a-z_]+", rule["expr"]))
            assert refs <= set(config), refs - set(config)
            used |= refs
    assert used == set(config), f"unused config: {set(config) - used}"
    # Alert expressions compare statistics with config series, not with literals
    # (0 and 1 are counts: "errors increased", "more than one baseline digest").
    for rule in ALERT_RULES:
        literals = re.findall(r"(?<![\w:.\[])(\d+(?:\.\d+)?)(?![\w\]])", rule["expr"])
        assert set(literals) <= {"0", "1"}, (rule["alert"], literals)


def test_config_header_documents_every_threshold() -> None:
    with open(os.path.join(PROMQL, "rules.yml")) as f:
        header = f.read().split("groups:")[0]
    for name, expr in config_names().items():
        value = re.fullmatch(r"vector\((.*)\)", expr).group(1)
        assert re.search(re.escape(name) + r"\s+" + re.escape(value) + r"\b", header), name
    flat = " ".join(header.replace("#", " ").split())
    for rule in ALERT_RULES:
        assert f"{rule['alert']} {rule['for']}" in flat, rule["alert"]


def runbook_anchors() -> List[str]:
    with open(os.path.join(ROOT, "docs", "runbook.md")) as f:
        headings = re.findall(r"^## (\S+)", f.read(), flags=re.M)
    return [h.lower() for h in headings]


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_alert_labels_and_annotations(rule: dict) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    ann = rule["annotations"]
    assert set(ann) == {"summary", "description", "runbook_url"}
    assert "{{" not in ann["summary"], "summary is static"
    assert "{{" in ann["description"], "description is templated"
    anchor = rule["alert"].lower()
    assert ann["runbook_url"] == RUNBOOK_BASE + anchor
    assert anchor in runbook_anchors(), f"docs/runbook.md has no section {rule['alert']}"


def test_runbook_has_no_section_without_alert() -> None:
    assert sorted(runbook_anchors()) == sorted(r["alert"].lower() for r in ALERT_RULES)


def test_metrics_doc_documents_every_rule_and_alert() -> None:
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        doc = f.read().split("## Recording rules and alerts", 1)[1]
    names = set(re.findall(r"`([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)`", doc))
    # rules of the 5m group may be documented together with their 1h twin as ...:<w>
    generic = {n.replace("1h", "5m") for n in names} | names
    missing = [r for r in RECORDS if r not in generic]
    assert not missing, f"undocumented recording rules: {missing}"
    for rule in ALERT_RULES:
        assert f"`{rule['alert']}`" in doc, rule["alert"]


def runbook_queries() -> List[str]:
    """The queries of the runbook's ```promql blocks: a query starts on a line that is
    neither indented nor an operator continuation; ``#`` comments are dropped."""
    with open(os.path.join(ROOT, "docs", "runbook.md")) as f:
        blocks = re.findall(r"```promql\n(.*?)```", f.read(), flags=re.S)
    queries: List[str] = []
    for block in blocks:
        for line in block.splitlines():
            code = line.split("#", 1)[0].rstrip()
            if not code.strip():
                continue
            if code[0].isspace() or re.match(r"[-+*/]|unless |and |or ", code):
                queries[-1] += "\n" + code
            else:
                queries.append(code)
    return queries


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
def test_runbook_queries_parse(tmp_path) -> None:
    queries = runbook_queries()
    assert len(queries) >= 20
    rules = {"groups": [{"name": "runbook", "rules": [
        {"record": f"runbook:query:{i}", "expr": q} for i, q in enumerate(queries)]}]}
    path = tmp_path / "runbook_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
