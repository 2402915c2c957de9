"""Dashboards with a kept label, ``keep_labels=["cluster"]``, against targets in two clusters.

The model ``penguins`` (outputs: the species and a numeric ``mass_score``, the body mass in
kg) is served in two clusters: ``east`` serves the training rows of tests/data/penguins.csv
with the body mass shifted by 700 g, every fourth island replaced by one nobody has seen
(Anvers) and every fourth sex missing; ``west`` serves the training rows unchanged. A second
model, ``canary``, is served in ``east`` only. The engine (the ``engine`` fixture, on Prometheus
3 and VictoriaMetrics + vmalert) scrapes the three apps with a ``cluster`` target
label and evaluates the rules ``promdrift rules`` generates with ``keep_labels=["cluster"]``;
the dashboards are those of the same configuration.

Each app is fed once, so at ``at`` both windows hold exactly what was fed: every panel query
must return data for every variable combination (the clusters, their models, every feature
and output, both windows), the ``cluster`` variable must narrow what the panels show (the
models it lists, the series every query returns), and the per-bin, per-category and per-class
shares, the CDFs and the KS statistics the dashboards show for one cluster must equal numpy's
on the rows that cluster was fed (increase() extrapolates every series of one target by the
same factor, so ratios of them are exact).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from .generated import fast_config, write_rules
from .grafana import (Option, combinations, custom_options, generated, queries_without_data,
                      query_series, row_applies, rows, substitute, variables)
from .engines import NEWEST, EngineSpec
from .servers import AppServer, wait_until

# The kept label changes the by-lists of the same queries test_grafana_queries.py runs on all
# three engines: this module runs on Prometheus 3 and VictoriaMetrics (suite time).
pytestmark = [pytest.mark.integration, pytest.mark.engines(*NEWEST)]

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
CONFIG = fast_config(keep_labels=["cluster"], thresholds={"min_samples": 100})
DASHBOARDS = {n: d for n, d in generated(CONFIG).items() if n != "promdrift-outcomes.json"}
FLOOR = CONFIG.thresholds.psi_bin_floor
SCRAPE_S, RANGE_S = 1, 20
EXPECTED_ALERTS = {("PromdriftFeatureDrift", "body_mass_g"),
                   ("PromdriftCategoricalDrift", "island")}


def _py(v: Any) -> Any:
    return float(v) if isinstance(v, (float, np.floating)) else v


def _rows(cols: Dict[str, np.ndarray], names: List[str]) -> List[Dict[str, Any]]:
    n = len(next(iter(cols.values())))
    return [{k: _py(cols[k][i]) for k in names} for i in range(n)]


@pytest.fixture(scope="module")
def stack(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory):
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline, DriftMonitor
    from promdrift.instrumentation.training.tabular import read_csv

    workdir = str(tmp_path_factory.mktemp(f"kept-labels-{engine.id}"))
    train = read_csv(os.path.join(DATA, "penguins.csv"), progress=False)
    train["mass_score"] = train["body_mass_g"] / 1000.0
    outputs = ["species", "mass_score"]
    features = [k for k in train if k not in outputs]
    baselines = {m: Baseline.fit(train, model=m, predictions=outputs)
                 for m in ("penguins", "canary")}
    east = {k: v.copy() for k, v in train.items()}
    east["body_mass_g"] = east["body_mass_g"] + 700.0
    east["mass_score"] = east["body_mass_g"] / 1000.0
    east["island"] = east["island"].astype(object)
    east["island"][::4] = "Anvers"
    east["sex"] = east["sex"].astype(object)
    east["sex"][1::4] = None
    fed = {("east", "penguins"): east, ("west", "penguins"): train, ("east", "canary"): train}
    monitors = {key: DriftMonitor(baselines[key[1]], model=key[1], registry=CollectorRegistry())
                for key in fed}
    with contextlib.ExitStack() as es:
        apps = {key: es.enter_context(AppServer(m.instrument(Flask(f"{key[0]}-{key[1]}"))))
                for key, m in monitors.items()}
        prom = es.enter_context(engine.stack(
            workdir, [a.address for a in apps.values()], write_rules(CONFIG, f"{workdir}/rules"),
            interval=f"{SCRAPE_S}s",
            target_labels={a.address: {"cluster": key[0]} for key, a in apps.items()}))
        prom.wait_up(len(apps), timeout=40, scrapes=3)
        for key, cols in fed.items():
            monitors[key].observe(_rows(cols, features), _rows(cols, outputs))
        fed_at = time.time()
        n_rows = sum(len(cols["species"]) for cols in fed.values())

        def scraped() -> bool:
            prom.sync()
            got = prom.query("sum(promdrift_inferences_total)")
            return bool(got) and got[0]["value"] == n_rows
        wait_until(scraped, timeout=30, what="every row scraped")
        at = prom.wait_evaluated_after(fed_at, len(apps))

        def firing() -> bool:
            prom.sync()
            got = {(a["metric"]["alertname"], a["metric"].get("feature"))
                   for a in prom.query('ALERTS{alertstate="firing", cluster="east", '
                                       'model="penguins"}')}
            return EXPECTED_ALERTS <= got
        wait_until(firing, timeout=40, interval=0.5, what="the drift alerts of east")
        yield {"prom": prom, "at": at, "alerts_at": time.time(), "fed": fed,
               "baselines": baselines, "train": train}


def _kind(stack: Dict[str, Any], combo: Dict[str, Any]) -> Optional[str]:
    subject = combo.get("feature") or combo.get("output")
    if subject is None:
        return None
    b = stack["baselines"][combo["model"]]
    return next(c.kind for c in (*b.features, *b.predictions) if c.name == subject)


def _window(dash: Dict[str, Any], name: str) -> Option:
    return next(o for o in custom_options(variables(dash)["window"]) if o.text == name)


def _panel(name: str, title: str) -> Dict[str, Any]:
    return next(p for _, p in rows(DASHBOARDS[name]) if p["title"] == title)


def _run(stack: Dict[str, Any], expr: str, values: Dict[str, Any]) -> List[Dict[str, Any]]:
    return query_series(stack["prom"], substitute(expr, values, SCRAPE_S, SCRAPE_S, RANGE_S),
                        True, stack["at"])


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_returns_data(stack: Dict[str, Any], name: str) -> None:
    dash = DASHBOARDS[name]
    assert "cluster" in variables(dash)
    combos = combinations(stack["prom"], dash, stack["at"])
    ran, empty = queries_without_data(
        stack["prom"], dash, combos, stack["at"],
        lambda row, p, t, c: row_applies(row, _kind(stack, c)), RANGE_S, SCRAPE_S,
        alerts_at=stack["alerts_at"])
    assert not empty, f"{len(empty)} of {ran} queries returned no data, first: {empty[:3]}"
    print(f"\n{name}: {ran} queries over {len(combos)} variable combinations, all with data")


def test_the_cluster_variable_narrows_the_models_and_the_series(stack: Dict[str, Any]) -> None:
    dash = DASHBOARDS["promdrift-feature.json"]
    models: Dict[str, set] = {}
    for c in combinations(stack["prom"], dash, stack["at"]):
        models.setdefault(c["cluster"], set()).add(c["model"])
    assert models == {"east": {"penguins", "canary"}, "west": {"penguins"}}
    bins = _panel("promdrift-feature.json", "Distribution per bin: live vs baseline")
    for cluster in ("east", "west"):
        values = {"cluster": cluster, "model": "penguins", "baseline": ".*",
                  "feature": "body_mass_g", "window": _window(dash, "1h")}
        for t in bins["targets"]:
            got = _run(stack, t["expr"], values)
            assert len(got) == 20 and {s["metric"]["cluster"] for s in got} == {cluster}


def test_overview_ranks_each_cluster_separately(stack: Dict[str, Any]) -> None:
    """The overview (cluster: All) lists body_mass_g once per cluster: drifted in east, the
    training distribution itself in west (KS 0), never the two pooled."""
    dash = DASHBOARDS["promdrift-overview.json"]
    table = next(p for _, p in rows(dash) if p["type"] == "table" and "KS" in p["title"])
    values = {"cluster": ".*", "model": ".+", "baseline": ".*", "window": _window(dash, "1h")}
    ratio = {(s["metric"]["cluster"], s["metric"]["model"], s["metric"]["feature"]):
             s["values"][0] for s in _run(stack, table["targets"][0]["expr"], values)}
    assert ratio[("east", "penguins", "body_mass_g")] > 1
    assert ratio[("west", "penguins", "body_mass_g")] < 1e-9
    assert ("west", "canary", "body_mass_g") not in ratio
    west = {"cluster": "west", "model": ".+", "baseline": ".*", "window": _window(dash, "1h")}
    assert {s["metric"]["cluster"] for s in _run(stack, table["targets"][0]["expr"], west)} \
        == {"west"}


def _valid(values: np.ndarray) -> np.ndarray:
    return np.array([v for v in values if isinstance(v, float) and math.isfinite(v)])


def _numeric_reference(values: np.ndarray, edges: np.ndarray) -> Dict[str, Dict[float, float]]:
    v = _valid(values)
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
    uppers = [*edges.tolist(), math.inf]
    return {"bins": {u: max(c / len(v), FLOOR) for u, c in zip(uppers, counts)},
            "cdf": {u: float(np.mean(v <= u)) for u in uppers}}


def _category_reference(values: np.ndarray, categories: List[str]) -> Dict[str, float]:
    valid = [v for v in values if isinstance(v, str)]
    keys = [v if v in categories else "__other__" for v in valid]
    return {c: keys.count(c) / len(keys) for c in [*categories, "__other__"]}


def _bars(stack: Dict[str, Any], panel: Dict[str, Any], values: Dict[str, Any]):
    x = panel["options"]["xField"]
    out = []
    for t in panel["targets"]:
        got = _run(stack, t["expr"], values)
        assert {s["metric"]["cluster"] for s in got} == {values["cluster"]}
        out.append({s["metric"][x]: s["values"][0] for s in got})
    return out


@pytest.mark.parametrize("cluster", ["east", "west"])
def test_feature_bars_and_ks_equal_numpy(stack: Dict[str, Any], cluster: str) -> None:
    dash = DASHBOARDS["promdrift-feature.json"]
    cols, train = stack["fed"][(cluster, "penguins")], stack["train"]
    bins = _panel("promdrift-feature.json", "Distribution per bin: live vs baseline")
    cdf = _panel("promdrift-feature.json", "Cumulative distribution: live vs baseline")
    shares = _panel("promdrift-feature.json", "Category shares: live vs baseline")
    overview = DASHBOARDS["promdrift-overview.json"]
    ks_table = next(p for _, p in rows(overview) if p["type"] == "table" and "KS" in p["title"])
    ks = {s["metric"]["feature"]: s["values"][0] for s in _run(
        stack, ks_table["targets"][1]["expr"],
        {"cluster": cluster, "model": "penguins", "baseline": ".*",
         "window": _window(overview, "1h")})}
    checked = 0
    for col in stack["baselines"]["penguins"].features:
        values = {"cluster": cluster, "model": "penguins", "baseline": ".*", "feature": col.name,
                  "window": _window(dash, "1h")}
        if col.kind == "numeric":
            edges = np.array(col.edges)
            live, base = _numeric_reference(cols[col.name], edges), \
                _numeric_reference(train[col.name], edges)
            for panel, key in ((bins, "bins"), (cdf, "cdf")):
                got_live, got_base = _bars(stack, panel, values)
                for got, ref in ((got_live, live[key]), (got_base, base[key])):
                    assert {float(u) for u in got} == set(ref), (col.name, key)
                    for u, v in got.items():
                        assert math.isclose(v, ref[float(u)], rel_tol=1e-9, abs_tol=1e-12), \
                            (cluster, col.name, key, u, v, ref[float(u)])
            gap = max(abs(live["cdf"][u] - base["cdf"][u]) for u in live["cdf"])
            assert math.isclose(ks[col.name], gap, rel_tol=1e-9, abs_tol=1e-12), col.name
        else:
            cats = list(col.categories)
            got_live, got_base = _bars(stack, shares, values)
            for got, ref in ((got_live, _category_reference(cols[col.name], cats)),
                             (got_base, _category_reference(train[col.name], cats))):
                assert set(got) <= set(ref) and {c for c, v in ref.items() if v} <= set(got)
                for c, v in got.items():
                    assert math.isclose(v, ref[c], rel_tol=1e-9, abs_tol=1e-12), \
                        (cluster, col.name, c)
        checked += 1
    assert checked == 7
    drifted = ks["body_mass_g"]
    assert (drifted > 0.3) if cluster == "east" else (drifted < 1e-9)


@pytest.mark.parametrize("cluster", ["east", "west"])
def test_class_shares_equal_numpy(stack: Dict[str, Any], cluster: str) -> None:
    dash = DASHBOARDS["promdrift-predictions.json"]
    panel = _panel("promdrift-predictions.json", "Class shares: live vs baseline")
    col = stack["baselines"]["penguins"].predictions[0]
    values = {"cluster": cluster, "model": "penguins", "baseline": ".*", "output": col.name,
              "window": _window(dash, "1h")}
    got_live, got_base = _bars(stack, panel, values)
    ref_live = _category_reference(stack["fed"][(cluster, "penguins")]["species"],
                                   list(col.categories))
    ref_base = _category_reference(stack["train"]["species"], list(col.categories))
    for got, ref in ((got_live, ref_live), (got_base, ref_base)):
        assert {c for c, v in ref.items() if v} <= set(got) <= set(ref)
        assert got == pytest.approx({c: ref[c] for c in got}, rel=1e-9)
