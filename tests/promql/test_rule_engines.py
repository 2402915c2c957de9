"""promql/rules.yml, alerts.yml and their unit tests, checked by every engine's own tool.

- ``promtool check rules`` and ``promtool test rules`` of both Prometheus engines (Debian's
  Prometheus 2 and Prometheus 3.5 from scripts/fetch-engines), one test file at a time;
- ``vmalert -dryRun``, VictoriaMetrics' check of the rule files (MetricsQL parsing, templates);
- ``vmalert-tool unittest`` on the same promql/tests/*.yml, converted by
  :func:`to_vmalert_tool` (the field's spelling, metric names MetricsQL keeps, and
  MetricsQL's ``round(x, nearest)``, which can come out one ``nearest`` low).

What the formats and the engines' semantics do differently is written down in
docs/engines.md ("Rule unit tests on every engine"). A tool whose binary is missing is
skipped, or fails under ``PROMDRIFT_REQUIRE_ENGINES=1`` (as ``make test`` sets it).

The tool runs are :data:`JOBS`: tests/promql/conftest.py starts those of the collected tests
in the background as soon as collection ends (:mod:`promql.background`), and each test reads
its job's result.
"""

from __future__ import annotations

import copy
import glob
import os
import re
import tempfile
from typing import Any, Callable, Dict, List, Optional

import pytest
import yaml

from integration.engines import ENGINES, PROMETHEUS_ENGINES, need

from .background import BackgroundJobs, Run

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PROMQL = os.path.normpath(os.path.join(ROOT, "promql"))
RULE_FILES = [os.path.join(PROMQL, "rules.yml"), os.path.join(PROMQL, "alerts.yml")]
TEST_FILES = sorted(glob.glob(os.path.join(PROMQL, "tests", "*.yml")))

def _ids(paths: List[str]) -> List[str]:
    return [os.path.basename(p) for p in paths]


def _binary(engine_id: str, role: str) -> str:
    return ENGINES[engine_id].binaries[role] or role


def _promtool_check(engine_id: str):
    return lambda run: run([_binary(engine_id, "promtool"), "check", "rules", *RULE_FILES],
                           PROMQL)


def _promtool_test(engine_id: str, path: str):
    return lambda run: run([_binary(engine_id, "promtool"), "test", "rules", path], PROMQL)


def _vmalert_dry_run(run: Run):
    return run([_binary("victoriametrics", "vmalert"), "-dryRun", "-loggerLevel=WARN",
                *(f"-rule={p}" for p in RULE_FILES)], PROMQL)


def _vmalert_tool(path: str, change: Optional[Callable[[Dict[str, Any]], None]] = None):
    def job(run: Run):
        with open(path) as f:
            doc = yaml.safe_load(f)
        if change is not None:
            change(doc)
        doc = to_vmalert_tool(doc, os.path.dirname(path))
        with tempfile.TemporaryDirectory(prefix="vmalert-tool-") as tmp:
            converted = os.path.join(tmp, os.path.basename(path))
            with open(converted, "w") as f:
                yaml.safe_dump(doc, f, sort_keys=False, width=1000)
            return run([_binary("victoriametrics", "vmalert-tool"), "unittest",
                        "--disableAlertgroupLabel", f"--files={converted}"], tmp)
    return job


# A test file's size stands for its run time (vmalert-tool is the slowest tool).
JOBS = BackgroundJobs()
for _e in PROMETHEUS_ENGINES:
    JOBS.add(f"promtool-check:{_e}", _promtool_check(_e))
    for _p in TEST_FILES:
        JOBS.add(f"promtool-test:{_e}:{os.path.basename(_p)}", _promtool_test(_e, _p),
                 weight=os.path.getsize(_p))
JOBS.add("vmalert-dry-run", _vmalert_dry_run)
for _p in TEST_FILES:
    JOBS.add(f"vmalert-tool:{os.path.basename(_p)}", _vmalert_tool(_p),
             weight=2 * os.path.getsize(_p))


def one_value_off(doc: Dict[str, Any]) -> None:
    """The first expected sample of the first expression test of ``doc``, made 1 % larger."""
    case = next(c for g in doc["tests"] for c in g.get("promql_expr_test", [])
                if c.get("exp_samples"))
    case["exp_samples"][0]["value"] *= 1.01


# A test file vmalert-tool must reject: attribution_test.yml (the smallest) with one_value_off.
WRONG_FILE = os.path.join(PROMQL, "tests", "attribution_test.yml")
JOBS.add("vmalert-tool-wrong", _vmalert_tool(WRONG_FILE, one_value_off),
         weight=2 * os.path.getsize(WRONG_FILE))


def job_key(item: Any) -> Optional[str]:
    """The key in :data:`JOBS` of a collected test of this module (None for the others)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    path = os.path.basename(params.get("path", ""))
    return {
        "test_promtool_checks_the_rule_files": f"promtool-check:{params.get('engine_id')}",
        "test_promtool_runs_the_rule_tests":
            f"promtool-test:{params.get('engine_id')}:{path}",
        "test_vmalert_accepts_the_rule_files": "vmalert-dry-run",
        "test_vmalert_tool_runs_the_rule_tests": f"vmalert-tool:{path}",
        "test_vmalert_tool_fails_on_a_wrong_expectation": "vmalert-tool-wrong",
    }.get(getattr(item, "originalname", ""))


def _output(proc: Any) -> str:
    return proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("engine_id", PROMETHEUS_ENGINES)
def test_promtool_checks_the_rule_files(engine_id: str) -> None:
    need(ENGINES[engine_id], ["promtool"])
    proc = JOBS.result(f"promtool-check:{engine_id}")
    assert proc.returncode == 0, _output(proc)


@pytest.mark.parametrize("engine_id", PROMETHEUS_ENGINES)
@pytest.mark.parametrize("path", TEST_FILES, ids=_ids(TEST_FILES))
def test_promtool_runs_the_rule_tests(engine_id: str, path: str) -> None:
    need(ENGINES[engine_id], ["promtool"])
    proc = JOBS.result(f"promtool-test:{engine_id}:{os.path.basename(path)}")
    assert proc.returncode == 0, _output(proc)


def test_vmalert_accepts_the_rule_files() -> None:
    """``vmalert -dryRun``: every expression parses as MetricsQL, every template renders."""
    need(ENGINES["victoriametrics"], ["vmalert"])
    proc = JOBS.result("vmalert-dry-run")
    assert proc.returncode == 0, _output(proc)


_ROUND = re.compile(r"(?<![\w:])round\(")


def exact_round(expr: str) -> str:
    """``expr`` with every ``round(E, 0.0001)`` (a nearest of 10^-k) written as
    ``(round((E) * 10000) / 10000)``.

    MetricsQL rounds to ``nearest`` by adding half of it, subtracting the remainder and
    truncating ``v * 10^k``: a floating-point error of the remainder can leave ``v * 10^k``
    just below an integer, so ``round(0.1, 0.000001)`` gives 0.099999 where PromQL gives
    0.1. Rounding to an integer is exact on both, and an integer divided by 10^k is the
    double nearest the decimal, which is what the expected value parses to.

        >>> exact_round("round(sum(rate(x[5m])), 0.001) > 0")
        '(round((sum(rate(x[5m]))) * 1000) / 1000) > 0'
    """
    out, pos = [], 0
    for m in _ROUND.finditer(expr):
        if m.start() < pos:
            continue
        depth, comma, i = 1, None, m.end()
        while depth:
            c = expr[i]
            depth += (c in "([{") - (c in ")]}")
            if c == "," and depth == 1:
                comma = i
            i += 1
        nearest = expr[comma + 1:i - 1].strip() if comma else ""
        if not re.fullmatch(r"0\.0*1", nearest):
            continue
        scale = str(10 ** (len(nearest) - 2))
        inner = exact_round(expr[m.end():comma].strip())
        out += [expr[pos:m.start()], f"(round(({inner}) * {scale}) / {scale})"]
        pos = i
    return "".join(out) + expr[pos:]


def to_vmalert_tool(doc: Dict[str, Any], test_dir: str) -> Dict[str, Any]:
    """A promtool test file (parsed YAML) as vmalert-tool reads it.

    - ``promql_expr_test`` is spelled ``metricsql_expr_test``;
    - ``rule_files`` become absolute (vmalert-tool reads them relative to its working
      directory, promtool relative to the test file);
    - ``round(E, 0.000001)`` becomes ``round(E * 1000000) / 1000000`` (:func:`exact_round`);
    - an expression whose expected samples carry no metric name drops it with
      ``label_del(..., "__name__")``: MetricsQL keeps the name through functions such as
      ``round()`` or ``clamp_min()``, where PromQL drops it.

    Alert tests need vmalert-tool's ``--disableAlertgroupLabel`` (else each alert carries an
    ``alertgroup`` label and each case must name its ``groupname``).
    """
    out = copy.deepcopy(doc)
    out["rule_files"] = [os.path.normpath(os.path.join(test_dir, p)) for p in doc["rule_files"]]
    for group in out["tests"]:
        cases = group.pop("promql_expr_test", None)
        if cases is None:
            continue
        for case in cases:
            case["expr"] = exact_round(case["expr"])
            samples = case.get("exp_samples") or []
            if samples and all(str(s.get("labels", "")).lstrip().startswith("{")
                               for s in samples):
                case["expr"] = f'label_del({case["expr"].strip()}, "__name__")'
        group["metricsql_expr_test"] = cases
    return out


@pytest.mark.parametrize("path", TEST_FILES, ids=_ids(TEST_FILES))
def test_conversion_for_vmalert_tool_changes_only_the_spelling(path: str) -> None:
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = to_vmalert_tool(doc, os.path.dirname(path))
    assert all(os.path.isfile(p) for p in out["rule_files"])
    assert len(out["tests"]) == len(doc["tests"])
    for before, after in zip(doc["tests"], out["tests"]):
        assert "promql_expr_test" not in after
        assert {k: v for k, v in after.items() if k != "metricsql_expr_test"} == \
            {k: v for k, v in before.items() if k != "promql_expr_test"}
        cases = before.get("promql_expr_test", [])
        assert len(after.get("metricsql_expr_test", [])) == len(cases)
        for old, new in zip(cases, after.get("metricsql_expr_test", [])):
            assert {k: v for k, v in new.items() if k != "expr"} == \
                {k: v for k, v in old.items() if k != "expr"}
            named = any(not str(x["labels"]).lstrip().startswith("{")
                        for x in old.get("exp_samples") or [])
            if named or not old.get("exp_samples"):
                assert new["expr"] == exact_round(old["expr"])
            else:
                assert new["expr"] == f'label_del({exact_round(old["expr"]).strip()}, "__name__")'


def test_exact_round_rewrites_only_rounding_to_a_power_of_ten() -> None:
    assert exact_round("round(a, 0.000001)") == "(round((a) * 1000000) / 1000000)"
    assert exact_round("round(max by (x) (round(b, 0.01)), 0.1) + round(c)") == \
        "(round((max by (x) ((round((b) * 100) / 100))) * 10) / 10) + round(c)"
    assert exact_round("round(a, 0.5)") == "round(a, 0.5)"
    assert exact_round("my_round(a, 0.1)") == "my_round(a, 0.1)"


@pytest.mark.parametrize("path", TEST_FILES, ids=_ids(TEST_FILES))
def test_vmalert_tool_runs_the_rule_tests(path: str) -> None:
    need(ENGINES["victoriametrics"], ["vmalert-tool"])
    proc = JOBS.result(f"vmalert-tool:{os.path.basename(path)}")
    assert proc.returncode == 0, _output(proc)


def test_vmalert_tool_fails_on_a_wrong_expectation() -> None:
    """The check above can fail: one expected value 1 % off makes vmalert-tool exit 1 and
    print what it expected and what it got."""
    need(ENGINES["victoriametrics"], ["vmalert-tool"])
    proc = JOBS.result("vmalert-tool-wrong")
    assert proc.returncode != 0, _output(proc)
    text = proc.stdout + proc.stderr
    assert "FAILED" in text and "exp:" in text and "got:" in text, _output(proc)
