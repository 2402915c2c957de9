"""Static checks of the generated promql/rules.yml and promql/alerts.yml and of their promtool
tests (promql/tests/*.yml).

Every engine's tool checks the syntax and the tested values (test_rule_engines.py: both
promtools, vmalert, vmalert-tool; ``make check-rules`` runs it alone); these tests check
the project's conventions: the committed files are the generator's output, every recording rule has a ``promql_expr_test`` and every alert is tested
on both sides of its ``for:``, no recording rule reads another, every threshold literal is the
spec's value, replicas are summed before any division, the promtool tests hold for the
thresholds in force, every rule and alert is documented, and the runbook's queries exist and
are tested.
"""

import doctest
import functools
import glob
import os
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest
import yaml

from promdrift.instrumentation.binning import format_le
from promdrift.instrumentation.spec import SETTINGS, Thresholds
from promdrift.promql import (ALERT_NAMES, Expressions, RulesConfig, alerts_yaml, generate,
                              recording_groups, rules_yaml)

from . import PROMTOOLS, queries

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMQL = os.path.join(ROOT, "promql")
RUNBOOK_BASE = "https://github.com/promdrift/promdrift/blob/main/docs/runbook.md#"
#: Whether test_committed_files_are_what_the_generator_writes also compares the dashboards.
DASHBOARDS = False


def load(name: str) -> dict:
    with open(os.path.join(PROMQL, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


RULES = load("rules.yml")
ALERTS = load("alerts.yml")
GROUPS = {g["name"]: g["rules"] for g in RULES["groups"]}
RECORDS = [r["record"] for g in RULES["groups"] for r in g["rules"]]
ALERT_RULES = [r for g in ALERTS["groups"] for r in g["rules"]]
TEST_FILES = sorted(glob.glob(os.path.join(PROMQL, "tests", "*.yml")))
RULE_NAME = r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+"


@functools.lru_cache(maxsize=None)
def promtool_doc(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def cases_in(path: str) -> List[dict]:
    return promtool_doc(path)["tests"]


def expr_tests() -> List[str]:
    return [t["expr"] for path in TEST_FILES for group in cases_in(path)
            for t in group.get("promql_expr_test", [])]


def mentions(name: str, expr: str) -> bool:
    return re.search(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])", expr) is not None


def duration(text: str) -> int:
    """Seconds of a Prometheus duration such as ``1h5m`` or ``65m``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), text
    return sum(int(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------------------- generated files
def test_committed_files_are_what_the_generator_writes() -> None:
    """promql/*.yml (and, once DASHBOARDS is on, grafana/dashboards/*.json) are the default
    configuration's output, byte for byte: regenerate with `make generate`."""
    stale = generate(RulesConfig(), PROMQL, dashboards=DASHBOARDS,
                     dashboards_dir=os.path.join(ROOT, "grafana", "dashboards"), check=True)
    assert not stale, f"not what `promdrift rules` generates (run `make generate`): {stale}"


def test_files_exist() -> None:
    assert len(RECORDS) > 50 and len(ALERT_RULES) == len(ALERT_NAMES) and TEST_FILES


def test_record_names_follow_level_metric_operations() -> None:
    for name in RECORDS:
        assert re.fullmatch(RULE_NAME, name), name
    assert len(set(RECORDS)) == len(RECORDS), "a rule is recorded twice"


def test_alert_names_are_camel_case_with_prefix() -> None:
    for rule in ALERT_RULES:
        assert re.fullmatch(r"Promdrift(?:[A-Z][a-z]+|PSI)+", rule["alert"]), rule["alert"]


@pytest.mark.parametrize("prefix", ["promdrift", "promdrift-quality"])
def test_window_groups_differ_only_by_their_window(prefix: str) -> None:
    """Generated with the 5m window's range set to 1h, the 5m group is the committed 1h group
    with 5m in the rule names: the window is all that sets the groups apart."""
    stretched = {g.name: g for g in recording_groups(RulesConfig(ranges={"5m": "1h"}))}
    renamed = [{"record": re.sub(r"5m$", "1h", r.record), "expr": r.expr}
               for r in stretched[f"{prefix}-5m"].rules]
    assert renamed == GROUPS[f"{prefix}-1h"]
    assert [re.sub(r"1h$", "5m", r["record"]) for r in GROUPS[f"{prefix}-1h"]] == \
        [r["record"] for r in GROUPS[f"{prefix}-5m"]]


def test_no_recording_rule_reads_a_recorded_series() -> None:
    """Self-contained rules: no evaluation order, on any engine, changes a value."""
    for group in RULES["groups"]:
        for rule in group["rules"]:
            read_ = [name for name in RECORDS if mentions(name, rule["expr"])]
            assert not read_, (rule["record"], read_)
            assert not re.search(RULE_NAME, rule["expr"]), rule["record"]


def test_alerts_read_only_recorded_series_and_raw_series() -> None:
    for rule in ALERT_RULES:
        for name in re.findall(r"(?<![\w:])" + RULE_NAME, rule["expr"]):
            assert name in RECORDS, (rule["alert"], name)


def test_live_counters_are_summed_across_replicas_before_anything_else() -> None:
    """Every rate()/increase() of an exposed series is directly inside a ``sum by``, so no
    ratio is taken per replica."""
    for rule in (r for g in RULES["groups"] + ALERTS["groups"] for r in g["rules"]):
        expr = " ".join(rule["expr"].split())
        found = list(re.finditer(r"(rate|increase)\(promdrift_", expr))
        for m in found:
            assert re.search(r"sum by \([a-z_, ]+\) \($", expr[:m.start()]), \
                (rule.get("record") or rule.get("alert"), expr[max(0, m.start() - 80):m.end()])


def test_baseline_series_are_max_aggregated() -> None:
    """Every exposed baseline series (identical on the replicas) is read through ``max by``
    (or only grouped), never summed."""
    seen = 0
    for rule in (r for g in RULES["groups"] + ALERTS["groups"] for r in g["rules"]):
        expr = " ".join(rule["expr"].split())
        for m in re.finditer(r"(?<![\w:])promdrift_baseline_[a-z_]+(?![a-z_:])", expr):
            if m.group(0) == "promdrift_baseline_info":
                continue
            seen += 1
            assert re.search(r"(max|group) by \([a-z_, ]+\) \($", expr[:m.start()]), \
                (rule.get("record") or rule.get("alert"), m.group(0))
    assert seen > 50


# ---------------------------------------------------------------------------- thresholds
NUMBER = r"(?<![\w.:$\[])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.\]])"
#: literals that are part of a formula, not thresholds: 0.5 * sum, 2 * TP, > 0, * 0 + 1 ...
STRUCTURAL = {"0", "1", "2", "0.5"}


def expressions(groups: List[dict]) -> List[Tuple[str, str]]:
    return [(r.get("record") or r["alert"], r["expr"]) for g in groups for r in g["rules"]]


def generated(config: RulesConfig) -> List[Tuple[str, str]]:
    return expressions(yaml.safe_load(rules_yaml(config))["groups"]
                       + yaml.safe_load(alerts_yaml(config))["groups"])


def sentinel(setting) -> object:
    """A valid value of ``setting`` that no expression holds by chance."""
    if setting.integer:
        return setting.default + 7
    return round(setting.default * 0.77, 9)


@functools.lru_cache(maxsize=None)
def threshold_positions() -> Dict[Tuple[int, int], str]:
    """(expression index, literal index) -> the setting whose value that literal is, found
    by generating with each setting changed and diffing the literals."""
    default = generated(RulesConfig())
    found: Dict[Tuple[int, int], str] = {}
    for s in SETTINGS:
        if s.boolean:
            continue
        changed = generated(RulesConfig(thresholds={s.name: sentinel(s)}))
        assert [n for n, _ in changed] == [n for n, _ in default]
        for i, ((name, a), (_, b)) in enumerate(zip(default, changed)):
            la, lb = re.findall(NUMBER, a), re.findall(NUMBER, b)
            assert len(la) == len(lb), (s.name, name)
            for j, (x, y) in enumerate(zip(la, lb)):
                if x != y:
                    assert y == Expressions.num(sentinel(s)), (s.name, name, y)
                    assert (i, j) not in found, (s.name, found[(i, j)], name)
                    found[(i, j)] = s.name
    return found


def test_every_threshold_literal_of_the_committed_files_is_the_spec_value() -> None:
    """Every number in rules.yml and alerts.yml is either part of a formula or the value of
    one spec setting at its default; every numeric setting is used somewhere."""
    committed = expressions(RULES["groups"] + ALERTS["groups"])
    assert [n for n, _ in committed] == [n for n, _ in generated(RulesConfig())]
    positions = threshold_positions()
    defaults = {s.name: s.default for s in SETTINGS}
    for i, (name, expr) in enumerate(committed):
        for j, literal in enumerate(re.findall(NUMBER, expr)):
            setting = positions.get((i, j))
            if setting is None:
                assert literal in STRUCTURAL, f"{name}: {literal} is no spec threshold"
            else:
                assert literal == Expressions.num(defaults[setting]), (name, setting, literal)
    assert set(positions.values()) == {s.name for s in SETTINGS if not s.boolean}


def header_thresholds(name: str = "alerts.yml") -> Dict[str, object]:
    """The thresholds a generated file lists in its header."""
    header = read("promql", name).split("\ngroups:", 1)[0]
    out: Dict[str, object] = {}
    for s in SETTINGS:
        m = re.search(r"^#\s+" + re.escape(s.name) + r"\s+(\S+)\s", header, flags=re.M)
        assert m, f"{name}: header does not list {s.name}"
        out[s.name] = m.group(1) == "True" if s.boolean else float(m.group(1))
    return out


def test_headers_list_the_thresholds_and_durations_in_force() -> None:
    """The header tables say what the expressions use (the promtool tests' `requires:` are
    checked against them)."""
    committed = expressions(RULES["groups"] + ALERTS["groups"])
    for (i, j), setting in threshold_positions().items():
        literal = re.findall(NUMBER, committed[i][1])[j]
        assert float(literal) == header_thresholds()[setting], (setting, literal)
    crit = [e for n, e in committed if n.endswith("ks_critical:1h")]
    assert crit and all(("count by (model, model_version, baseline)" in e) == header_thresholds()["ks_familywise"]
                        for e in crit)
    assert header_thresholds("rules.yml") == header_thresholds("alerts.yml")
    flat = " ".join(read("promql", "alerts.yml").split("\ngroups:")[0].replace("#", " ").split())
    for rule in ALERT_RULES:
        assert f"{rule['alert']} {rule['for']}" in flat, rule["alert"]


_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def requirements(path: str) -> List[str]:
    """The ``# requires: a < name <= b, name == v`` conditions a promtool test file states."""
    with open(path, encoding="utf-8") as f:
        lines = re.findall(r"^\s*# requires: (.*)$", f.read(), flags=re.M)
    return [c.strip() for line in lines for c in line.split(",")]


def holds(condition: str, values: Dict[str, object]) -> bool:
    tokens = re.findall(r"<=|>=|==|<|>|[\w.+-]+", condition)
    assert len(tokens) in (3, 5) and all(t in _COMPARE for t in tokens[1::2]), condition

    def value(token: str) -> object:
        if token in values:
            return values[token]
        if token in ("true", "false"):
            return token == "true"
        return float(token)

    assert any(t in values for t in tokens[0::2]), f"{condition}: names no threshold"
    return all(_COMPARE[op](value(a), value(b))
               for a, op, b in zip(tokens[0::2], tokens[1::2], tokens[2::2]))


@pytest.mark.parametrize("path", TEST_FILES, ids=os.path.basename)
def test_promtool_tests_hold_for_the_thresholds_in_force(path: str) -> None:
    """Each scenario states the thresholds it is computed for; a changed default names the
    scenarios to recompute instead of failing them one by one."""
    values = header_thresholds()
    failed = [c for c in requirements(path) if not holds(c, values)]
    assert not failed, f"{os.path.basename(path)} requires {failed}; alerts.yml has " + \
        ", ".join(f"{k} {values[k]}" for k in sorted(values) if any(k in c for c in failed))


def test_requirements_are_read() -> None:
    values = {"min_samples": 500.0, "ks_familywise": True, "ks_alpha": 0.01}
    assert holds("490 < min_samples <= 500", values)
    assert not holds("490 < min_samples <= 500", dict(values, min_samples=1000.0))
    assert holds("ks_familywise == true", values) and holds("ks_alpha < 0.05", values)
    assert requirements(os.path.join(PROMQL, "tests", "alerts_test.yml"))


# ---------------------------------------------------------------------------- promtool tests
@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_has_an_expr_test(record: str) -> None:
    assert any(mentions(record, e) for e in expr_tests()), f"no promql_expr_test reads {record}"


@pytest.mark.parametrize("alert", [r["alert"] for r in ALERT_RULES])
def test_every_alert_is_tested_just_before_and_at_its_for(alert: str) -> None:
    """Some test group expects no alert one evaluation before the alert fires, and fires it."""
    rule = next(r for r in ALERT_RULES if r["alert"] == alert)
    assert rule.get("for"), f"{alert} has no for:"
    found = False
    for path in TEST_FILES:
        step = duration(promtool_doc(path).get("evaluation_interval", "1m"))
        for group in cases_in(path):
            cases = [c for c in group.get("alert_rule_test", []) if c["alertname"] == alert]
            quiet = {duration(c["eval_time"]) for c in cases if not c.get("exp_alerts")}
            firing = {duration(c["eval_time"]) for c in cases if c.get("exp_alerts")}
            if any(t - step in quiet for t in firing):
                found = True
    assert found, f"{alert}: no test of 'not firing' one step before 'firing'"


@pytest.mark.parametrize("path", TEST_FILES, ids=os.path.basename)
def test_alert_tests_fix_the_group_evaluation_order(path: str) -> None:
    """Without group_eval_order, promtool evaluates groups in random order, so an alert may
    read the previous evaluation of a rule and fire one step late, now and then."""
    doc = promtool_doc(path)
    if not any(g.get("alert_rule_test") for g in doc["tests"]):
        return
    groups = [g["name"] for g in RULES["groups"]] + [g["name"] for g in ALERTS["groups"]]
    assert doc.get("group_eval_order") == groups


@pytest.mark.parametrize("path", TEST_FILES, ids=os.path.basename)
def test_fixture_edges_are_written_as_the_exporter_writes_them(path: str) -> None:
    """`le`, `upper` and `lower` of the input series are format_le strings (Prometheus 3's
    normal form), as promdrift exports them."""
    for group in cases_in(path):
        for s in group.get("input_series", []):
            for label, value in re.findall(r'\b(le|upper|lower)="([^"]*)"', s["series"]):
                assert format_le(float(value)) == value, (s["series"], label)


def single_group(path: str, index: int, directory, rules: str, alerts: str) -> str:
    """Test group ``index`` of ``path`` alone, reading ``rules`` and ``alerts`` instead of the
    shipped files, all written into ``directory``."""
    (directory / "rules.yml").write_text(rules)
    (directory / "alerts.yml").write_text(alerts)
    doc = dict(promtool_doc(path), tests=[cases_in(path)[index]])
    doc["rule_files"] = ["rules.yml", "alerts.yml"]
    (directory / "case.yml").write_text(yaml.safe_dump(doc))
    return str(directory / "case.yml")


_DEFAULT = Thresholds()
MUTANTS = [
    # (what is wrong, thresholds, text replaced in rules.yml, test file, test group index)
    ("min_samples 10% low", {"min_samples": int(_DEFAULT.min_samples * 0.9)}, None,
     "alerts_test.yml", 0),
    ("ks_alpha doubled", {"ks_alpha": _DEFAULT.ks_alpha * 2}, None, "familywise_test.yml", 0),
    ("KS critical value per feature", {"ks_familywise": False}, None, "familywise_test.yml", 0),
    ("class regex without (?s)", {}, ('"(?s)(.*)"', '"(.*)"'), "quality_test.yml", 1),
]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m[0])
def test_promtool_tests_fail_on_a_wrong_rule(mutant, tmp_path) -> None:
    """The promtool tests can fail: each of these wrong rule sets fails a tested value (the
    regex one on Prometheus 2 only: Prometheus 3's "." matches a newline)."""
    what, thresholds, replace, name, index = mutant
    config = RulesConfig(thresholds=thresholds)
    rules = rules_yaml(config)
    if replace:
        assert replace[0] in rules
        rules = rules.replace(*replace)
    case = single_group(os.path.join(PROMQL, "tests", name), index, tmp_path, rules,
                        alerts_yaml(config))
    out = subprocess.run([shutil.which("promtool"), "test", "rules", case],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0, f"{name} (group {index}) passes with {what}"
    report = out.stdout + out.stderr
    assert "got:" in report, report[-3000:]  # a tested value differs: no setup error


# ---------------------------------------------------------------------------- documentation
def runbook_anchors() -> List[str]:
    headings = re.findall(r"^## (\S+)", read("docs", "runbook.md"), flags=re.M)
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


def rules_section() -> str:
    """docs/metrics.md's "Recording rules and alerts" section."""
    return read("docs", "metrics.md").split("## Recording rules and alerts", 1)[1] \
        .split("\n## ", 1)[0]


def test_metrics_doc_documents_every_rule_and_alert() -> None:
    doc = rules_section()
    names = set(re.findall(r"`(" + RULE_NAME + r")`", doc))
    # rules of the 5m groups are documented together with their 1h twin
    generic = {n.replace("1h", "5m") for n in names} | names
    missing = [r for r in RECORDS if r not in generic]
    assert not missing, f"undocumented recording rules: {missing}"
    for rule in ALERT_RULES:
        assert f"`{rule['alert']}`" in doc, rule["alert"]


@pytest.mark.parametrize("doc", ["metrics", "runbook"])
def test_docs_name_only_rules_that_exist(doc: str) -> None:
    """No removed rule (intermediates, the promdrift:config group) is named as if it were
    recorded; docs/rules.md lists them with their replacements."""
    text = rules_section() if doc == "metrics" else read("docs", "runbook.md")
    named = set(re.findall(r"(?<![\w:])" + RULE_NAME + r"(?![\w:])", text))
    unknown = sorted(n for n in named if n not in RECORDS and n != "level:metric:operations")
    assert not unknown, f"docs/{doc}.md names rules that are not recorded: {unknown}"
    assert "promdrift:config" not in text


def runbook_queries() -> List[str]:
    """The queries of the runbook's ```promql blocks: a query starts on a line that is
    neither indented nor an operator continuation; ``#`` comments are dropped."""
    blocks = re.findall(r"```promql\n(.*?)```", read("docs", "runbook.md"), flags=re.S)
    out: List[str] = []
    for block in blocks:
        for line in block.splitlines():
            code = re.sub(r"\s+#.*$|^#.*$", "", line).rstrip()
            if not code.strip():
                continue
            if code[0].isspace() or re.match(r"[-+*/]|unless |and |or ", code):
                out[-1] += "\n" + code
            else:
                out.append(code)
    return out


@pytest.mark.skipif(not PROMTOOLS, reason="needs promtool")
@pytest.mark.parametrize("promtool", PROMTOOLS)
def test_runbook_queries_parse(promtool: str, tmp_path) -> None:
    queries_ = runbook_queries()
    assert len(queries_) >= 20
    rules = {"groups": [{"name": "runbook", "rules": [
        {"record": f"runbook:query:{i}", "expr": q} for i, q in enumerate(queries_)]}]}
    path = tmp_path / "runbook_queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(queries.QUERIES))
def test_runbook_gives_the_raw_series_queries(name: str) -> None:
    """The runbook's queries for the series the rules no longer record are the generator's
    fragments, and a promtool test evaluates each on a fixture."""
    assert queries.normal(queries.query(name)) in {queries.normal(q) for q in runbook_queries()}, \
        f"docs/runbook.md lacks the query {name}:\n{queries.as_runbook_text(name)}"
    assert any(queries.pattern(name).search(queries.normal(e)) for e in expr_tests()), \
        f"no promql_expr_test evaluates the runbook query {name}"


def test_queries_examples() -> None:
    assert doctest.testmod(queries).failed == 0

