"""promql/rules.yml, alerts.yml and their unit tests, checked by every engine's own tool.

- ``promtool check rules`` and ``promtool test rules`` of both Prometheus engines (Debian's
  Prometheus 2 and Prometheus 3.5 from scripts/fetch-engines), one test file at a time;
- ``vmalert -dryRun``, VictoriaMetrics' check of the rule files (MetricsQL parsing, templates);
- ``vmalert-tool unittest`` on the same promql/tests/*.yml, converted by
  :func:`to_vmalert_tool` where the two formats differ only in spelling.

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
import tempfile
from typing import Any, Dict, List, Optional

import pytest
import yaml

from integration.engines import ENGINES, PROMETHEUS_ENGINES, known_failure, need

from .background import BackgroundJobs, Run

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PROMQL = os.path.normpath(os.path.join(ROOT, "promql"))
RULE_FILES = [os.path.join(PROMQL, "rules.yml"), os.path.join(PROMQL, "alerts.yml")]
TEST_FILES = sorted(glob.glob(os.path.join(PROMQL, "tests", "*.yml")))

# Why today's promql/tests fail on the other engines (known_failure reasons).
LEFT_OPEN_RANGES = (
    "Prometheus 3 range selectors are left-open, (t - w, t]: the fixtures sample every "
    "counter at the window start t - w, which Prometheus 2 and VictoriaMetrics use and "
    "Prometheus 3 drops, so its increase() extrapolates the window's first interval (580 -> "
    "579.66 where a replica stops early) and the expected values no longer hold")
PROMETHEUS_3_FILES = {"categorical_test.yml", "invalid_test.yml", "numeric_test.yml"}
VMALERT_TOOL = (
    "vmalert-tool evaluates a rule that reads another rule of its group against that rule's "
    "result of the previous evaluation (as vmalert does), and the rule files chain rules "
    "within groups (window counts, ratios, CDFs): values are those of one evaluation "
    "earlier, and alerts fire one or more evaluations late")


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


def _vmalert_tool(path: str):
    def job(run: Run):
        with open(path) as f:
            doc = to_vmalert_tool(yaml.safe_load(f), os.path.dirname(path))
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
def test_promtool_runs_the_rule_tests(engine_id: str, path: str, request) -> None:
    need(ENGINES[engine_id], ["promtool"])
    if os.path.basename(path) in PROMETHEUS_3_FILES:
        known_failure(request, LEFT_OPEN_RANGES, ["prometheus-3"], engine=engine_id)
    proc = JOBS.result(f"promtool-test:{engine_id}:{os.path.basename(path)}")
    assert proc.returncode == 0, _output(proc)


def test_vmalert_accepts_the_rule_files() -> None:
    """``vmalert -dryRun``: every expression parses as MetricsQL, every template renders."""
    need(ENGINES["victoriametrics"], ["vmalert"])
    proc = JOBS.result("vmalert-dry-run")
    assert proc.returncode == 0, _output(proc)


def to_vmalert_tool(doc: Dict[str, Any], test_dir: str) -> Dict[str, Any]:
    """A promtool test file (parsed YAML) as vmalert-tool reads it.

    - ``promql_expr_test`` is spelled ``metricsql_expr_test``;
    - ``rule_files`` become absolute (vmalert-tool reads them relative to its working
      directory, promtool relative to the test file);
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
                assert new["expr"] == old["expr"]
            else:
                assert new["expr"] == f'label_del({old["expr"].strip()}, "__name__")'


@pytest.mark.parametrize("path", TEST_FILES, ids=_ids(TEST_FILES))
def test_vmalert_tool_runs_the_rule_tests(path: str, request) -> None:
    need(ENGINES["victoriametrics"], ["vmalert-tool"])
    known_failure(request, VMALERT_TOOL)
    proc = JOBS.result(f"vmalert-tool:{os.path.basename(path)}")
    assert proc.returncode == 0, _output(proc)
