"""Benchmark: DriftMonitor.observe vs one prometheus_client histogram call per feature.

    python benchmarks/observe.py            # prints the markdown tables
    python benchmarks/observe.py --quick    # fewer repetitions
    OPENBLAS_NUM_THREADS=1 python benchmarks/observe.py --part derived   # derived features only

Both sides run in the same process, interleaved, on the same rows, so the ratio column is
meaningful on a shared, noisy machine even when the absolute numbers drift. The derived
features' tables (docs/multivariate.md) time today's monitor and one whose baseline was fitted
with ``multivariate=`` or ``embeddings=`` on the same columns; per row they count the CPU time
of the whole process (``time.process_time``) over a block of rows *and* the bulk binning of
the deferred ones (``store.drain()``), so the work moved to the background thread is counted.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Callable, List, Optional

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.counting.exposition import metrics_text


def per_call_us(fn: Callable[[], None], calls: int, repeats: int) -> List[float]:
    """Microseconds per call, one figure per repeat."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return out


def setup(features: int, rows: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(features)]
    train = rng.normal(size=(rows, features))
    baseline = Baseline.fit(train, names=names, model="bench", bins=20)
    monitor = DriftMonitor(baseline, registry=CollectorRegistry())
    registry = CollectorRegistry()
    hist = Histogram("naive_feature_value", "naive", ["model", "feature"],
                     buckets=list(baseline.features[0].edges), registry=registry)
    live = rng.normal(0.1, 1.0, size=(1000, features))
    return names, monitor, hist, live


def bench_rows(features: int, repeats: int) -> dict:
    names, monitor, hist, live = setup(features)
    rows = [dict(zip(names, r.tolist())) for r in live]
    it = iter(range(10**9))

    def ours() -> None:
        monitor.observe(rows[next(it) % len(rows)])

    def naive() -> None:
        row = rows[next(it) % len(rows)]
        for name, value in row.items():
            hist.labels("bench", name).observe(value)

    calls = max(200, 200_000 // features)
    ours_t, naive_t = [], []
    for _ in range(repeats):  # interleaved: both see the same machine state
        ours_t += per_call_us(ours, calls, 1)
        naive_t += per_call_us(naive, max(20, calls // 20), 1)
    return {"features": features, "ours_us": statistics.median(ours_t),
            "naive_us": statistics.median(naive_t)}


def bench_batch(features: int, repeats: int) -> dict:
    names, monitor, hist, live = setup(features)
    batch = np.random.default_rng(1).normal(size=(max(1000, 1_000_000 // features), features))
    t = per_call_us(lambda: monitor.observe(batch), 3, repeats)
    best = statistics.median(t)
    return {"features": features, "rows": len(batch), "ms": best / 1e3,
            "values_per_s": batch.size / (best / 1e6)}


def bench_render(features: int = 100, repeats: int = 5) -> dict:
    names, monitor, _, live = setup(features)
    monitor.observe(live)
    text = monitor.render()
    registry = CollectorRegistry()
    m2 = DriftMonitor(monitor.baseline, registry=registry)
    m2.observe(live)
    from prometheus_client import generate_latest
    ours = statistics.median(per_call_us(lambda: metrics_text(registry), 20, repeats))
    classic = statistics.median(per_call_us(lambda: generate_latest(registry), 3, repeats))
    return {"features": features, "samples": text.count("\n") - text.count("#"),
            "ours_ms": ours / 1e3, "generate_latest_ms": classic / 1e3}


def cpu_per_row_us(monitor: DriftMonitor, calls: List[Callable[[], None]]) -> float:
    """CPU microseconds of the process per call, the deferred rows' bulk binning included."""
    t0 = time.process_time()
    for call in calls:
        call()
    monitor.store.drain()
    return (time.process_time() - t0) / len(calls) * 1e6


def derived_setup(features: int, dim: int = 0, components: Optional[int] = None,
                  rows: int = 20_000, seed: int = 0):
    """Today's monitor and one with derived features, fitted on the same correlated rows
    (``components``: ``multivariate=``; ``dim``: also ``embeddings=`` of that dimension, a
    decaying spectrum around an offset), and live rows and vectors from the same law."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(features, features))
    names = [f"f{i}" for i in range(features)]
    train = rng.normal(size=(rows, features)) @ mixing
    live = rng.normal(size=(10_000, features)) @ mixing
    emb_train = emb_live = None
    if dim:
        basis = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        spectrum = 1.0 / np.arange(1, dim + 1) ** 0.7
        emb_train = (rng.normal(size=(rows, dim)) * spectrum) @ basis + 0.3
        emb_live = (rng.normal(size=(10_000, dim)) * spectrum) @ basis + 0.3
    today = DriftMonitor(Baseline.fit(train, names=names, model="today"), registry=None)
    derived = DriftMonitor(Baseline.fit(train, names=names, model="derived",
                                        multivariate=components or False,
                                        embeddings=emb_train), registry=None)
    return names, today, derived, live, emb_live


def bench_derived_rows(repeats: int, block: int = 2000) -> List[dict]:
    """Per row: today's observe and the same with derived features, interleaved blocks."""
    out = []
    names, today, mv, live, _ = derived_setup(100, components=10)
    dicts = [dict(zip(names, r.tolist())) for r in live[:block]]
    lists = [r.tolist() for r in live[:block]]
    arrays = list(live[:block])
    cases = [(f"100 numeric features, {mv.baseline.multivariate.n_components} components",
              form, rows) for form, rows in (("dict row", dicts), ("list row", lists),
                                              ("1-D array row", arrays))]
    for label, form, rows in cases:
        t = {"today": [], "derived": []}
        for _ in range(repeats):
            for key, m in (("today", today), ("derived", mv)):
                t[key].append(cpu_per_row_us(m, [functools.partial(m.observe, r)
                                                 for r in rows]))
        out.append({"what": f"{label}, {form}", "today": statistics.median(t["today"]),
                    "derived": statistics.median(t["derived"])})
    for dim in (384, 1024):
        names, today, em, live, vectors = derived_setup(10, dim=dim)
        dicts = [dict(zip(names, r.tolist())) for r in live[:block]]
        forms = (("float64 array", list(vectors[:block])),
                 ("list of floats (JSON)", [v.tolist() for v in vectors[:block]]))
        k = em.baseline.embedding.n_components
        for form, vecs in forms:
            t = {"today": [], "derived": []}
            for _ in range(repeats):
                t["today"].append(cpu_per_row_us(
                    today, [functools.partial(today.observe, r) for r in dicts]))
                t["derived"].append(cpu_per_row_us(
                    em, [functools.partial(em.observe, r, embedding=v)
                         for r, v in zip(dicts, vecs)]))
            out.append({"what": f"10 numeric features + {dim}-dim embedding ({k} components) "
                                f"as a {form}, dict row",
                        "today": statistics.median(t["today"]),
                        "derived": statistics.median(t["derived"])})
    return out


def bench_derived_batch(repeats: int) -> List[dict]:
    """10,000-row batches: today's observe and the same with derived features."""
    out = []
    names, today, mv, live, _ = derived_setup(100, components=10)
    k = mv.baseline.multivariate.n_components
    cases = [(f"10,000 x 100 numeric features, {k} components", live.size,
              lambda: today.observe(live), lambda: mv.observe(live))]
    for dim in (384, 1024):
        names, today_e, em, live_e, vectors = derived_setup(10, dim=dim)
        wide = DriftMonitor(Baseline.fit(vectors[:5000], names=[f"d{i}" for i in range(dim)],
                                         model="wide"), registry=None)
        k = em.baseline.embedding.n_components
        cases.append((f"10,000 x (10 numeric features + {dim}-dim embedding, {k} components)",
                      live_e.size + vectors.size, lambda t=today_e, x=live_e: t.observe(x),
                      lambda m=em, x=live_e, v=vectors: m.observe(x, embedding=v)))
        cases.append((f"(for scale) 10,000 x {dim} dimensions as {dim} numeric features",
                      vectors.size, None, lambda m=wide, v=vectors: m.observe(v)))
    for what, values, plain, derived in cases:
        fns = {"derived": derived, **({"today": plain} if plain else {})}
        t = {key: [] for key in fns}
        for _ in range(repeats):
            for key, fn in fns.items():
                t[key] += per_call_us(fn, 1, 1)
        out.append({"what": what, "values": values,
                    "derived_ms": statistics.median(t["derived"]) / 1e3,
                    "today_ms": statistics.median(t["today"]) / 1e3 if plain else None})
    return out


def print_derived(repeats: int) -> None:
    print("| observe one row (CPU per row, deferred binning included) | today p50 | "
          "with derived features p50 | added |")
    print("|---|---|---|---|")
    for r in bench_derived_rows(repeats):
        print(f"| {r['what']} | {r['today']:.1f} µs | {r['derived']:.1f} µs | "
              f"{r['derived'] - r['today']:+.1f} µs |")
    print()
    print("| observe a 10,000-row batch | today p50 | with derived features p50 | ratio | "
          "input values/s with derived features |")
    print("|---|---|---|---|---|")
    for r in bench_derived_batch(repeats):
        today = f"{r['today_ms']:.1f} ms" if r["today_ms"] else "—"
        ratio = f"{r['derived_ms'] / r['today_ms']:.2f}x" if r["today_ms"] else "—"
        print(f"| {r['what']} | {today} | {r['derived_ms']:.1f} ms | {ratio} | "
              f"{r['values'] / r['derived_ms'] / 1e3:.0f} M |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=("all", "today", "derived"), default="all",
                    help="today's tables, the derived features' tables, or both")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    if args.part in ("all", "derived"):
        print_derived(repeats)
        print()
    if args.part == "derived":
        return
    print("| observe, one dict row | promdrift p50 | naive p50 (histogram call per feature) | speed-up |")
    print("|---|---|---|---|")
    for f in (10, 100, 1000):
        r = bench_rows(f, repeats)
        print(f"| {f} numeric features | {r['ours_us']:.1f} µs | {r['naive_us']:.1f} µs | "
              f"{r['naive_us'] / r['ours_us']:.1f}x |")
    print()
    print("| observe, 2-D array batch | rows | time | values/s |")
    print("|---|---|---|---|")
    for f in (10, 100, 1000):
        r = bench_batch(f, repeats)
        print(f"| {f} numeric features | {r['rows']:,} | {r['ms']:.1f} ms | "
              f"{r['values_per_s'] / 1e6:.0f} M |")
    print()
    r = bench_render()
    print("| /metrics render | samples | promdrift | prometheus_client generate_latest |")
    print("|---|---|---|---|")
    print(f"| {r['features']} features x 20 bins | {r['samples']:,} | {r['ours_ms']:.2f} ms | "
          f"{r['generate_latest_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
