"""Benchmark: what data capture adds to DriftMonitor.observe on the request thread.

    python benchmarks/capture.py            # prints a markdown table
    python benchmarks/capture.py --quick    # fewer repetitions
    python benchmarks/capture.py --report   # promdrift report over 200,000 captured rows

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


def bench_report(rows: int = 200_000, features: int = 20) -> None:
    """Capture ``rows`` rows of ``features`` numeric features, then time ``promdrift report``."""
    import subprocess
    import sys
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    tmp = tempfile.mkdtemp()
    baseline = Baseline.fit(rng.normal(size=(20_000, features)), names=names, model="big")
    baseline.save(os.path.join(tmp, "b.json"))
    cap = DataCapture(os.path.join(tmp, "cap"), registry=None, max_file_bytes=8 << 20,
                      max_files=1000, queue_size=rows)
    monitor = DriftMonitor(baseline, registry=None, capture=cap)
    t0 = time.perf_counter()
    monitor.observe(rng.normal(0.1, 1.0, size=(rows, features)))
    cap.close(timeout=600)
    written = time.perf_counter() - t0
    size = sum(os.path.getsize(os.path.join(tmp, "cap", f))
               for f in os.listdir(os.path.join(tmp, "cap")))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "promdrift.exporter.cli", "report", "--baseline",
                    os.path.join(tmp, "b.json"), os.path.join(tmp, "cap"), "-o",
                    os.path.join(tmp, "report.html"), "-q"], check=True)
    took = time.perf_counter() - t0
    print(f"| {rows:,} rows x {features} features | {size / 2**20:.0f} MB | "
          f"capture {written:.1f} s | report {took:.1f} s ({rows / took:,.0f} rows/s) |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        bench_report()
        return
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
