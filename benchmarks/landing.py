"""Benchmark: rendering the landing page, next to rendering /metrics for the same model.

    python benchmarks/landing.py            # prints a markdown table
    python benchmarks/landing.py --quick    # fewer repetitions

Both renders run in the same process, interleaved, on the same counts, so the ratio column
holds on a shared machine even when the absolute numbers drift.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import numpy as np
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor, landing_page


def timings_ms(fns: List[Callable[[], object]], repeats: int) -> List[List[float]]:
    """Milliseconds per call of each function, interleaved, ``repeats`` calls each."""
    out: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            out[i].append((time.perf_counter() - t0) * 1e3)
    return out


def model(features: int, categorical: int, bins: int = 20, rows: int = 20_000,
          seed: int = 0) -> DriftMonitor:
    """A model with ``features`` numeric and ``categorical`` categorical (10 categories)
    features, after 1,000 drifted rows of traffic."""
    rng = np.random.default_rng(seed)
    data = {f"f{i}": rng.normal(size=rows) for i in range(features)}
    data.update({f"c{i}": rng.integers(0, 10, size=rows).astype(str)
                 for i in range(categorical)})
    monitor = DriftMonitor(Baseline.fit(data, model="bench", bins=bins,
                                        categorical=[f"c{i}" for i in range(categorical)]),
                           registry=CollectorRegistry())
    live = rng.normal(0.2, 1.0, size=(1000, features))
    batch = [dict({f"f{i}": v for i, v in enumerate(r.tolist())},
                  **{f"c{i}": str(rng.integers(0, 12)) for i in range(categorical)})
             for r in live]
    monitor.observe(batch)
    return monitor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 20 if args.quick else 200
    print("| model | page size | landing page p50 (best) | /metrics p50 (best) | ratio of p50 |")
    print("|---|---|---|---|---|")
    for features, categorical in ((10, 0), (100, 0), (90, 10), (1000, 0)):
        monitor = model(features, categorical)
        page = landing_page(monitor)
        reps = max(5, repeats // 10) if features >= 1000 else repeats
        land, metrics = timings_ms([lambda: landing_page(monitor), monitor.render], reps)
        p50_land, p50_metrics = statistics.median(land), statistics.median(metrics)
        what = f"{features} numeric" + (f" + {categorical} categorical" if categorical else "")
        print(f"| {what} features x 20 bins | {len(page.encode()) / 1024:,.0f} KiB | "
              f"{p50_land:.2f} ms ({min(land):.2f}) | {p50_metrics:.2f} ms ({min(metrics):.2f}) | "
              f"{p50_land / p50_metrics:.1f}x |")


if __name__ == "__main__":
    main()
