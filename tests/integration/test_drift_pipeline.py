"""End to end on every engine: DriftMonitor apps -> rule engine with the promql/ rules ->
Alertmanager -> webhook.

Three models with real data, each served by two instrumented Flask apps (promdrift's
``/metrics``):

- ``<model>_clean``: live traffic is a seeded bootstrap resample of the training rows (the
  training distribution itself);
- ``<model>_drift``: the same resample with drift injected into a few columns.

The models are ``breast_cancer`` and ``penguins`` (their CSV columns) and ``edges``: four
columns derived from the breast cancer data whose bucket edges cover every way an engine may
format an ``le`` value: ``large_edges`` (worst_area x 1e4, edges >= 1e6, which Prometheus 3
rewrites from ``3307000.0`` to ``3.307e+06``), ``small_edges`` (fractal_dimension_error x
1e-3, edges <= 1e-5), ``negative_edges`` (mean_radius - 14) and ``integer_edges`` (mean_texture
rounded).

The baselines are fitted on the full CSV. The engine (the ``engine`` fixture: Prometheus 2,
Prometheus 3, VictoriaMetrics + vmalert) loads the rules on a time scale of seconds ("1h"
statistics over the last 60 s, "5m" over 15 s, every ``for:`` 3 s, min_samples 100), scrapes
every second, and sends alerts to Alertmanager, which posts them to a local webhook receiver.
The traffic is fed at once, after the engine has scraped every counter at 0 a few times, so
every statistic covers exactly the fed samples. The values are read at the first complete
evaluation of every rule group that saw the whole feed: a statistic must be right from then
on, on every engine.

The expected values are computed here, independently of the rules, with numpy (binning,
PSI, total variation) and scipy (the exact two-sample KS statistic). test_engines_agree
compares the engines with each other on the same traffic.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import pytest
from scipy.stats import ks_2samp

from promdrift.instrumentation.spec import Thresholds

from .engines import ENGINE_PAIRS, ENGINES, EXTRAPOLATION, PAIR_IDS, EngineSpec, need
from .generated import PENDING, fast_config, write_rules
from .servers import AppServer, WebhookReceiver, wait_until

pytestmark = pytest.mark.integration

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


# Thresholds of the fast rules: the spec's defaults, except a smaller min_samples for these
# datasets (passed to the generator like `promdrift rules --set`).
MIN_SAMPLES = 100
THRESHOLDS = Thresholds(min_samples=MIN_SAMPLES)
KS_MIN_EFFECT = THRESHOLDS.ks_min_effect
PSI_MAX = THRESHOLDS.psi_max
TVD_MAX = THRESHOLDS.tvd_max
UNSEEN_EXCESS = THRESHOLDS.unseen_share_excess
INVALID_RATIO_MAX = THRESHOLDS.invalid_ratio_max
PSI_FLOOR = THRESHOLDS.psi_bin_floor
CONFIG = fast_config(thresholds={"min_samples": MIN_SAMPLES})
PENDING_S = int(PENDING.rstrip("s"))

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
    from promdrift.instrumentation.training.tabular import read_csv

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

    ed = edge_columns(bc)
    idx = rng.choice(len(ed["diagnosis"]), size=400, replace=True)
    live = {k: v[idx] for k, v in ed.items()}
    out.append(Scenario("edges_clean", "edges", "diagnosis", ed, live))
    drift = {k: v.copy() for k, v in live.items()}
    drift["large_edges"] = drift["large_edges"] * 1.3
    drift["integer_edges"] = drift["integer_edges"] + 4.0
    out.append(Scenario("edges_drift", "edges", "diagnosis", ed, drift,
                        injected=[("PromdriftFeatureDrift", "large_edges"),
                                  ("PromdriftFeatureDrift", "integer_edges")]))
    return out


def edge_columns(bc: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Breast cancer columns rescaled so that their quantile edges are >= 1e6, <= 1e-5,
    negative and integer (see the module docstring)."""
    return {"large_edges": bc["worst_area"] * 1e4,
            "small_edges": bc["fractal_dimension_error"] * 1e-3,
            "negative_edges": bc["mean_radius"] - 14.0,
            "integer_edges": np.round(bc["mean_texture"]),
            "diagnosis": bc["diagnosis"]}


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
    engine: str
    scenarios: List[Scenario]
    baselines: Dict[str, Any]
    values: Dict[str, Dict[Tuple[str, str], float]]   # rule -> (model, feature) -> value
    alerts: List[Dict[str, Any]]
    fed_at: float
    settled_at: float


# The public statistics and window counts (docs/metrics.md), read at the first evaluation
# after the feed.
STATISTICS = {
    "ks": "model_feature:promdrift_ks_statistic:1h",
    "crit": "model_feature:promdrift_ks_critical:1h",
    "psi": "model_feature:promdrift_psi:1h",
    "tvd": "model_feature:promdrift_category_tvd:1h",
    "tvd_noise": "model_feature:promdrift_category_tvd_noise:1h",
    "unseen": "model_feature:promdrift_category_unseen:ratio1h",
    "invalid": "model_feature:promdrift_invalid:ratio_rate5m",
    "class_tvd": "model_output:promdrift_prediction_class_tvd:1h",
    "class_tvd_noise": "model_output:promdrift_prediction_class_tvd_noise:1h",
    "n": "model_feature:promdrift_feature_value_count:increase1h",
    "cat_n": "model_feature:promdrift_feature_category:increase1h",
    "class_n": "model_output:promdrift_prediction_class:increase1h",
}
# Ratios of counts of one window: the same on every engine, to 1e-9. The others depend on
# the window count n, which increase() extrapolates on Prometheus (see EXTRAPOLATION): the
# window counts themselves in proportion, the critical value and no-drift TVDs as 1 / sqrt(n).
RATIO_STATISTICS = ("ks", "psi", "tvd", "unseen", "invalid", "class_tvd")
WINDOW_COUNTS = ("n", "cat_n", "class_n")


def _by_key(samples: List[Dict[str, Any]]) -> Dict[Tuple[str, str], float]:
    return {(s["metric"]["model"], s["metric"].get("feature") or s["metric"].get("output")):
            s["value"] for s in samples}


def series_per_statistic(scenarios: List[Scenario], fitted: Dict[str, Any]) -> Dict[str, int]:
    """How many series each rule of STATISTICS must have: one per feature or output it covers."""
    numeric = categorical = outputs = 0
    for s in scenarios:
        b = fitted[s.dataset]
        numeric += sum(1 for c in b.features if c.kind == "numeric")
        categorical += sum(1 for c in b.features if c.kind != "numeric")
        outputs += len(b.predictions)
    return {"ks": numeric, "crit": numeric, "n": numeric, "psi": numeric,
            "tvd": categorical, "unseen": categorical, "cat_n": categorical,
            "tvd_noise": categorical, "class_tvd": outputs, "class_n": outputs,
            "class_tvd_noise": outputs, "invalid": numeric + categorical}


_RUNS: Dict[str, Run] = {}


def run_on(spec: EngineSpec, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The pipeline on ``spec``, run once per session (the per-engine tests and
    test_engines_agree share it)."""
    need(spec)
    if spec.id not in _RUNS:
        _RUNS[spec.id] = _pipeline(spec, str(tmp_path_factory.mktemp(f"pipeline-{spec.id}")))
    return _RUNS[spec.id]


@pytest.fixture(scope="module")
def run(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_on(engine, tmp_path_factory)


def _pipeline(spec: EngineSpec, workdir: str) -> Run:
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline, DriftMonitor

    rules = write_rules(CONFIG, f"{workdir}/rules")
    scenarios = _scenarios()
    fitted = {ds: Baseline.fit(s.train, model=ds, predictions=s.prediction)
              for ds, s in {s.dataset: s for s in scenarios}.items()}
    monitors = {s.model: DriftMonitor(fitted[s.dataset], model=s.model,
                                      registry=CollectorRegistry()) for s in scenarios}
    apps = [AppServer(monitors[s.model].instrument(Flask(s.model))) for s in scenarios]

    with WebhookReceiver() as hook:
        for app in apps:
            app.__enter__()
        try:
            with spec.stack(workdir, [a.address for a in apps], rules, hook.url) as engine:
                # Six scrapes with every counter at 0, so that increase()'s extrapolation to
                # the end of the window adds at most ~1/5 to the counts (see EXTRAPOLATION).
                engine.wait_up(len(apps), timeout=40, scrapes=6)
                fed_at = time.monotonic()
                fed_wall = time.time()
                for s in scenarios:
                    monitors[s.model].observe(s.rows, s.predictions)

                # Recording rules: wait for a scrape of every target after the feed and an
                # evaluation of every group that saw it. A group stamps its rules with one
                # evaluation time, so reading at that time, once a later evaluation has
                # begun, gives the values of one complete evaluation of all the fed data,
                # however loaded the machine is.
                # A scrape is stamped when it starts and appended when it ends: on a loaded
                # machine one can land while a group is being evaluated, and the rules
                # evaluated after it (same timestamp) see one more sample in their window
                # than those before it. Such an evaluation is skipped: up to three are read,
                # the first whose count-dependent statistics (KS critical values, no-drift
                # TVDs) agree with its window counts is kept (a wrong rule disagrees in all
                # three, and the tests below say so).
                since = fed_wall
                for _ in range(3):
                    at = engine.wait_evaluated_after(since, len(apps), timeout=60)
                    values = {k: _by_key(engine.query(expr, at=at))
                              for k, expr in STATISTICS.items()}
                    if not _disagreeing(Run(spec.id, scenarios, fitted, values, [], 0.0, 0.0)):
                        break
                    since = time.time()

                # Alerts: wait for every alert the numpy computation expects, then as long
                # again as a pending period plus delivery, to see nothing else arrives.
                expected = expected_alerts(scenarios, fitted, values)

                def delivered() -> bool:
                    engine.check_alive()
                    return expected <= received_keys(hook.alerts())
                with contextlib.suppress(TimeoutError):   # the alert tests tell what is missing
                    wait_until(delivered, timeout=60, interval=0.5, what="expected alerts")
                time.sleep(PENDING_S + 4)
                settled_at = time.monotonic()
                alerts = hook.alerts()
        finally:
            for app in reversed(apps):
                app.__exit__(None, None, None)
    return Run(spec.id, scenarios, fitted, values, alerts, fed_at, settled_at)


def numeric_features(baseline: Any) -> int:
    """F of the family-wise KS critical value: the model's numeric features."""
    return sum(1 for c in baseline.features if c.kind == "numeric")


def received_keys(alerts: List[Dict[str, Any]]) -> Set[Tuple[str, str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("model", ""),
             a["labels"].get("feature") or a["labels"].get("output", "")) for a in alerts}


def expected_alerts(scenarios: List[Scenario], fitted: Dict[str, Any],
                    values: Dict[str, Dict[Tuple[str, str], float]]) -> Set[Tuple[str, str, str]]:
    """The alerts the fast rules should raise, from numpy/scipy on the raw samples.

    The only inputs taken from the engine are the statistics that grow with the window count
    (the KS critical value and the no-drift TVD), since increase() extrapolates it on
    Prometheus (EXTRAPOLATION); where the engine has none, they are computed from the fed
    count.
    """
    out: Set[Tuple[str, str, str]] = set()
    for s in scenarios:
        b = fitted[s.dataset]
        for col in b.features:
            live = s.live[col.name]
            key = (s.model, col.name)
            if invalid_ratio(live) > INVALID_RATIO_MAX:
                out.add(("PromdriftInvalidValuesHigh", s.model, col.name))
            if col.kind == "numeric":
                e = numeric_expect(col.edges, s.train[col.name], live)
                crit = values["crit"].get(
                    key, THRESHOLDS.ks_critical(e.n, e.m, tests=numeric_features(b)))
                if e.ks_binned > crit and e.ks_binned > KS_MIN_EFFECT and e.n >= MIN_SAMPLES:
                    out.add(("PromdriftFeatureDrift", s.model, col.name))
                if e.psi > PSI_MAX and e.n >= MIN_SAMPLES:
                    out.add(("PromdriftFeaturePSIHigh", s.model, col.name))
            else:
                pb = category_shares(col.labels, s.train[col.name])
                pl = category_shares(col.labels, live)
                n = valid_count(live)
                noise = values["tvd_noise"].get(
                    key, tvd_noise(pb, n, valid_count(s.train[col.name])))
                if 0.5 * np.abs(pl - pb).sum() - noise > TVD_MAX and n >= MIN_SAMPLES:
                    out.add(("PromdriftCategoricalDrift", s.model, col.name))
                if pl[-1] - pb[-1] > UNSEEN_EXCESS and n >= MIN_SAMPLES:
                    out.add(("PromdriftUnseenCategoryShareHigh", s.model, col.name))
        for col in b.predictions:
            pb = category_shares(col.labels, s.train[col.name])
            pl = category_shares(col.labels, s.live[col.name])
            n = len(s.live[col.name])
            noise = values["class_tvd_noise"].get(
                (s.model, col.name), tvd_noise(pb, n, valid_count(s.train[col.name])))
            if 0.5 * np.abs(pl - pb).sum() - noise > TVD_MAX and n >= MIN_SAMPLES:
                out.add(("PromdriftPredictionClassDrift", s.model, col.name))
    return out


def _numeric(run: Run):
    for s in run.scenarios:
        for col in run.baselines[s.dataset].features:
            if col.kind == "numeric":
                yield s, col, numeric_expect(col.edges, s.train[col.name], s.live[col.name])


def _categorical(run: Run):
    """(scenario, column, baseline shares, live shares, live count, training count) of every
    categorical feature."""
    for s in run.scenarios:
        for col in run.baselines[s.dataset].features:
            if col.kind == "categorical":
                yield (s, col, category_shares(col.labels, s.train[col.name]),
                       category_shares(col.labels, s.live[col.name]),
                       valid_count(s.live[col.name]), valid_count(s.train[col.name]))


def _outputs(run: Run):
    """Like :func:`_categorical`, for every class output."""
    for s in run.scenarios:
        for col in run.baselines[s.dataset].predictions:
            yield (s, col, category_shares(col.labels, s.train[col.name]),
                   category_shares(col.labels, s.live[col.name]),
                   valid_count(s.live[col.name]), valid_count(s.train[col.name]))


def _within_extrapolation(run: Run, got: float, at_fed_count: Any, fed: float) -> bool:
    """``got`` lies between ``at_fed_count(n)`` for n = the fed count and n = the fed count
    times the engine's largest extrapolation factor (either may be the larger), to 1e-9."""
    lo, hi = EXTRAPOLATION[run.engine]
    a, b = at_fed_count(fed * lo), at_fed_count(fed * hi)
    return min(a, b) * (1 - 1e-9) <= got <= max(a, b) * (1 + 1e-9)


# ----------------------------------------------------------------------------------- tests
def test_every_statistic_is_recorded_for_every_feature(run: Run) -> None:
    want = series_per_statistic(run.scenarios, run.baselines)
    got = {k: len(run.values[k]) for k in want}
    assert got == want


def test_ks_rule_equals_numpy_binned_ks(run: Run) -> None:
    ks = run.values["ks"]
    checked = 0
    for s, col, e in _numeric(run):
        assert ks.get((s.model, col.name)) == pytest.approx(e.ks_binned, abs=1e-9), \
            (s.model, col.name)
        checked += 1
    # breast cancer: 30 numeric features, penguins: 5, edges: 4
    assert checked == 2 * 30 + 2 * 5 + 2 * 4


def test_ks_rule_agrees_with_exact_two_sample_ks(run: Run) -> None:
    """0 <= exact - binned <= the largest single-bin probability of either side."""
    ks = run.values["ks"]
    gaps = []
    for s, col, e in _numeric(run):
        got = ks.get((s.model, col.name), math.nan)
        gap = e.ks_exact - got
        assert -1e-9 <= gap <= e.max_bin_mass + 1e-9, (s.model, col.name, e.ks_exact,
                                                       got, e.max_bin_mass)
        gaps.append((gap, e.max_bin_mass, s.model, col.name))
    worst = max(gaps)
    print(f"\nKS exact - rule over {len(gaps)} features: max {worst[0]:.4f} "
          f"({worst[2]}/{worst[3]}, bound {worst[1]:.4f}), "
          f"mean {np.mean([g[0] for g in gaps]):.4f}")


def test_window_count_is_the_fed_count(run: Run) -> None:
    """n is the fed count of valid values times increase()'s extrapolation factor, which is
    the same for every series of a target (EXTRAPOLATION); that is why the statistics above
    match numpy exactly."""
    lo, hi = EXTRAPOLATION[run.engine]
    n = run.values["n"]
    factors_seen = []
    for s in run.scenarios:
        factors = [n.get((s.model, col.name), math.nan) / e.n
                   for t, col, e in _numeric(run) if t is s]
        assert lo - 1e-9 <= factors[0] <= hi + 1e-9, s.model
        assert factors == pytest.approx([factors[0]] * len(factors), rel=1e-9), s.model
        factors_seen.append(factors[0])
    print(f"\n{run.engine}: window count / fed count "
          + ", ".join(f"{f:.4f}" for f in factors_seen))


def test_critical_value_rule(run: Run) -> None:
    """c * sqrt((n + m) / (n m)) with n the fed count up to the engine's extrapolation."""
    crit = run.values["crit"]
    for s, col, e in _numeric(run):
        key = (s.model, col.name)
        tests = numeric_features(run.baselines[s.dataset])
        assert _within_extrapolation(
            run, crit.get(key, math.nan),
            lambda n: THRESHOLDS.ks_critical(n, e.m, tests=tests), e.n), key


def _disagreeing(run: Run, only: str = "") -> List[Tuple[str, str]]:
    """The columns whose count-dependent statistic is not the one of their window count in
    the same evaluation, or that lack either: the KS critical value of every numeric feature
    (``only="crit"``), the no-drift TVD of every categorical feature (``"tvd_noise"``) and
    class output (``"class_tvd_noise"``); all of them by default."""
    out = []
    if only in ("", "crit"):
        crit, n = run.values["crit"], run.values["n"]
        for s, col, e in _numeric(run):
            key = (s.model, col.name)
            tests = numeric_features(run.baselines[s.dataset])
            if key not in crit or key not in n or not math.isclose(
                    crit[key], THRESHOLDS.ks_critical(n[key], e.m, tests=tests), rel_tol=1e-9):
                out.append(key)
    for rows, noise, count in ((_categorical(run), "tvd_noise", "cat_n"),
                               (_outputs(run), "class_tvd_noise", "class_n")):
        if only not in ("", noise):
            continue
        for s, col, pb, pl, n, m in rows:
            key = (s.model, col.name)
            got, counted = run.values[noise], run.values[count]
            if key not in got or key not in counted or not math.isclose(
                    got[key], tvd_noise(pb, counted[key], m), rel_tol=1e-9):
                out.append(key)
    return out


def test_critical_value_rule_uses_the_window_count(run: Run) -> None:
    """The critical value from the engine's own window count rule."""
    crit, n = run.values["crit"], run.values["n"]
    disagreeing = _disagreeing(run, "crit")
    assert disagreeing == [], {k: (crit.get(k), n.get(k)) for k in disagreeing}


def test_psi_rule_equals_numpy(run: Run) -> None:
    psi = run.values["psi"]
    wrong = []
    for s, col, e in _numeric(run):
        got = psi.get((s.model, col.name), math.nan)
        if not got == pytest.approx(e.psi, rel=1e-9, abs=1e-12):
            wrong.append((s.model, col.name, got, e.psi))
    assert not wrong, f"PSI (model, feature, rule, numpy): {wrong}"


def test_categorical_rules_equal_numpy(run: Run) -> None:
    tvd, unseen = run.values["tvd"], run.values["unseen"]
    checked = 0
    for s, col, pb, pl, n, m in _categorical(run):
        key = (s.model, col.name)
        assert m == sum(col.counts), key
        assert tvd.get(key) == pytest.approx(0.5 * np.abs(pl - pb).sum(), abs=1e-9), key
        assert unseen.get(key) == pytest.approx(pl[-1], abs=1e-9), key
        # the no-drift TVD from the baseline shares, the window count n (the fed count up
        # to the engine's extrapolation) and the training count m
        assert _within_extrapolation(run, run.values["tvd_noise"].get(key, math.nan),
                                     lambda x: tvd_noise(pb, x, m), n), key
        checked += 1
    assert checked == 2 * 2   # penguins: island, sex


def test_prediction_class_tvd_equals_numpy(run: Run) -> None:
    checked = 0
    for s, col, pb, pl, n, m in _outputs(run):
        key = (s.model, col.name)
        assert run.values["class_tvd"].get(key) == pytest.approx(
            0.5 * np.abs(pl - pb).sum(), abs=1e-9), key
        assert _within_extrapolation(run, run.values["class_tvd_noise"].get(key, math.nan),
                                     lambda x: tvd_noise(pb, x, m), n), key
        checked += 1
    assert checked == 6


def test_no_drift_tvd_uses_the_window_count(run: Run) -> None:
    """The no-drift TVD from the engine's own window count rules."""
    for noise, count in (("tvd_noise", "cat_n"), ("class_tvd_noise", "class_n")):
        disagreeing = _disagreeing(run, noise)
        assert disagreeing == [], {
            k: (run.values[noise].get(k), run.values[count].get(k)) for k in disagreeing}


def test_invalid_ratio_equals_numpy(run: Run) -> None:
    checked = 0
    for s in run.scenarios:
        for col in run.baselines[s.dataset].features:
            key = (s.model, col.name)
            assert run.values["invalid"].get(key) == pytest.approx(
                invalid_ratio(s.live[col.name]), abs=1e-9), key
            checked += 1
    assert checked == len(run.values["invalid"]) > 0


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
    print(f"\n{run.engine}: first drift alert at the webhook {first - run.fed_at:.1f} s after "
          f"the traffic (fast rules: for {PENDING_S}s, 1 s scrape/evaluation, group_wait 1s)")


def test_no_drift_run_raises_no_alert(run: Run) -> None:
    clean = {s.model for s in run.scenarios if not s.injected}
    expected = expected_alerts(run.scenarios, run.baselines, run.values)
    assert not {k for k in expected if k[1] in clean}, "the clean resample is not clean"
    assert run.settled_at - run.fed_at > PENDING_S + 4
    assert [a for a in run.alerts if a["labels"].get("model") in clean] == []


# ------------------------------------------------------------------- engines against engines
@pytest.mark.parametrize("reference,other", ENGINE_PAIRS, ids=PAIR_IDS)
def test_engines_agree(reference: str, other: str,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same traffic gives the same statistics and the same alerts on both engines: every
    ratio statistic to 1e-9; the window counts and the statistics that depend on them within
    the two engines' extrapolation bounds (EXTRAPOLATION), since the scrapes fall at other
    moments of the window on every run."""
    a, b = (run_on(ENGINES[e], tmp_path_factory) for e in (reference, other))
    (alo, ahi), (blo, bhi) = EXTRAPOLATION[reference], EXTRAPOLATION[other]
    factor_bound = max(ahi / blo, bhi / alo)             # window counts ~ n
    report, wrong = [], []
    for name in STATISTICS:
        count_bound = factor_bound if name in WINDOW_COUNTS else math.sqrt(factor_bound)
        keys = set(a.values[name]) | set(b.values[name])
        diffs = [(abs(a.values[name].get(k, math.nan) - b.values[name].get(k, math.nan)), k)
                 for k in sorted(keys)]
        if name in RATIO_STATISTICS:
            bad = [(k, d) for d, k in diffs if not d <= 1e-9]
            worst = max((d for d, _ in diffs), default=0.0)
            report.append(f"{name} max |diff| {worst:.2g}")
        else:
            ratios = [(a.values[name].get(k, math.nan) / b.values[name].get(k, math.nan), k)
                      for k in sorted(keys)]
            bad = [(k, r) for r, k in ratios
                   if not 1 / count_bound - 1e-9 <= r <= count_bound + 1e-9]
            worst = max((abs(r - 1) for r, _ in ratios), default=0.0)
            report.append(f"{name} max |ratio - 1| {worst:.3g} (bound {count_bound - 1:.3g})")
        wrong += [(name, k, d) for k, d in bad]
    print(f"\n{reference} vs {other}: " + "; ".join(report))
    assert not wrong, f"{len(wrong)} disagreements, first: {wrong[:5]}"
    assert received_keys(a.alerts) == received_keys(b.alerts)
