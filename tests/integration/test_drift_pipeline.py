"""End to end: DriftMonitor apps -> real Prometheus with promql/ rules -> Alertmanager -> webhook.

Two real datasets, each served by two instrumented Flask apps (promdrift's ``/metrics``):

- ``<dataset>_clean``: live traffic is a seeded bootstrap resample of the training rows (the
  training distribution itself);
- ``<dataset>_drift``: the same resample with drift injected into a few columns.

The baselines are fitted on the full CSV. Prometheus loads a fast copy of the rules
(``rulegen.fast_rules``: "1h" statistics over the last 60 s, "5m" over 15 s, every ``for:``
3 s, min_samples 100), scrapes every second, and sends alerts to Alertmanager, which posts
them to a local webhook receiver. The traffic is fed at once, after Prometheus has scraped
every counter at 0 a few times, so every statistic covers exactly the fed samples.

The expected values are computed here, independently of the rules, with numpy (binning,
PSI, total variation) and scipy (the exact two-sample KS statistic).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import pytest
from scipy.stats import ks_2samp

from promdrift.instrumentation.spec import Thresholds

from .rulegen import fast_rules
from .servers import (ALERTMANAGER, PROMETHEUS, Alertmanager, AppServer, Prometheus,
                      WebhookReceiver, wait_until)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None or ALERTMANAGER is None,
                       reason="needs the prometheus and prometheus-alertmanager binaries"),
]

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


# Thresholds of the fast rules: the spec's defaults, except a smaller min_samples for these
# datasets (rulegen passes it to the generator like `promdrift rules --set`).
MIN_SAMPLES = 100
THRESHOLDS = Thresholds(min_samples=MIN_SAMPLES)
KS_MIN_EFFECT = THRESHOLDS.ks_min_effect
PSI_MAX = THRESHOLDS.psi_max
TVD_MAX = THRESHOLDS.tvd_max
UNSEEN_EXCESS = THRESHOLDS.unseen_share_excess
INVALID_RATIO_MAX = THRESHOLDS.invalid_ratio_max
PSI_FLOOR = THRESHOLDS.psi_bin_floor
PENDING_S = 3

OTHER = "__other__"


# ------------------------------------------------------------------------------------ data
@dataclass
class Scenario:
    model: str
    dataset: str
    prediction: str
    train: Dict[str, np.ndarray]        # training columns (read_csv: float64 / object)
    live: Dict[str, np.ndarray]         # live columns, same layout
    injected: List[Tuple[str, str]] = field(default_factory=list)  # (alert, feature) expected

    @property
    def rows(self) -> List[Dict[str, Any]]:
        names = [n for n in self.live if n != self.prediction]
        n = len(self.live[names[0]])
        return [{c: _py(self.live[c][i]) for c in names} for i in range(n)]

    @property
    def predictions(self) -> List[Any]:
        return [_py(v) for v in self.live[self.prediction]]


def _py(v: Any) -> Any:
    return float(v) if isinstance(v, (np.floating, float)) else v


def _scenarios() -> List[Scenario]:
    from promdrift.instrumentation.tabular import read_csv

    out = []
    rng = np.random.default_rng(20240611)
    bc = read_csv(f"{DATA}/breast_cancer.csv", progress=False)
    idx = rng.choice(len(bc["diagnosis"]), size=400, replace=True)
    live = {k: v[idx] for k, v in bc.items()}
    out.append(Scenario("breast_cancer_clean", "breast_cancer", "diagnosis", bc, live))
    drift = {k: v.copy() for k, v in live.items()}
    drift["mean_radius"] = drift["mean_radius"] * 1.25       # a scale shift of one feature
    drift["worst_texture"] = drift["worst_texture"] + 5.0     # a location shift of another
    out.append(Scenario("breast_cancer_drift", "breast_cancer", "diagnosis", bc, drift,
                        injected=[("PromdriftFeatureDrift", "mean_radius"),
                                  ("PromdriftFeatureDrift", "worst_texture")]))

    pg = read_csv(f"{DATA}/penguins.csv", progress=False)
    idx = rng.choice(len(pg["species"]), size=300, replace=True)
    live = {k: v[idx] for k, v in pg.items()}
    out.append(Scenario("penguins_clean", "penguins", "species", pg, live))
    drift = {k: v.copy() for k, v in live.items()}
    drift["body_mass_g"] = drift["body_mass_g"] + 700.0
    island = drift["island"].copy()
    island[: len(island) // 2] = "Anvers"                     # an island never seen in training
    drift["island"] = island
    out.append(Scenario("penguins_drift", "penguins", "species", pg, drift,
                        injected=[("PromdriftFeatureDrift", "body_mass_g"),
                                  ("PromdriftCategoricalDrift", "island"),
                                  ("PromdriftUnseenCategoryShareHigh", "island")]))
    return out


# ---------------------------------------------------------------- independent computations
def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.isfinite(x)]


def binned(edges: Tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """Counts per bin (lower, upper] over ``edges`` plus +Inf (Prometheus' ``le``)."""
    return np.bincount(np.searchsorted(np.asarray(edges), x, side="left"),
                       minlength=len(edges) + 1)


@dataclass
class NumericExpect:
    n: int
    m: int
    ks_binned: float
    ks_exact: float
    max_bin_mass: float
    psi: float


def numeric_expect(edges: Tuple[float, ...], train: np.ndarray, live: np.ndarray) -> NumericExpect:
    t, x = _finite(train), _finite(live)
    bt, bl = binned(edges, t), binned(edges, x)
    pt, pl = bt / bt.sum(), bl / bl.sum()
    ks_b = float(np.max(np.abs(np.cumsum(pl) - np.cumsum(pt))))
    ft, fl = np.maximum(pl, PSI_FLOOR), np.maximum(pt, PSI_FLOOR)
    psi = float(np.sum((ft - fl) * np.log(ft / fl)))
    return NumericExpect(n=len(x), m=len(t), ks_binned=ks_b,
                         ks_exact=float(ks_2samp(t, x).statistic),
                         max_bin_mass=float(max(pt.max(), pl.max())), psi=psi)


def category_shares(labels: List[str], values: np.ndarray) -> np.ndarray:
    """Shares over ``labels`` (top-K + __other__) of the valid values; unseen -> __other__."""
    index = {c: i for i, c in enumerate(labels)}
    counts = np.zeros(len(labels))
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        counts[index.get(str(v), index[OTHER])] += 1
    return counts / counts.sum()


def valid_count(values: np.ndarray) -> int:
    """Values that category_shares counts (None and NaN are invalid)."""
    return sum(1 for v in values
               if not (v is None or (isinstance(v, float) and math.isnan(v))))


def tvd_noise(pb: np.ndarray, n: float, m: float) -> float:
    """Expected TVD of an undrifted feature: each live share minus baseline share is about
    normal with sd sqrt(q (1 - q) (1/n + 1/m)), whose mean absolute value is sd * sqrt(2/pi)."""
    sd = np.sqrt(pb * (1 - pb) * (1 / n + 1 / m))
    return float(0.5 * np.sum(sd * math.sqrt(2 / math.pi)))


def invalid_ratio(values: np.ndarray) -> float:
    bad = sum(1 for v in values if v is None or (isinstance(v, float) and not math.isfinite(v)))
    return bad / len(values)


# --------------------------------------------------------------------------- the pipeline
@dataclass
class Run:
    scenarios: List[Scenario]
    baselines: Dict[str, Any]
    values: Dict[str, Dict[Tuple[str, str], float]]   # rule -> (model, feature) -> value
    alerts: List[Dict[str, Any]]
    fed_at: float
    settled_at: float


RULES = {
    "ks": "model_feature:promdrift_ks_statistic:1h",
    "crit": "model_feature:promdrift_ks_critical:1h",
    "n": "model_feature:promdrift_feature_value_count:increase1h",
    "psi": "model_feature:promdrift_psi:1h",
    "tvd": "model_feature:promdrift_category_tvd:1h",
    "unseen": "model_feature:promdrift_category_unseen:ratio1h",
    "class_tvd": "model_output:promdrift_prediction_class_tvd:1h",
    "tvd_noise": "model_feature:promdrift_category_tvd_noise:1h",
    "class_tvd_noise": "model_output:promdrift_prediction_class_tvd_noise:1h",
    "class_n": "model_output:promdrift_prediction_class:increase1h",
    "cat_n": "model_feature:promdrift_feature_category:increase1h",
    "invalid": "model_feature:promdrift_invalid:ratio_rate5m",
}


def _by_key(samples: List[Dict[str, Any]]) -> Dict[Tuple[str, str], float]:
    return {(s["metric"]["model"], s["metric"].get("feature") or s["metric"].get("output")):
            s["value"] for s in samples}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline, DriftMonitor

    workdir = str(tmp_path_factory.mktemp("pipeline"))
    rule_files = fast_rules(f"{workdir}/rules", windows={"5m": "15s", "1h": "60s"},
                            pending=f"{PENDING_S}s", config={"min_samples": MIN_SAMPLES})
    scenarios = _scenarios()
    fitted = {ds: Baseline.fit(s.train, model=ds, predictions=s.prediction)
              for ds, s in {s.dataset: s for s in scenarios}.items()}
    monitors = {s.model: DriftMonitor(fitted[s.dataset], model=s.model,
                                      registry=CollectorRegistry()) for s in scenarios}
    apps = [AppServer(monitors[s.model].instrument(Flask(s.model))) for s in scenarios]
    n_numeric = sum(sum(1 for c in fitted[s.dataset].features if c.kind == "numeric")
                    for s in scenarios)
    n_categorical = sum(len(fitted[s.dataset].features) for s in scenarios) - n_numeric
    n_outputs = sum(len(fitted[s.dataset].predictions) for s in scenarios)
    series_per_rule = {"ks": n_numeric, "crit": n_numeric, "n": n_numeric, "psi": n_numeric,
                       "tvd": n_categorical, "unseen": n_categorical, "cat_n": n_categorical,
                       "class_tvd": n_outputs, "class_n": n_outputs,
                       "tvd_noise": n_categorical, "class_tvd_noise": n_outputs,
                       "invalid": n_numeric + n_categorical}

    with WebhookReceiver() as hook, Alertmanager(workdir, hook.url) as am:
        for app in apps:
            app.__enter__()
        try:
            with Prometheus(workdir, [a.address for a in apps], rule_files,
                            alertmanager=am.address) as prom:
                prom.wait_up(len(apps), timeout=40)   # first scrape: every counter at 0
                # A few more zero scrapes, so that increase()'s extrapolation to the end of
                # the window adds at most ~1/5 to the counts (see test_window_count_...).
                wait_until(lambda: len(prom.query("count_over_time(up[30s]) >= 6"))
                           >= len(apps), timeout=30, what="six scrapes of every target")
                fed_at = time.monotonic()
                fed_wall = time.time()
                for s in scenarios:
                    monitors[s.model].observe(s.rows, s.predictions)

                # Recording rules: wait until every statistic has a series for every feature,
                # then for a scrape of every target after the feed and an evaluation of every
                # group that started once those scrapes were visible. A group writes its rules
                # one after another, all stamped with the evaluation's start time, so reading
                # at that start time, once a later evaluation has begun, gives the values of
                # one complete evaluation of all the fed data, however loaded the machine is.
                def complete() -> bool:
                    return all(len(prom.query(RULES[k])) == n
                               for k, n in series_per_rule.items())
                wait_until(complete, timeout=30, what="every statistic of every feature")
                at = prom.wait_evaluated_after(fed_wall, len(apps), timeout=60)
                values = {k: _by_key(prom.query(expr, at=at)) for k, expr in RULES.items()}

                # Alerts: wait for every alert the numpy computation expects, then as long
                # again as a pending period plus delivery, to see nothing else arrives.
                expected = expected_alerts(scenarios, fitted, values)

                def delivered() -> bool:
                    return expected <= received_keys(hook.alerts())
                wait_until(delivered, timeout=45, interval=0.5, what="expected alerts")
                time.sleep(PENDING_S + 4)
                settled_at = time.monotonic()
                alerts = hook.alerts()
        finally:
            for app in reversed(apps):
                app.__exit__(None, None, None)
    return Run(scenarios, fitted, values, alerts, fed_at, settled_at)


def numeric_features(baseline: Any) -> int:
    """F of the family-wise KS critical value: the model's numeric features."""
    return sum(1 for c in baseline.features if c.kind == "numeric")


def received_keys(alerts: List[Dict[str, Any]]) -> Set[Tuple[str, str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("model", ""),
             a["labels"].get("feature") or a["labels"].get("output", "")) for a in alerts}


def expected_alerts(scenarios: List[Scenario], fitted: Dict[str, Any],
                    values: Dict[str, Dict[Tuple[str, str], float]]) -> Set[Tuple[str, str, str]]:
    """The alerts the fast rules should raise, from numpy/scipy on the raw samples.

    The only inputs taken from Prometheus are the window counts n used in the KS critical
    value and in the no-drift TVD: ``increase()`` extrapolates to the end of the window, so
    n is a few percent above the fed count (test_window_count_is_the_fed_count bounds it).
    """
    n_prom = values["n"]
    out: Set[Tuple[str, str, str]] = set()
    for s in scenarios:
        b = fitted[s.dataset]
        for col in b.features:
            live = s.live[col.name]
            if invalid_ratio(live) > INVALID_RATIO_MAX:
                out.add(("PromdriftInvalidValuesHigh", s.model, col.name))
            if col.kind == "numeric":
                e = numeric_expect(col.edges, s.train[col.name], live)
                n = n_prom.get((s.model, col.name), e.n)
                crit = THRESHOLDS.ks_critical(n, e.m, tests=numeric_features(b))
                if e.ks_binned > crit and e.ks_binned > KS_MIN_EFFECT and e.n >= MIN_SAMPLES:
                    out.add(("PromdriftFeatureDrift", s.model, col.name))
                if e.psi > PSI_MAX and e.n >= MIN_SAMPLES:
                    out.add(("PromdriftFeaturePSIHigh", s.model, col.name))
            else:
                pb = category_shares(col.labels, s.train[col.name])
                pl = category_shares(col.labels, live)
                n = sum(1 for v in live if v is not None)
                noise = tvd_noise(pb, values["cat_n"].get((s.model, col.name), n),
                                  valid_count(s.train[col.name]))
                if 0.5 * np.abs(pl - pb).sum() - noise > TVD_MAX and n >= MIN_SAMPLES:
                    out.add(("PromdriftCategoricalDrift", s.model, col.name))
                if pl[-1] - pb[-1] > UNSEEN_EXCESS and n >= MIN_SAMPLES:
                    out.add(("PromdriftUnseenCategoryShareHigh", s.model, col.name))
        for col in b.predictions:
            pb = category_shares(col.labels, s.train[col.name])
            pl = category_shares(col.labels, s.live[col.name])
            n = len(s.live[col.name])
            noise = tvd_noise(pb, values["class_n"].get((s.model, col.name), n),
                              valid_count(s.train[col.name]))
            if 0.5 * np.abs(pl - pb).sum() - noise > TVD_MAX and n >= MIN_SAMPLES:
                out.add(("PromdriftPredictionClassDrift", s.model, col.name))
    return out


def _numeric(run: Run):
    for s in run.scenarios:
        for col in run.baselines[s.dataset].features:
            if col.kind == "numeric":
                yield s, col, numeric_expect(col.edges, s.train[col.name], s.live[col.name])


# ----------------------------------------------------------------------------------- tests
def test_ks_rule_equals_numpy_binned_ks(run: Run) -> None:
    ks = run.values["ks"]
    checked = 0
    for s, col, e in _numeric(run):
        assert ks[(s.model, col.name)] == pytest.approx(e.ks_binned, abs=1e-9), \
            (s.model, col.name)
        checked += 1
    assert checked == 2 * 30 + 2 * 5   # breast cancer: 30 numeric features, penguins: 5


def test_ks_rule_agrees_with_exact_two_sample_ks(run: Run) -> None:
    """0 <= exact - binned <= the largest single-bin probability of either side."""
    ks = run.values["ks"]
    gaps = []
    for s, col, e in _numeric(run):
        gap = e.ks_exact - ks[(s.model, col.name)]
        assert -1e-9 <= gap <= e.max_bin_mass + 1e-9, (s.model, col.name, e.ks_exact,
                                                       ks[(s.model, col.name)], e.max_bin_mass)
        gaps.append((gap, e.max_bin_mass, s.model, col.name))
    worst = max(gaps)
    print(f"\nKS exact - rule over {len(gaps)} features: max {worst[0]:.4f} "
          f"({worst[2]}/{worst[3]}, bound {worst[1]:.4f}), "
          f"mean {np.mean([g[0] for g in gaps]):.4f}")


def test_window_count_is_the_fed_count(run: Run) -> None:
    """n is the fed count of valid values times increase()'s extrapolation factor
    (sampled span + time to the window end) / sampled span. The samples span >= 5 s here
    and the time to the end is < 1.1 scrape intervals, so the factor is in [1, 1.22]; in
    production (a 1h window) it is within a scrape interval / 1h of 1. It is the same for
    every series of a target (same scrape timestamps, all starting at 0), so it cancels in
    every CDF and share, which is why the statistics above match numpy exactly."""
    n = run.values["n"]
    for s in run.scenarios:
        factors = [n[(s.model, col.name)] / e.n for t, col, e in _numeric(run) if t is s]
        assert 1.0 <= factors[0] <= 1.22, s.model
        assert factors == pytest.approx([factors[0]] * len(factors), rel=1e-9), s.model


def test_critical_value_rule(run: Run) -> None:
    crit, n = run.values["crit"], run.values["n"]
    for s, col, e in _numeric(run):
        key = (s.model, col.name)
        tests = numeric_features(run.baselines[s.dataset])
        assert crit[key] == pytest.approx(THRESHOLDS.ks_critical(n[key], e.m, tests=tests),
                                          rel=1e-9), key


def test_psi_rule_equals_numpy(run: Run) -> None:
    psi = run.values["psi"]
    for s, col, e in _numeric(run):
        assert psi[(s.model, col.name)] == pytest.approx(e.psi, rel=1e-9, abs=1e-12), \
            (s.model, col.name)


def test_categorical_rules_equal_numpy(run: Run) -> None:
    tvd, unseen = run.values["tvd"], run.values["unseen"]
    checked = 0
    for s in run.scenarios:
        for col in run.baselines[s.dataset].features:
            if col.kind != "categorical":
                continue
            pb = category_shares(col.labels, s.train[col.name])
            pl = category_shares(col.labels, s.live[col.name])
            key = (s.model, col.name)
            assert tvd[key] == pytest.approx(0.5 * np.abs(pl - pb).sum(), abs=1e-9), key
            assert unseen[key] == pytest.approx(pl[-1], abs=1e-9), key
            # the no-drift TVD from the baseline shares, the rule's own window count n and
            # the training count m
            n, m = run.values["cat_n"][key], valid_count(s.train[col.name])
            assert n > 0 and m == sum(col.counts), key
            assert run.values["tvd_noise"][key] == pytest.approx(tvd_noise(pb, n, m),
                                                                 rel=1e-9), key
            checked += 1
    assert checked == 2 * 2   # penguins: island, sex


def test_prediction_class_tvd_equals_numpy(run: Run) -> None:
    tvd = run.values["class_tvd"]
    for s in run.scenarios:
        for col in run.baselines[s.dataset].predictions:
            pb = category_shares(col.labels, s.train[col.name])
            pl = category_shares(col.labels, s.live[col.name])
            assert tvd[(s.model, col.name)] == pytest.approx(0.5 * np.abs(pl - pb).sum(),
                                                             abs=1e-9)
            key = (s.model, col.name)
            n, m = run.values["class_n"][key], valid_count(s.train[col.name])
            assert run.values["class_tvd_noise"][key] == pytest.approx(tvd_noise(pb, n, m),
                                                                       rel=1e-9), key


def test_drift_alerts_reach_the_webhook(run: Run) -> None:
    expected = expected_alerts(run.scenarios, run.baselines, run.values)
    for s in run.scenarios:  # the injected drift is among what numpy expects
        assert {(a, s.model, f) for a, f in s.injected} <= expected
    drift_models = {s.model for s in run.scenarios if s.injected}
    got = {k for k in received_keys(run.alerts) if k[1] in drift_models}
    assert got == {k for k in expected if k[1] in drift_models}
    for a in run.alerts:
        assert a["status"] == "firing"
        assert a["annotations"]["runbook_url"].startswith(
            "https://github.com/promdrift/promdrift/blob/main/docs/runbook.md#")
        assert a["labels"]["severity"] in {"warning", "critical"}
    first = min(a["received_at"] for a in run.alerts if a["labels"]["model"] in drift_models)
    print("\nreceived: " + ", ".join("/".join(k) for k in sorted(got)))
    print(f"\nfirst drift alert at the webhook {first - run.fed_at:.1f} s after the traffic "
          f"(fast rules: for {PENDING_S}s, 1 s scrape/evaluation, group_wait 1s)")


def test_no_drift_run_raises_no_alert(run: Run) -> None:
    clean = {s.model for s in run.scenarios if not s.injected}
    expected = expected_alerts(run.scenarios, run.baselines, run.values)
    assert not {k for k in expected if k[1] in clean}, "the clean resample is not clean"
    assert run.settled_at - run.fed_at > PENDING_S + 4
    assert [a for a in run.alerts if a["labels"].get("model") in clean] == []
