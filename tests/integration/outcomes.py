"""The outcome-monitor stack shared by test_outcomes_pipeline.py and test_outcomes_dashboard.py.

Five instrumented Flask apps, three models, fed once with real data (tests/data) and their
true labels:

- ``cancer_ok`` / ``cancer_bad``: a threshold classifier of the breast cancer diagnosis (8
  features) whose baseline holds its quality on rows 0-299 and the mean |attribution| of a
  linear model's exact attributions (w_j * standardised x_j). Live traffic is rows 300-568 with
  their true labels sent afterwards through ``labels_handler`` (the exporter's labels route),
  shuffled. ``cancer_bad`` flips every third prediction and its attributions put the three
  least important features first (x 50).
- ``penguins_ok`` / ``penguins_bad``: a threshold species classifier, facet ``island``, bias
  baseline on all rows; ``penguins_bad`` predicts "Adelie" for every penguin on Dream.
- ``penguins_mass``: a regressor (least squares on the flipper length) of the body mass, a
  numeric output whose baseline quality (MAE, RMSE) is that of the same rows: no degradation.

The engine (any of tests/integration/engines.py) loads the rules generated for
:data:`CONFIG` ("1h" = the last 60 s, "5m" = the last 15 s, every ``for:`` 3 s, min_samples
100, quality_min_labels 40; generated.py), scrapes every second and sends alerts to
Alertmanager, which posts them to a webhook. :func:`outcome_stack` starts it all, feeds the
apps, waits for every label to be scraped and for the first evaluation of every rule group
after that (time ``at``: the rules then read the whole feed in both windows) and for the
alerts numpy expects, and yields with the servers still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from typing import Any, Dict, Iterator, List, Set, Tuple

import numpy as np

from .engines import EngineSpec
from .generated import PENDING, fast_config, write_rules
from .servers import AppServer, WebhookReceiver, wait_until

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
MIN_SAMPLES = 100
QUALITY_MIN_LABELS = 40
QUALITY_TOLERANCE = 0.05
QUALITY_ERROR_TOLERANCE = 0.2
BIAS_TOLERANCE = 0.1
NDCG_MIN = 0.9
CONFIG = fast_config(thresholds={"min_samples": MIN_SAMPLES,
                                  "quality_min_labels": QUALITY_MIN_LABELS,
                                  "quality_tolerance": QUALITY_TOLERANCE,
                                  "quality_error_tolerance": QUALITY_ERROR_TOLERANCE,
                                  "bias_tolerance": BIAS_TOLERANCE,
                                  "attribution_ndcg_min": NDCG_MIN})
PENDING_S = int(PENDING.rstrip("s"))
OURS = {"PromdriftModelQualityDegraded", "PromdriftBiasDrift", "PromdriftAttributionDrift"}


def _rows(name: str) -> List[Dict[str, Any]]:
    from conftest import read_rows  # tests/conftest.py: a CSV reader independent of promdrift
    return read_rows(os.path.join(DATA, name))


def ndcg_reference(live: Dict[str, float], base: Dict[str, float]) -> float:
    feats = sorted(base)
    ranked = sorted(feats, key=lambda f: (-live.get(f, -np.inf), f))
    ideal = sorted(base.values(), reverse=True)
    dcg = sum(base[f] / np.log2(i + 2) for i, f in enumerate(ranked))
    return dcg / sum(v / np.log2(i + 2) for i, v in enumerate(ideal))


def dppl(groups: np.ndarray, pred: np.ndarray, g: str, c: str) -> float:
    valid = np.array([x is not None for x in groups])
    return float(np.mean(pred[valid & (groups == g)] == c)
                 - np.mean(pred[valid & (groups != g)] == c))


class Model:
    """One app: the monitor and what it is fed (features, predictions, labels, attributions)."""

    def __init__(self, name, baseline, rows, pred, truth, attributions=None, facets=(),
                 output="diagnosis"):
        from prometheus_client import CollectorRegistry
        from promdrift.instrumentation import DriftMonitor
        self.name, self.rows, self.pred, self.truth = name, rows, pred, truth
        self.attributions, self.facets, self.output = attributions, tuple(facets), output
        self.baseline = baseline
        self.monitor = DriftMonitor(baseline, model=name, registry=CollectorRegistry())
        self.monitor.track_labels(":memory:")
        if facets:
            self.monitor.track_facets(*facets)
        if attributions is not None:
            self.monitor.track_attributions()

    @property
    def numeric(self) -> bool:
        return all(isinstance(p, float) for p in self.pred)

    def feed(self) -> Dict[str, int]:
        from promdrift.instrumentation.outcomes import labels_handler
        ids = [f"{self.name}-{i}" for i in range(len(self.rows))]
        self.monitor.observe(self.rows, self.pred, inference_id=ids,
                             attributions=self.attributions)
        order = list(range(len(ids)))
        random.Random(11).shuffle(order)
        body = "\n".join(json.dumps({"inference_id": ids[i], "label": self.truth[i]})
                         for i in order)
        status, counts = labels_handler(self.monitor, body.encode(), "application/x-ndjson")
        assert status == 200, counts
        return counts


def cancer_models() -> Tuple[List[Model], Dict[str, Any]]:
    from promdrift.instrumentation import Baseline
    rows = _rows("breast_cancer.csv")
    names = [k for k in rows[0] if k != "diagnosis"][:8]
    truth = [r["diagnosis"] for r in rows]
    full = [{k: r[k] for k in names} for r in rows]
    pred = ["malignant" if r["worst_radius"] > 16.8 or r["worst_concave_points"] > 0.16
            else "benign" for r in rows]
    x = np.array([[r[k] for k in names] for r in rows])
    y = np.array([t == "malignant" for t in truth], dtype=float)
    mean, std = x[:300].mean(0), x[:300].std(0)
    z = (x - mean) / std
    w = np.linalg.lstsq(np.c_[z[:300], np.ones(300)], y[:300], rcond=None)[0][:-1]
    attr = z * w
    train = {k: x[:300, j] for j, k in enumerate(names)}
    train["diagnosis"] = pred[:300]
    b = (Baseline.fit(train, model="cancer", predictions="diagnosis")
         .with_quality(truth[:300], pred[:300]).with_attributions(attr[:300]))
    live = slice(300, None)
    bad_pred = [("benign" if p == "malignant" else "malignant") if i % 3 == 0 else p
                for i, p in enumerate(pred[live])]
    base_mean = np.abs(attr[:300]).mean(0)
    low = np.argsort(base_mean)[:3]
    bad_attr = attr[live].copy()
    bad_attr[:, low] *= 50
    models = [Model("cancer_ok", b, full[live], pred[live], truth[live], attr[live]),
              Model("cancer_bad", b, full[live], bad_pred, truth[live], bad_attr)]
    return models, {"baseline": b, "names": names}


def penguin_models() -> Tuple[List[Model], Dict[str, Any]]:
    from promdrift.instrumentation import Baseline
    rows = [r for r in _rows("penguins.csv") if r["flipper_length_mm"] is not None]
    truth = [r.pop("species") for r in rows]
    pred = ["Gentoo" if r["flipper_length_mm"] > 206 else
            "Chinstrap" if r["bill_length_mm"] > 44 else "Adelie" for r in rows]
    train = {k: [r[k] for r in rows] for k in rows[0]}
    train["species"] = pred
    b = (Baseline.fit(train, model="penguins", predictions="species")
         .with_bias({"island": train["island"]}, pred, truth, facets="island"))
    bad = ["Adelie" if r["island"] == "Dream" else p for r, p in zip(rows, pred)]
    return [Model("penguins_ok", b, rows, pred, truth, facets=["island"], output="species"),
            Model("penguins_bad", b, rows, bad, truth, facets=["island"], output="species")
            ], {"baseline": b}


def mass_model() -> Model:
    """A regressor of the penguins' body mass from the flipper length (numeric output)."""
    from promdrift.instrumentation import Baseline
    rows = [r for r in _rows("penguins.csv")
            if r["flipper_length_mm"] is not None and r["body_mass_g"] is not None]
    truth = [float(r.pop("body_mass_g")) for r in rows]
    for r in rows:
        r.pop("species")
    flipper = np.array([r["flipper_length_mm"] for r in rows], dtype=float)
    coef = np.linalg.lstsq(np.c_[flipper, np.ones(len(rows))], np.array(truth), rcond=None)[0]
    pred = [float(v) for v in coef[0] * flipper + coef[1]]
    train = {k: [r[k] for r in rows] for k in rows[0]}
    train["body_mass"] = pred
    b = (Baseline.fit(train, model="penguins_mass", predictions="body_mass")
         .with_quality(truth, pred))
    return Model("penguins_mass", b, rows, pred, truth, output="body_mass")


def accuracy(m: Model) -> float:
    return float(np.mean(np.array(m.truth) == np.array(m.pred)))


def mae(m: Model) -> float:
    return float(np.mean(np.abs(np.array(m.truth) - np.array(m.pred))))


def rmse(m: Model) -> float:
    return float(np.sqrt(np.mean((np.array(m.truth) - np.array(m.pred)) ** 2)))


def live_attribution(m: Model, names: List[str]) -> Dict[str, float]:
    """Mean |attribution| of each feature over what ``m`` was fed."""
    return {n: float(np.mean(np.abs(m.attributions[:, j]))) for j, n in enumerate(names)}


def expected_alerts(models: List[Model], cancer: Dict[str, Any], peng: Dict[str, Any]
                    ) -> Set[Tuple[str, str]]:
    """(alert, model) pairs numpy says the rules must raise."""
    out: Set[Tuple[str, str]] = set()
    for m in models:
        if m.numeric:
            q = m.baseline.quality[m.output]
            if max((mae(m) - q["mae"]) / q["mae"],
                   (rmse(m) - q["rmse"]) / q["rmse"]) > QUALITY_ERROR_TOLERANCE:
                out.add(("PromdriftModelQualityDegraded", m.name))
        elif m.name.startswith("cancer"):
            q = cancer["baseline"].quality["diagnosis"]
            if q["accuracy"] - accuracy(m) > QUALITY_TOLERANCE:
                out.add(("PromdriftModelQualityDegraded", m.name))
            live = live_attribution(m, cancer["names"])
            if ndcg_reference(live, cancer["baseline"].attribution) < NDCG_MIN:
                out.add(("PromdriftAttributionDrift", m.name))
        else:
            ref = peng["baseline"].bias["island"]["dppl"]
            groups = np.array([r["island"] for r in m.rows], dtype=object)
            pred = np.array(m.pred, dtype=object)
            for g, row in ref.items():
                if np.sum(groups == g) < MIN_SAMPLES:
                    continue
                for c, v in row.items():
                    if abs(dppl(groups, pred, g, c) - v) > BIAS_TOLERANCE:
                        out.add(("PromdriftBiasDrift", m.name))
    return out


def received(alerts: List[Dict[str, Any]]) -> Set[Tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"]["model"]) for a in alerts
            if a["labels"]["alertname"] in OURS}


@contextlib.contextmanager
def outcome_stack(engine: EngineSpec, workdir: str) -> Iterator[Dict[str, Any]]:
    """Start ``engine``, feed and wait (see the module docstring); yield what the tests check,
    with the engine (``prom``) still running, and stop every server on exit."""
    from flask import Flask

    rules = write_rules(CONFIG, f"{workdir}/rules")
    cmodels, cancer = cancer_models()
    pmodels, peng = penguin_models()
    models = cmodels + pmodels + [mass_model()]
    apps = [AppServer(m.monitor.instrument(Flask(m.name))) for m in models]
    expected = expected_alerts(models, cancer, peng)
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(WebhookReceiver())
        for app in apps:
            stack.enter_context(app)
        prom = stack.enter_context(engine.stack(workdir, [a.address for a in apps], rules,
                                                hook.url))
        prom.wait_up(len(apps), timeout=40, scrapes=3)
        fed_at = time.monotonic()
        handled = {m.name: m.feed() for m in models}

        # Every label scraped (the raw counters are exact), then a scrape and an evaluation
        # of every group after that, so that the rules read no scrape taken during the feed.
        n_labels = sum(len(m.rows) for m in models)

        def scraped() -> bool:
            prom.sync()
            got = prom.query("sum(promdrift_quality_labels_total)")
            return bool(got) and got[0]["value"] == n_labels
        wait_until(scraped, timeout=30, what="every label scraped")
        at = prom.wait_evaluated_after(time.time(), len(apps), timeout=60)
        values = {
            "accuracy": prom.query("model_output:promdrift_quality_accuracy:1h", at=at),
            "ndcg": prom.query("model:promdrift_attribution_ndcg:min", at=at),
            "dppl": prom.query(
                "model_facet_group_output_class:promdrift_bias_dppl:1h", at=at),
        }

        def delivered() -> bool:
            return expected <= received(hook.alerts())
        with contextlib.suppress(TimeoutError):   # the alert tests tell what is missing
            wait_until(delivered, timeout=60, interval=0.5, what="expected alerts")
        alerts_at = time.time()
        time.sleep(PENDING_S + 3)
        alerts = hook.alerts()
        SNAPSHOTS[engine.id] = {"values": values, "alerts": received(alerts)}
        yield {"models": {m.name: m for m in models}, "cancer": cancer, "peng": peng,
               "expected": expected, "alerts": alerts, "values": values, "handled": handled,
               "fed_at": fed_at, "at": at, "alerts_at": alerts_at, "prom": prom}


# engine id -> {"values": the statistics read at `at`, "alerts": received(...)} of every
# outcome stack started in this session, for comparisons between engines
SNAPSHOTS: Dict[str, Dict[str, Any]] = {}


def snapshot(engine: EngineSpec, workdir: str) -> Dict[str, Any]:
    """The statistics and alerts of the outcome stack on ``engine``: those of the stack this
    session already ran, or of one started (and stopped) now."""
    if engine.id not in SNAPSHOTS:
        with outcome_stack(engine, workdir):
            pass
    return SNAPSHOTS[engine.id]
