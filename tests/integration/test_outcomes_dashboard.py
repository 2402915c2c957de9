"""Every query of the outcomes dashboard, run against every engine scraping apps with labels,
facets and attributions (the shared stack of outcomes.py: two breast cancer classifiers with
attributions, two penguin species classifiers with facet ``island``, a penguin body mass
regressor, each fed once with its true labels).

The dashboard is the one generated for the stack's rule configuration (``outcomes.CONFIG``).
Variables are resolved as Grafana would (``label_values`` through ``/api/v1/series``, each
option of the custom ``window``: text the rule suffix, value the range); every target runs
with its variables substituted, as an instant query at the moment the whole feed is in both
windows (``at``) or as a range query over the 20 s before it (1 s step, ``$__rate_interval``
= 4 s), and must return at least one series with a finite value for every combination its
row applies to ("Categorical ..." / "Numeric ..." rows: outputs of that kind; "Bias ...":
models with a facet; "Attributions": models fed attributions; queries of the validation
quality: models whose baseline has it). The accuracy, macro F1, per-class F1, MAE, RMSE,
DPPL and mean |attribution| queries must equal what numpy computes from the fed data; the
labelled pairs, the fed count up to the extrapolation of increase().
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from .grafana import (Option, combinations, custom_options, generated, query_series,
                      queries_without_data, rows, substitute, variables)
from .outcomes import CONFIG, accuracy, dppl, live_attribution, mae, rmse
from .servers import RuleEngine

pytestmark = pytest.mark.integration

DASH = generated(CONFIG)["promdrift-outcomes.json"]
WINDOWS = {o.text: o for o in custom_options(variables(DASH)["window"])}
SCRAPE_S = 1
RANGE_S = 20


def _series(prom: RuleEngine, expr: str, instant: bool, at: float) -> List[Dict[str, Any]]:
    return query_series(prom, expr, instant, at, RANGE_S, SCRAPE_S)


def _run(run: Dict[str, Any], expr: str, combo: Dict[str, Any], instant: bool = True
         ) -> List[Dict[str, Any]]:
    text = substitute(expr, combo, interval_s=SCRAPE_S, scrape_s=SCRAPE_S, range_s=RANGE_S)
    return _series(run["prom"], text, instant, run["at"])


@pytest.fixture(scope="module")
def combos(outcomes: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every combination of variable values; a model without facets gets ``facet`` None
    (Grafana's empty variable), for which no bias panel applies."""
    out = combinations(outcomes["prom"], DASH, outcomes["at"], optional=["facet"])
    assert {c["model"] for c in out} == set(outcomes["models"])
    return out


def _applies(row: Optional[str], run: Dict[str, Any], combo: Dict[str, Any],
             expr: str = "") -> bool:
    m = run["models"][combo["model"]]
    if "promdrift_baseline_quality" in expr or "promdrift_quality_degradation" in expr:
        if not m.baseline.quality:   # the penguin classifiers have no validation quality
            return False
    if row.startswith("Categorical"):
        return not m.numeric
    if row.startswith("Numeric"):
        return m.numeric
    if row.startswith("Bias"):
        return combo["facet"] is not None
    if row.startswith("Attributions"):
        return m.attributions is not None
    return True


def _window(name: str) -> Option:
    return WINDOWS[name]


def _subst(combo: Dict[str, Any]) -> Dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in combo.items()}


def test_every_panel_query_returns_data(outcomes: Dict[str, Any], combos) -> None:
    assert all(row is not None for row, _ in rows(DASH))
    ran, empty = queries_without_data(
        outcomes["prom"], DASH, combos, outcomes["at"],
        lambda row, p, t, c: _applies(row, outcomes, c, t["expr"]), RANGE_S, SCRAPE_S)
    assert not empty, f"{len(empty)} of {ran} queries returned no data, first: {empty[:3]}"
    n_targets = sum(len(p["targets"]) for _, p in rows(DASH))
    print(f"\npromdrift-outcomes.json: {len(list(rows(DASH)))} panels, {n_targets} queries, "
          f"{ran} runs over {len(combos)} variable combinations, all with data")


def test_merged_queries_return_the_same_label_names(outcomes: Dict[str, Any], combos) -> None:
    """Grafana's merge joins rows on equal label columns: the queries of a bar chart or table
    must return the same label names (no ``__name__``)."""
    checked = 0
    for row, panel in rows(DASH):
        if not any(tr["id"] == "merge" for tr in panel.get("transformations", [])):
            continue
        for c in (c for c in combos if _applies(row, outcomes, c)):
            keys = {frozenset(s["metric"]) for t in panel["targets"]
                    for s in _run(outcomes, t["expr"], _subst(c))}
            assert len(keys) == 1 and "__name__" not in next(iter(keys)), (panel["title"], keys)
            checked += 1
    assert checked >= 3


def _target(title: str, ref: str = "A") -> Dict[str, Any]:
    panel = next(p for _, p in rows(DASH) if p["title"] == title)
    return next(t for t in panel["targets"] if t["refId"] == ref)


def _by(series: List[Dict[str, Any]], *labels: str) -> Dict[Any, float]:
    out = {}
    for s in series:
        key = tuple(s["metric"][k] for k in labels)
        out[key[0] if len(key) == 1 else key] = s["values"][-1]
    return out


def _f1(m) -> Dict[str, float]:
    truth, pred = np.array(m.truth, dtype=object), np.array(m.pred, dtype=object)
    out = {}
    for c in sorted(set(m.truth) | set(m.pred)):
        tp = np.sum((truth == c) & (pred == c))
        out[c] = float(2 * tp / (np.sum(truth == c) + np.sum(pred == c)))
    return out


@pytest.mark.parametrize("window", ["1h", "5m"])
def test_quality_panels_equal_numpy(outcomes: Dict[str, Any], window: str) -> None:
    """Both windows hold the whole feed at ``at``: the dashboard's quality equals numpy's."""
    checked = 0
    for name, m in outcomes["models"].items():
        c = {"model": name, "baseline": ".*", "output": m.output, "window": _window(window),
             "facet": ""}
        pairs = _run(outcomes, _target("Labelled pairs in the window")["expr"], c)
        # increase() extrapolates the counter to the window's edges (ratios of two counters
        # scraped together, like accuracy or MAE, cancel it; a count does not)
        (n,) = [s["values"][0] for s in pairs]
        assert len(m.rows) <= n <= 1.25 * len(m.rows), (name, n)
        if m.numeric:
            got_mae = _run(outcomes, _target("MAE and RMSE vs validation", "A")["expr"], c)
            got_rmse = _run(outcomes, _target("MAE and RMSE vs validation", "B")["expr"], c)
            assert math.isclose(got_mae[0]["values"][0], mae(m), rel_tol=1e-9)
            assert math.isclose(got_rmse[0]["values"][0], rmse(m), rel_tol=1e-9)
        else:
            acc = _run(outcomes, _target("Accuracy and macro F1 vs validation", "A")["expr"], c)
            f1 = _run(outcomes, _target("Accuracy and macro F1 vs validation", "B")["expr"], c)
            assert math.isclose(acc[0]["values"][0], accuracy(m), rel_tol=1e-9), name
            ref = _f1(m)
            assert math.isclose(f1[0]["values"][0], float(np.mean(list(ref.values()))),
                                rel_tol=1e-9), name
            per_class = _by(_run(outcomes, _target("Per-class precision, recall and F1",
                                                   "C")["expr"], c), "class")
            assert per_class == pytest.approx(ref, rel=1e-9), name
        checked += 1
    assert checked == 5
    # the degraded classifier shows as degraded, beyond the tolerance
    c = {"model": "cancer_bad", "baseline": ".*", "output": "diagnosis",
         "window": _window(window), "facet": ""}
    deg = _by(_run(outcomes, _target("Degradation vs tolerance")["expr"], c), "metric")
    assert deg["accuracy"] > 0.05


def test_bias_table_equals_numpy(outcomes: Dict[str, Any]) -> None:
    table = next(p for _, p in rows(DASH) if p["title"] == "Bias: live vs validation")
    checked = 0
    for name in ("penguins_ok", "penguins_bad"):
        m = outcomes["models"][name]
        c = {"model": name, "baseline": ".*", "output": "species", "facet": "island",
             "window": _window("1h")}
        live = _by(_run(outcomes, table["targets"][0]["expr"], c), "group", "class")
        base = _by(_run(outcomes, table["targets"][1]["expr"], c), "group", "class")
        groups = np.array([r["island"] for r in m.rows], dtype=object)
        pred = np.array(m.pred, dtype=object)
        for (g, cls), v in live.items():
            if "__other__" in (g, cls):
                continue
            assert math.isclose(v, dppl(groups, pred, g, cls), abs_tol=1e-9), (name, g, cls)
            ref = m.baseline.bias["island"]["dppl"][g][cls]
            assert math.isclose(base[(g, cls)], ref, abs_tol=1e-9), (name, g, cls)
            checked += 1
    assert checked == 2 * 3 * 3


def test_attribution_bars_equal_numpy(outcomes: Dict[str, Any]) -> None:
    bars = next(p for _, p in rows(DASH) if p["title"].startswith("Mean |attribution|"))
    cancer = outcomes["cancer"]
    for name in ("cancer_ok", "cancer_bad"):
        c = {"model": name, "baseline": ".*", "window": _window("1h")}
        live = _by(_run(outcomes, bars["targets"][0]["expr"], c), "feature")
        base = _by(_run(outcomes, bars["targets"][1]["expr"], c), "feature")
        assert live == pytest.approx(live_attribution(outcomes["models"][name],
                                                      cancer["names"]), rel=1e-9)
        assert base == pytest.approx(cancer["baseline"].attribution, rel=1e-6)
    ndcg = {n: _run(outcomes, _target("Attribution ranking nDCG vs threshold")["expr"],
                    {"model": n, "baseline": ".*"})[0]["values"][0]
            for n in ("cancer_ok", "cancer_bad")}
    assert ndcg["cancer_ok"] >= 0.9 > ndcg["cancer_bad"]


def test_annotation_shows_the_outcome_alerts(outcomes: Dict[str, Any]) -> None:
    (a,) = [a for a in DASH["annotations"]["list"] if a.get("expr")]
    got = set()
    for model in sorted(outcomes["models"]):          # the dashboard shows one model
        expr = substitute(a["expr"], {"model": model, "baseline": ".*"})
        got |= {(s["metric"]["alertname"], s["metric"]["model"])
                for s in _series(outcomes["prom"], expr, False, outcomes["alerts_at"])}
    assert got == outcomes["expected"]
