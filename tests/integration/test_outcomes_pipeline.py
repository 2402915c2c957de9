"""End to end for the outcome monitors on every engine: DriftMonitor apps with labels, facets
and attributions -> rule engine with the promql/ rules -> Alertmanager -> webhook.

The stack (five apps: two classifiers of the breast cancer diagnosis with attributions, served
healthy and degraded; two penguin species classifiers with facet ``island``, one biased; a
penguin body mass regressor) is described in tests/integration/outcomes.py and shared with
test_outcomes_dashboard.py through the session fixture ``outcomes`` of conftest.py. The
expected statistics and alerts are computed with numpy from the raw predictions and labels;
test_engines_agree compares the engines with each other.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict

import numpy as np
import pytest

from .engines import ENGINE_PAIRS, ENGINES, PAIR_IDS, need
from .outcomes import (NDCG_MIN, OURS, accuracy, dppl, live_attribution, ndcg_reference,
                       received, snapshot)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(outcomes: Dict[str, Any]) -> Dict[str, Any]:
    """The shared stack (tests/integration/conftest.py)."""
    return outcomes


def test_the_degraded_models_and_only_they_alert(run: Dict[str, Any]) -> None:
    assert run["expected"] == {("PromdriftModelQualityDegraded", "cancer_bad"),
                               ("PromdriftAttributionDrift", "cancer_bad"),
                               ("PromdriftBiasDrift", "penguins_bad")}
    assert received(run["alerts"]) == run["expected"]
    shown = {}
    for a in run["alerts"]:
        if a["labels"]["alertname"] in OURS:
            shown.setdefault(a["labels"]["alertname"], a)
    for name, a in sorted(shown.items()):
        print(f"\n{name} {json.dumps(a['labels'], sort_keys=True)}\n  "
              f"{a['annotations']['description']}\n  at the webhook "
              f"{a['received_at'] - run['fed_at']:.1f} s after the traffic")
    q = shown["PromdriftModelQualityDegraded"]["labels"]
    assert q["output"] == "diagnosis" and q["severity"] == "critical"


def test_labels_were_all_matched(run: Dict[str, Any]) -> None:
    for name, counts in run["handled"].items():
        n = len(run["models"][name].rows)
        assert counts == {"received": n, "matched": n, "held": 0, "duplicate": 0,
                          "invalid": 0}


def test_accuracy_rule_equals_numpy(run: Dict[str, Any]) -> None:
    got = {s["metric"]["model"]: s["value"] for s in run["values"]["accuracy"]}
    classifiers = {n: m for n, m in run["models"].items() if not m.numeric}
    assert len(classifiers) == 4 and set(got) == set(classifiers)
    for name, m in classifiers.items():
        assert math.isclose(got[name], accuracy(m), rel_tol=1e-9), name


def test_ndcg_rule_equals_numpy(run: Dict[str, Any]) -> None:
    got = {s["metric"]["model"]: s["value"] for s in run["values"]["ndcg"]}
    cancer = run["cancer"]
    for name in ("cancer_ok", "cancer_bad"):
        m = run["models"][name]
        live = live_attribution(m, cancer["names"])
        assert math.isclose(got[name], ndcg_reference(live, cancer["baseline"].attribution),
                            rel_tol=1e-9)
    assert got["cancer_ok"] >= NDCG_MIN > got["cancer_bad"]


def test_dppl_rule_equals_numpy(run: Dict[str, Any]) -> None:
    checked = 0
    for s in run["values"]["dppl"]:
        lab = s["metric"]
        m = run["models"][lab["model"]]
        groups = np.array([r["island"] for r in m.rows], dtype=object)
        if lab["group"] == "__other__" or lab["class"] == "__other__":
            continue
        ref = dppl(groups, np.array(m.pred, dtype=object), lab["group"], lab["class"])
        assert math.isclose(s["value"], ref, abs_tol=1e-9), lab
        checked += 1
    assert checked == 2 * 3 * 3  # two models, three islands, three species


@pytest.mark.parametrize("reference,other", ENGINE_PAIRS, ids=PAIR_IDS)
def test_engines_agree(reference: str, other: str,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same labelled traffic gives the same accuracy, nDCG and DPPL (ratios of counts of
    one window: to 1e-9) and the same alerts on both engines."""
    for e in (reference, other):
        need(ENGINES[e])
    a, b = (snapshot(ENGINES[e], str(tmp_path_factory.mktemp(f"outcomes-{e}")))
            for e in (reference, other))
    worst = {}
    for name in a["values"]:
        va, vb = ({tuple(sorted(s["metric"].items())): s["value"] for s in x["values"][name]}
                  for x in (a, b))
        assert set(va) == set(vb), name
        worst[name] = max((abs(va[k] - vb[k]) for k in va), default=0.0)
        assert worst[name] <= 1e-9, (name, worst[name])
    print(f"\n{reference} vs {other}: " + "; ".join(f"{k} max |diff| {v:.2g}"
                                                  for k, v in worst.items()))
    assert a["alerts"] == b["alerts"]
