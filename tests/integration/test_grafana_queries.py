"""Every query of every drift dashboard, run against every engine.

Two instrumented Flask apps serve real data (penguins: numeric and categorical features, a
class output; breast cancer: numeric features, a class output and a numeric risk score), fed
continuously from a background thread with drift and invalid values injected, so every
statistic of both windows exists at the moment the queries run and the drift alerts fire.
The engine (the ``engine`` fixture: Prometheus 2, Prometheus 3, VictoriaMetrics + vmalert,
each a Grafana data source of type Prometheus) scrapes every second and evaluates the rules
``promdrift rules`` generates for :data:`CONFIG` (``generated.fast_config``: "1h" over 60 s,
"5m" over 15 s, ``for:`` 3 s); the dashboards are those generated for the same configuration.

The dashboard variables are resolved as Grafana would: the ``label_values(...)`` query of
each query variable runs against the engine (``/api/v1/series``), custom variables take each
of their options (``window``: the window's name as text, for the rule names, and its range as
value, for the fragments computed at query time). Every target then runs with its variables
substituted, as an instant query
for ``instant`` targets and as a range query (1 s step, ``$__rate_interval`` = 4 s) for the
others, and must return at least one series with a finite value for every variable value it
applies to (panels in a "Numeric ..." row apply to numeric features / outputs, panels in a
"Categorical ..." row to categorical ones, all others to every value).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import pytest

from .generated import fast_config, write_rules
from .grafana import (OUTCOME_DASHBOARDS, Option, combinations, custom_options, generated,
                      queries_without_data, query_series, row_applies, rows, substitute,
                      variables)
from .engines import EngineSpec
from .servers import AppServer, RuleEngine, wait_until

pytestmark = pytest.mark.integration

DATA = __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "data")
SCRAPE_S = 1
RANGE_S = 20
TICK_S = 0.1
BATCH = 100                 # rows per model and tick: 1,000 rows/s per model
MAX_TICKS = 3000            # the feeding thread stops after 5 minutes whatever happens
MIN_WINDOW_N = 2000         # rows in the 1h window before the queries run
CONFIG = fast_config(thresholds={"min_samples": 50})
BC_FEATURES = ["mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness"]
EXPECTED_ALERTS = {("PromdriftFeatureDrift", "penguins", "body_mass_g"),
                   ("PromdriftCategoricalDrift", "penguins", "island"),
                   ("PromdriftInvalidValuesHigh", "penguins", "sex"),
                   ("PromdriftFeatureDrift", "breast_cancer", "mean_radius"),
                   ("PromdriftPredictionDrift", "breast_cancer", "risk_score")}
# A JavaScript number literal (Number("+Inf") is NaN, hence the "+Infinity" relabelling).
JS_NUMBER = re.compile(r"[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")


def _risk_score(radius: np.ndarray) -> np.ndarray:
    """A stand-in numeric model output: a logistic function of the mean radius."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(radius, dtype=np.float64) - 14.0) / 2.0))


@dataclass
class Model:
    name: str
    train: Dict[str, np.ndarray]
    features: List[str]
    outputs: List[str]


def _models() -> List[Model]:
    from promdrift.instrumentation.training.tabular import read_csv

    pg = read_csv(f"{DATA}/penguins.csv", progress=False)
    bc = read_csv(f"{DATA}/breast_cancer.csv", progress=False)
    bc = {**{k: bc[k] for k in BC_FEATURES}, "diagnosis": bc["diagnosis"],
          "risk_score": _risk_score(bc["mean_radius"])}
    return [Model("penguins", pg, [k for k in pg if k != "species"], ["species"]),
            Model("breast_cancer", bc, BC_FEATURES, ["diagnosis", "risk_score"])]


def _drifted_batch(model: Model, rng: np.random.Generator) -> Tuple[List[Dict[str, Any]],
                                                                      List[Dict[str, Any]]]:
    """``BATCH`` rows resampled from the training data, with drift and invalid values."""
    idx = rng.choice(len(model.train[model.features[0]]), size=BATCH, replace=True)
    cols = {k: v[idx].copy() for k, v in model.train.items()}
    if model.name == "penguins":
        cols["body_mass_g"] = cols["body_mass_g"] + 700.0
        island = cols["island"].astype(object)
        island[: BATCH // 2] = "Anvers"                  # never seen in training
        cols["island"] = island
        sex = cols["sex"].astype(object)
        sex[: BATCH // 4] = None                          # 25 % invalid
        cols["sex"] = sex
    else:
        cols["mean_radius"] = cols["mean_radius"] * 1.3
        cols["risk_score"] = _risk_score(cols["mean_radius"])

    def py(v: Any) -> Any:
        return float(v) if isinstance(v, (float, np.floating)) else v

    feats = [{k: py(cols[k][i]) for k in model.features} for i in range(BATCH)]
    preds = [{k: py(cols[k][i]) for k in model.outputs} for i in range(BATCH)]
    return feats, preds


@dataclass
class Stack:
    prom: RuleEngine
    models: Dict[str, Model]
    baselines: Dict[str, Any]

    def kind(self, model: str, name: str) -> str:
        b = self.baselines[model]
        col = next(c for c in (*b.features, *b.predictions) if c.name == name)
        return col.kind


@pytest.fixture(scope="module")
def stack(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory):
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline, DriftMonitor

    workdir = str(tmp_path_factory.mktemp(f"grafana-{engine.id}"))
    rule_files = write_rules(CONFIG, f"{workdir}/rules")
    models = _models()
    baselines = {m.name: Baseline.fit(m.train, model=m.name, predictions=m.outputs)
                 for m in models}
    monitors = {m.name: DriftMonitor(baselines[m.name], model=m.name,
                                     registry=CollectorRegistry()) for m in models}
    stop = threading.Event()

    def feed() -> None:
        rng = np.random.default_rng(20240612)
        for _ in range(MAX_TICKS):
            for m in models:
                monitors[m.name].observe(*_drifted_batch(m, rng))
            if stop.wait(TICK_S):
                return

    feeder = threading.Thread(target=feed, name="grafana-traffic", daemon=True)
    with AppServer(monitors["penguins"].instrument(Flask("penguins"))) as a1, \
            AppServer(monitors["breast_cancer"].instrument(Flask("breast_cancer"))) as a2, \
            engine.stack(workdir, [a1.address, a2.address], rule_files,
                         interval=f"{SCRAPE_S}s") as prom:
        prom.wait_up(2, timeout=40)
        feeder.start()
        try:
            def firing() -> bool:
                prom.sync()
                got = {(a["metric"]["alertname"], a["metric"]["model"],
                        a["metric"].get("feature") or a["metric"].get("output"))
                       for a in prom.query('ALERTS{alertstate="firing"}')}
                n = prom.query("min(model_output:promdrift_prediction_class:increase1h)")
                return EXPECTED_ALERTS <= got and bool(n) and n[0]["value"] >= MIN_WINDOW_N
            with contextlib.suppress(TimeoutError):  # the tests tell what is missing
                wait_until(firing, timeout=60, interval=0.5,
                           what=f"the injected drift alerts and {MIN_WINDOW_N} rows per window")
            yield Stack(prom, {m.name: m for m in models}, baselines)
        finally:
            stop.set()
            feeder.join(timeout=10)


# ------------------------------------------------------------------------- query helpers
def _series(prom: RuleEngine, expr: str, instant: bool, now: float) -> List[Dict[str, Any]]:
    return query_series(prom, expr, instant, now, RANGE_S, SCRAPE_S)


def _applies(row: Optional[str], stack: Stack, combo: Mapping[str, Any]) -> bool:
    subject = combo.get("feature") or combo.get("output")
    return row_applies(row, None if subject is None else stack.kind(combo["model"], subject))


DASHBOARDS = {n: d for n, d in generated(CONFIG).items() if n not in OUTCOME_DASHBOARDS}


def _window(dash: Mapping[str, Any], name: str) -> Option:
    return next(o for o in custom_options(variables(dash)["window"]) if o.text == name)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_returns_data(stack: Stack, name: str) -> None:
    dash = DASHBOARDS[name]
    now = time.time()
    combos = combinations(stack.prom, dash, now)
    ran, empty = queries_without_data(stack.prom, dash, combos, now,
                                      lambda row, p, t, c: _applies(row, stack, c),
                                      RANGE_S, SCRAPE_S)
    assert not empty, f"{len(empty)} of {ran} queries returned no data, first: {empty[:3]}"
    print(f"\n{name}: {ran} queries over {len(combos)} variable combinations, all with data")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_annotation_queries_return_the_firing_alerts(stack: Stack, name: str) -> None:
    dash = DASHBOARDS[name]
    now = time.time()
    models = sorted(stack.models)
    queries = [a for a in dash["annotations"]["list"] if a.get("expr")]
    assert queries
    multi = variables(dash)["model"]["multi"]
    for a in queries:
        got = set()
        for selection in ([models] if multi else models):   # a detail dashboard: one model
            expr = substitute(a["expr"], {"model": selection, "baseline": ".*", "feature": "x",
                                         "output": "x"})
            got |= {s["metric"]["alertname"] for s in _series(stack.prom, expr, False, now)}
        assert {"PromdriftFeatureDrift", "PromdriftInvalidValuesHigh"} <= got, got


def _merged_panels() -> List[Tuple[str, Dict[str, Any]]]:
    return [(n, p) for n, d in sorted(DASHBOARDS.items()) for _, p in rows(d)
            if any(tr["id"] == "merge" for tr in p.get("transformations", []))]


@pytest.mark.parametrize("name,panel", _merged_panels(),
                         ids=[f"{n}:{p['title']}" for n, p in _merged_panels()])
def test_merged_queries_join_on_the_same_labels(stack: Stack, name: str,
                                                panel: Dict[str, Any]) -> None:
    """Grafana's merge transformation joins table rows whose label columns are equal: every
    query of a merged panel must return the same label names (no ``__name__``), and a bar
    chart's queries the same x values (one live bar next to each baseline bar). Numeric x
    values (bucket edges) must parse as JavaScript numbers, so that convertFieldType can sort
    the bins numerically."""
    dash = DASHBOARDS[name]
    now = time.time()
    combos = [c for c in combinations(stack.prom, dash, now)
              if _applies(next(r for r, p in rows(dash) if p is panel), stack, c)]
    numeric_x = any(tr["id"] == "convertFieldType" for tr in panel["transformations"])
    x = panel.get("options", {}).get("xField")
    checked = 0
    for c in combos:
        results = [_series(stack.prom, substitute(t["expr"], c, SCRAPE_S, SCRAPE_S, RANGE_S),
                           True, now) for t in panel["targets"]]
        keys = [{frozenset(s["metric"]) for s in r} for r in results]
        assert all(len(k) == 1 for k in keys), (panel["title"], c, keys)
        assert len({next(iter(k)) for k in keys}) == 1, (panel["title"], c, keys)
        assert "__name__" not in next(iter(keys[0]))
        if x:
            xs = [{s["metric"][x] for s in r} for r in results]
            assert all(v == xs[0] for v in xs), (panel["title"], c, xs)
            assert len(xs[0]) >= 2
            if numeric_x:
                assert all(JS_NUMBER.fullmatch(v) for v in xs[0]), xs[0]
                assert "+Infinity" in xs[0]
        checked += 1
    assert checked >= 1


def test_worst_feature_tops_the_overview(stack: Stack) -> None:
    """The overview table sorts by KS / critical value: its first query, run for all models,
    ranks an injected drift first (a shifted feature), and a resampled clean one below 1."""
    dash = DASHBOARDS["promdrift-overview.json"]
    table = next(p for _, p in rows(dash) if p["type"] == "table"
                 and "KS" in p["title"])
    expr = substitute(table["targets"][0]["expr"], {"model": ".+", "baseline": ".*",
                                                    "window": _window(dash, "1h")})
    ratio = {(s["metric"]["model"], s["metric"]["feature"]): s["values"][0]
             for s in _series(stack.prom, expr, True, time.time())}
    worst = max(ratio, key=ratio.get)
    assert worst in {("penguins", "body_mass_g"), ("breast_cancer", "mean_radius")}
    assert ratio[worst] > 1
    assert ratio[("penguins", "bill_depth_mm")] < 1


@pytest.mark.parametrize("name,panel", [(n, p) for n, p in _merged_panels()
                                        if p["type"] == "barchart"],
                         ids=[f"{n}:{p['title']}" for n, p in _merged_panels()
                              if p["type"] == "barchart"])
def test_bar_charts_compare_probabilities(stack: Stack, name: str, panel: Dict[str, Any]) -> None:
    """Each bar series is a distribution: bin / category / class shares sum to 1 (up to the
    PSI floor of empty bins), a CDF rises to 1 at +Infinity; the injected drift shows as a
    large gap between a live and a baseline bar, the resampled (undrifted) columns do not."""
    dash = DASHBOARDS[name]
    now = time.time()
    row = next(r for r, p in rows(dash) if p is panel)
    x = panel["options"]["xField"]
    cdf = x == "le"
    combos = [c for c in combinations(stack.prom, dash, now) if _applies(row, stack, c)
              and c["window"].text == "1h"]
    gaps = {}
    for c in combos:
        live, base = ({s["metric"][x]: s["values"][0] for s in _series(
            stack.prom, substitute(t["expr"], c, SCRAPE_S, SCRAPE_S, RANGE_S), True, now)}
            for t in panel["targets"])
        for bars in (live, base):
            if cdf:
                assert bars["+Infinity"] == pytest.approx(1.0)
                edges = sorted(bars, key=float)
                assert all(bars[a] <= bars[b] + 1e-12 for a, b in zip(edges, edges[1:]))
            else:
                assert sum(bars.values()) == pytest.approx(1.0, abs=1e-4 * len(bars))
        gaps[(c["model"], c.get("feature") or c.get("output"))] = \
            max(abs(live[k] - base[k]) for k in base)
    drifted = {("penguins", "body_mass_g"), ("penguins", "island"),
               ("breast_cancer", "mean_radius"), ("breast_cancer", "risk_score")}
    print(f"\n{name} {panel['title']}, largest gap live - baseline: "
          + ", ".join(f"{k[1]} {v:.3f}" for k, v in sorted(gaps.items())))
    assert gaps
    for key, gap in gaps.items():
        if key in drifted:
            assert gap > 0.08, (key, gap)
        else:
            assert gap < 0.05, (key, gap)
