"""Deploys and canaries never page anyone, on every engine: each baseline's live counts are
compared with that baseline only.

Two models, each served by four instrumented Flask apps (replicas) that the engine (the
``engine`` fixture: Prometheus 2, Prometheus 3, VictoriaMetrics + vmalert) scrapes every
second, with the generated rules over windows of seconds (:data:`CONFIG`: "1h" is the last
30 s, "5m" the last 10 s, every ``for:`` 3 s) and Alertmanager posting to a local webhook:

- ``rollout``: every replica starts on baseline v1, fitted on real data (breast cancer
  measurements and a size class derived from them). Then replica 4 becomes a **canary**: the
  server restarts in place with model_version 2 and baseline v2, refitted on shifted data
  (every measurement 15 % larger and 0.3 standard deviations higher, as newer data is), so
  other bucket edges and other category shares. Then a **rolling update** moves replicas 1,
  2 and 3 to v2, one every few seconds. Every replica's traffic is a resample of its own
  baseline's data: undrifted for the baseline it is counted against. No alert of any kind
  may go pending or fire for this model, during the mix or after it (the old pooled rules
  fired PromdriftFeatureDrift and PromdriftFeaturePSIHigh on every numeric feature within
  seconds here), and v1's statistics must end with its last replica.
- ``canary``: three replicas on v1 with undrifted traffic, replica 4 on v2 (model_version 2)
  whose traffic drifts from v2's data (two measurements shifted): PromdriftFeatureDrift
  fires for the drifted features of baseline v2 only, its labels naming model_version 2 and
  v2's digest; nothing fires for v1.

Each replica counts 5 rows per 0.1 s tick (50 rows/s); ``min_samples`` is set so that the
distribution alerts wait for 20 s of a single replica's traffic: as in production, where
500 values in an hour's window take many scrapes, a baseline's statistics are judged only
once its window holds many scrapes (increase() extrapolates a new series' first samples).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import pytest

from .engines import EngineSpec
from .generated import fast_config, write_rules
from .servers import AppServer, RuleEngine, WebhookReceiver, wait_until

pytestmark = pytest.mark.integration

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_area", "worst_symmetry",
            "mean_concavity"]
DRIFTED = ["mean_radius", "worst_area"]
TICK_S = 0.1
ROWS_PER_TICK = 5
MIN_SAMPLES = 1000          # 20 s of one replica's traffic
WINDOW_S = 30
CONFIG = fast_config(ranges={"5m": "10s", "1h": f"{WINDOW_S}s"},
                     thresholds={"min_samples": MIN_SAMPLES})
V2 = "2"
ALERT_QUERY = 'ALERTS{alertname=~"Promdrift.*"}'
KS = "model_feature:promdrift_ks_statistic:1h"
PSI = "model_feature:promdrift_psi:1h"
N = "model_feature:promdrift_feature_value_count:increase1h"


# ------------------------------------------------------------------------------------ data
def populations() -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """v1's training data, v2's (the same population, shifted: a refit on newer data) and
    the canary's drifted traffic (v2's data with two measurements shifted further)."""
    from promdrift.instrumentation.training.tabular import read_csv

    bc = read_csv(f"{DATA}/breast_cancer.csv", progress=False)
    v1 = {k: np.asarray(bc[k], dtype=np.float64) for k in FEATURES}
    cuts = np.quantile(v1["worst_area"], [1 / 3, 2 / 3])

    def size(area: np.ndarray) -> np.ndarray:
        return np.array(["small", "medium", "large"], dtype=object)[np.searchsorted(cuts, area)]

    v2 = {k: v * 1.15 + 0.3 * v.std() for k, v in v1.items()}
    drifted = {k: (v * 1.4 if k in DRIFTED else v) for k, v in v2.items()}
    out = []
    for cols in (v1, v2, drifted):
        out.append({**cols, "size": size(cols["worst_area"]), "diagnosis": bc["diagnosis"]})
    return out[0], out[1], out[2]


def _rows(cols: Dict[str, np.ndarray], idx: np.ndarray) -> Tuple[List[Dict[str, Any]], List[Any]]:
    names = [*FEATURES, "size"]
    rows = [{k: (float(cols[k][i]) if k != "size" else cols[k][i]) for k in names} for i in idx]
    return rows, [cols["diagnosis"][i] for i in idx]


# -------------------------------------------------------------------------------- replicas
@dataclass
class Replica:
    """One model server: an app whose ``/metrics`` serves its own registry, restarted in
    place onto another baseline (``serve``): the old monitor's series disappear from the next
    scrape, the new baseline's appear, as after a process restart."""

    model: str
    data: Dict[str, np.ndarray]
    registry: Any
    monitor: Any = None
    server: Optional[AppServer] = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, baseline: Any, data: Dict[str, np.ndarray],
              version: Optional[str] = None) -> None:
        from promdrift.instrumentation import DriftMonitor

        with self.lock:
            if self.monitor is not None:
                self.monitor.close()
            self.monitor = DriftMonitor(baseline, model=self.model, model_version=version,
                                        registry=self.registry)
            self.data = data

    def tick(self, rng: np.random.Generator) -> None:
        with self.lock:
            idx = rng.integers(0, len(self.data["diagnosis"]), size=ROWS_PER_TICK)
            self.monitor.observe(*_rows(self.data, idx))


@dataclass
class Run:
    engine: str
    v1: Any
    v2: Any
    alerts_seen: Set[Tuple[str, str, str, str]]     # (alertname, model, baseline, state)
    delivered: List[Dict[str, Any]]
    ks_max: Dict[Tuple[str, str], float]            # (model, baseline) -> max KS seen
    psi_max: Dict[Tuple[str, str], float]
    n_max: Dict[Tuple[str, str], float]
    v1_rollout_after_update: List[Dict[str, Any]]   # v1's KS series once v2 serves alone
    canary_v2: str = ""                             # the digest of the canary's baseline


def _watch(engine: RuleEngine, run: Run, stop: threading.Event) -> None:
    """Every half second: the alerts pending or firing, the largest window count of each
    model's baselines, and their largest KS and PSI once the window holds min_samples values
    (what the alerts judge)."""
    def key(s: Dict[str, Any]) -> Tuple[str, str]:
        return s["metric"]["model"], s["metric"].get("baseline", "")

    while not stop.wait(0.5):
        try:
            engine.sync()
            for a in engine.query(ALERT_QUERY):
                m = a["metric"]
                run.alerts_seen.add((m["alertname"], m.get("model", ""), m.get("baseline", ""),
                                     m.get("alertstate", "")))
            for s in engine.query(N):
                run.n_max[key(s)] = max(run.n_max.get(key(s), 0.0), s["value"])
            judged = f" and on ({CONFIG.by('model', 'feature')}) {N} >= {MIN_SAMPLES}"
            for expr, into in ((KS, run.ks_max), (PSI, run.psi_max)):
                for s in engine.query(expr + judged):
                    into[key(s)] = max(into.get(key(s), 0.0), s["value"])
        except (OSError, ValueError):   # a query during a restart of the engine's reader
            continue


def _scenario(spec: EngineSpec, workdir: str) -> Run:
    from flask import Flask
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import Baseline

    d1, d2, drifted = populations()
    fit = {"predictions": "diagnosis", "categorical": ["size"]}
    v1 = {m: Baseline.fit(d1, model=m, **fit) for m in ("rollout", "canary")}
    v2 = {m: Baseline.fit(d2, model=m, **fit) for m in ("rollout", "canary")}
    assert v1["rollout"].feature("mean_radius").edges != v2["rollout"].feature("mean_radius").edges
    replicas = [Replica(m, d1, CollectorRegistry()) for m in ("rollout", "canary")
                for _ in range(4)]
    for r in replicas:
        r.serve(v1[r.model], d1)
    canary_of_canary = replicas[7]
    canary_of_canary.serve(v2["canary"], drifted, V2)
    rules = write_rules(CONFIG, f"{workdir}/rules")
    run = Run(spec.id, v1["rollout"], v2["rollout"], set(), [], {}, {}, {}, [],
              canary_v2=v2["canary"].digest)
    stop = threading.Event()

    def feed() -> None:
        rng = np.random.default_rng(20261208)
        deadline = time.monotonic() + 300        # bounded whatever happens
        while time.monotonic() < deadline and not stop.wait(TICK_S):
            for r in replicas:
                r.tick(rng)

    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(WebhookReceiver())
        for r in replicas:
            app = r.monitor.instrument(Flask(f"{r.model}-{id(r)}"), landing_path=None)
            r.server = stack.enter_context(AppServer(app))
        engine = stack.enter_context(spec.stack(workdir, [r.server.address for r in replicas],
                                                rules, hook.url))
        engine.wait_up(len(replicas), timeout=40, scrapes=3)
        feeder = threading.Thread(target=feed, name="rollout-traffic", daemon=True)
        watcher = threading.Thread(target=_watch, args=(engine, run, stop),
                                   name="rollout-watch", daemon=True)
        feeder.start()
        watcher.start()
        try:
            rollout = [r for r in replicas if r.model == "rollout"]
            # the canary: replica 4 restarts on v2 for a window and more
            rollout[3].serve(v2["rollout"], d2, V2)
            mixed_from = time.monotonic()

            def canary_alerted() -> bool:
                engine.check_alive()
                return any(a["labels"].get("baseline") == run.canary_v2 for a in hook.alerts())
            with contextlib.suppress(TimeoutError):   # the tests say what is missing
                wait_until(canary_alerted, timeout=WINDOW_S + 15, interval=0.5,
                           what="the canary's drift alert")
            # the mix of v1 and the canary for a whole window and more
            time.sleep(max(0.0, mixed_from + WINDOW_S + 5 - time.monotonic()))
            # the rolling update: replicas 1, 2, 3 move to v2
            for r in rollout[:3]:
                r.serve(v2["rollout"], d2, V2)
                time.sleep(4)
            v1_digest = v1["rollout"].digest

            def v1_gone() -> bool:
                engine.sync()
                return not engine.query(f'{KS}{{model="rollout", baseline="{v1_digest}"}}')
            with contextlib.suppress(TimeoutError):
                wait_until(v1_gone, timeout=15, interval=0.5, what="v1's statistics to end")
            run.v1_rollout_after_update = engine.query(
                f'{KS}{{model="rollout", baseline="{v1_digest}"}}')
            time.sleep(WINDOW_S + 5)                 # v2 alone for a whole window and more
        finally:
            stop.set()
            feeder.join(timeout=10)
            watcher.join(timeout=10)
        run.delivered = hook.alerts()
    return run


_RUNS: Dict[str, Run] = {}


@pytest.fixture(scope="module")
def run(engine: EngineSpec, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if engine.id not in _RUNS:
        _RUNS[engine.id] = _scenario(engine, str(tmp_path_factory.mktemp(f"rollout-{engine.id}")))
    r = _RUNS[engine.id]
    print(f"\n{engine.id}: largest KS / PSI / window count per baseline: " + "; ".join(
        f"{m}@{b}: {r.ks_max[(m, b)]:.3f} / {r.psi_max.get((m, b), float('nan')):.3f} / "
        f"{r.n_max.get((m, b), 0):.0f}" for m, b in sorted(r.ks_max)))
    return r


def test_a_canary_and_a_rolling_update_page_nobody(run: Run) -> None:
    """No promdrift alert of any kind went pending or fired for the model whose replicas
    moved from v1 to v2, none was delivered, and each baseline's statistics stayed small."""
    assert not {a for a in run.alerts_seen if a[1] == "rollout"}
    assert not [a for a in run.delivered if a["labels"].get("model") == "rollout"]
    for digest in (run.v1.digest, run.v2.digest):
        # both baselines were judged (past the sample floor) and found undrifted
        assert run.n_max[("rollout", digest)] >= MIN_SAMPLES, digest
        assert run.ks_max[("rollout", digest)] < CONFIG.thresholds.ks_min_effect, digest
        assert run.psi_max[("rollout", digest)] < 0.1, digest


def test_a_version_statistics_end_with_its_traffic(run: Run) -> None:
    """Once the last v1 replica restarted on v2, v1's statistics are gone (not an hour of
    leftovers), v2's go on."""
    assert run.v1_rollout_after_update == []


def test_drift_in_the_canary_alone_alerts_naming_its_version(run: Run) -> None:
    """The canary's drifted features alert, for its baseline only, their labels naming its
    model_version and baseline; its undrifted features and v1 stay quiet."""
    canary = [a["labels"] for a in run.delivered if a["labels"].get("model") == "canary"]
    fired = {a.get("feature") for a in canary if a["alertname"] == "PromdriftFeatureDrift"}
    assert set(DRIFTED) <= fired, canary
    assert fired <= set(DRIFTED), fired
    for a in canary:
        assert (a.get("model_version"), a.get("baseline")) == (V2, run.canary_v2), a
