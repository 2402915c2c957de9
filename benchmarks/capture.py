"""Benchmark: what data capture adds to DriftMonitor.observe on the request thread.

    python benchmarks/capture.py            # prints a markdown table
    python benchmarks/capture.py --quick    # fewer repetitions

Three ways, interleaved in one process on the same rows:

- ``observe``: no capture (the reference);
- ``queue``: ``DriftMonitor(capture=DataCapture(...))``, what promdrift does: sample, copy
  the row onto a bounded queue, a background thread serialises and writes;
- ``inline``: the alternative design, serialising the row with ``json.dumps`` and writing it
  to a buffered file under a lock in the request thread.

The writer column is the time ``flush()`` then takes per row written: the serialisation and
writing moved off the request thread (it still costs CPU, in the writer thread). The last
column reports the share of rows the writer thread could not keep up with
(dropped, counted in ``promdrift_capture_dropped_total``) when requests arrive back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time

import numpy as np

from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.capture import DataCapture


def per_call_us(fn, rows, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for r in rows:
            fn(r)
        out.append((time.perf_counter() - t0) / len(rows) * 1e6)
    return out


def bench(features: int, rate: float, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    baseline = Baseline.fit(rng.normal(size=(5000, features)), names=names, model="bench")
    rows = [dict(zip(names, r.tolist())) for r in rng.normal(size=(2000, features))]
    tmp = tempfile.mkdtemp()
    plain = DriftMonitor(baseline, registry=None)
    cap = DataCapture(os.path.join(tmp, "q"), sample_rate=rate, seed=0, registry=None,
                      max_file_bytes=256 << 20)
    queued = DriftMonitor(baseline, registry=None, capture=cap)
    inline = DriftMonitor(baseline, registry=None)
    lock = threading.Lock()
    fh = open(os.path.join(tmp, "inline.jsonl"), "a", encoding="utf-8")
    rand = np.random.default_rng(1).random

    def inline_observe(row):
        inline.observe(row)
        if rate >= 1.0 or rand() < rate:
            line = json.dumps({"time": time.time(), "model": "bench", "features": row})
            with lock:
                fh.write(line + "\n")

    results = {"observe": [], "queue": [], "inline": [], "writer": []}
    for _ in range(repeats):
        results["observe"] += per_call_us(plain.observe, rows, 1)
        before = cap.rows_total
        results["queue"] += per_call_us(queued.observe, rows, 1)
        t0 = time.perf_counter()
        cap.flush(timeout=60)  # what the writer thread still had to do, per row written
        written = cap.rows_total - before
        results["writer"].append((time.perf_counter() - t0) / max(written, 1) * 1e6)
        results["inline"] += per_call_us(inline_observe, rows, 1)
    cap.close()
    fh.close()
    sampled = cap.rows_total + cap.dropped_total()
    return {k: statistics.median(v) for k, v in results.items()} | {
        "dropped": cap.dropped_total() / sampled if sampled else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 3 if args.quick else 9
    print("| features | sample rate | observe | + capture (queue), request thread "
          "| writer thread, per row written | + inline json write | queue dropped |")
    print("|---|---|---|---|---|---|---|")
    for features in (10, 100):
        for rate in (1.0, 0.1):
            r = bench(features, rate, repeats)
            print(f"| {features} | {rate:g} | {r['observe']:.1f} µs | {r['queue']:.1f} µs "
                  f"| {r['writer']:.1f} µs | {r['inline']:.1f} µs | {100 * r['dropped']:.1f}% |")


if __name__ == "__main__":
    main()
