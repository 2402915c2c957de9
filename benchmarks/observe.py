"""Benchmark: DriftMonitor.observe vs one prometheus_client histogram call per feature.

    python benchmarks/observe.py            # prints a markdown table
    python benchmarks/observe.py --quick    # fewer repetitions

Both sides run in the same process, interleaved, on the same rows, so the ratio column is
meaningful on a shared, noisy machine even when the absolute numbers drift.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.exposition import metrics_text


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
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
