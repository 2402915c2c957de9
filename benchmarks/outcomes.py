"""Benchmark: what the outcome monitors add to observe, and what a label costs.

    python benchmarks/outcomes.py            # prints a markdown table
    python benchmarks/outcomes.py --quick    # fewer repetitions

One 10-feature model with a categorical prediction; every variant runs in the same process,
interleaved, on the same rows, so the ratios hold on a shared, noisy machine. The label store
is a WAL-mode SQLite file in a temporary directory (the default kind of store).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor


def per_call_us(fn: Callable[[int], None], calls: int, counter: itertools.count) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(next(counter))
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    calls, repeats = (500, 3) if args.quick else (2000, 7)
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(10)]
    train = {n: rng.normal(size=5000) for n in names}
    train["group"] = rng.choice(["a", "b", "c"], size=5000)
    pred = rng.choice(["yes", "no"], size=5000)
    baseline = Baseline.fit(train, model="bench", predictions={"label": pred})
    row = {n: 0.5 for n in names}
    row["group"] = "b"
    attr = {n: 0.1 * i for i, n in enumerate(names)}
    tmp = tempfile.mkdtemp(prefix="promdrift-bench-")
    plain = DriftMonitor(baseline, registry=CollectorRegistry())
    labels = DriftMonitor(baseline, registry=CollectorRegistry()).track_labels(
        f"{tmp}/labels.sqlite3")
    full = (DriftMonitor(baseline, registry=CollectorRegistry())
            .track_labels(f"{tmp}/full.sqlite3").track_facets("group").track_attributions())
    ids = itertools.count()
    lids = itertools.count()
    variants: Dict[str, Callable[[int], None]] = {
        "observe(row, prediction)": lambda i: plain.observe(row, "yes"),
        "+ inference_id (label store)": lambda i: labels.observe(row, "yes", inference_id=i),
        "record_label (a join)": lambda i: labels.record_label(i, "no"),
        "+ inference_id, facet, attributions": lambda i: full.observe(
            row, "yes", inference_id=i, attributions=attr),
    }
    counters = {k: (lids if k.startswith("record") else ids if k.startswith("+ inf")
                    else itertools.count()) for k in variants}
    results: Dict[str, List[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            results[k].append(per_call_us(fn, calls, counters[k]))
    base = statistics.median(results["observe(row, prediction)"])
    print("| call (10 features, 1 categorical output) | p50 per call | vs plain observe |")
    print("|---|---|---|")
    for k, v in results.items():
        med = statistics.median(v)
        print(f"| {k} | {med:.1f} µs | {med / base:.1f}x |")
    t0 = time.perf_counter()
    for _ in range(20):
        full.metrics_text()
    print(f"\n/metrics of the fully tracked model: {(time.perf_counter() - t0) / 20 * 1e3:.2f} ms")
    for m in (plain, labels, full):
        m.close()


if __name__ == "__main__":
    main()
