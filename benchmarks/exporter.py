"""Benchmark: rows/s through the HTTP exporter, and the cost of the Flask instrumentation.

    python benchmarks/exporter.py            # prints two markdown tables
    python benchmarks/exporter.py --quick    # fewer requests

1. Ingest over HTTP: ``promdrift exporter`` (gunicorn, 2 workers x 4 threads, counts merged
   through PROMDRIFT_MULTIPROC_DIR) on 127.0.0.1, fed by 4 client threads with keep-alive
   connections, one row per request vs batches of 10, 100 and 1,000 rows (JSON arrays of
   penguins rows, with their prediction). Client and server share the machine.
2. Flask instrumentation: the same ``/predict`` view with and without ``monitor.track``,
   called through Flask's test client in the same process, interleaved repeats, so the ratio
   is measured side by side (the absolute difference is what the instrumentation adds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, List

from flask import Flask, request
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from conftest import PENGUINS_CSV, read_rows  # noqa: E402
from exporter_helpers import post_all  # noqa: E402
from integration.servers import free_port  # noqa: E402


def observation(row: dict) -> dict:
    return {"features": {k: v for k, v in row.items() if k != "species"},
            "prediction": row["species"]}


def ingest(port: int, bodies: List[bytes], threads: int) -> float:
    """Seconds to POST every body once, spread over ``threads`` keep-alive connections."""
    parts = [bodies[i::threads] for i in range(threads)]
    t0 = time.perf_counter()
    errors = post_all(port, parts, "/v1/models/penguins/observations", timeout=60)
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests: {errors[:5]}")
    return time.perf_counter() - t0


def bench_http(rows: List[dict], quick: bool) -> List[dict]:
    tmp = tempfile.mkdtemp(prefix="promdrift-bench-")
    path = os.path.join(tmp, "penguins.json")
    data = {k: [r[k] for r in rows] for k in rows[0]}
    Baseline.fit(data, model="penguins", predictions="species").save(path)
    mp = os.path.join(tmp, "mp")
    os.mkdir(mp)
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "promdrift")
    proc = subprocess.Popen([exe, "exporter", "--baseline", path, "--listen",
                             f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                             "--multiproc-dir", mp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    out = []
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        total_rows = 4_000 if quick else 20_000
        sent = 0
        for size in (1, 10, 100, 1000):
            n_req = max(8, total_rows // size) if size > 1 else total_rows // 4
            bodies = []
            for i in range(n_req):
                batch = [observation(rows[(i * size + j) % len(rows)]) for j in range(size)]
                bodies.append(json.dumps(batch if size > 1 else batch[0]).encode())
            seconds = ingest(port, bodies, threads=4)
            sent += n_req * size
            out.append({"size": size, "requests": n_req, "rows": n_req * size,
                        "seconds": seconds})
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        line = next(x for x in text.splitlines() if x.startswith("promdrift_inferences_total"))
        if float(line.split()[-1]) != sent:
            raise RuntimeError(f"/metrics says {line}, {sent} rows were sent")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def per_call_us(fn: Callable[[], None], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def bench_flask(rows: List[dict], quick: bool) -> dict:
    data = {k: [r[k] for r in rows] for k in rows[0]}
    monitor = DriftMonitor(Baseline.fit(data, model="penguins", predictions="species"),
                           registry=CollectorRegistry())

    def view():
        body = request.get_json()
        return {"prediction": body["truth"]}

    plain = Flask("plain")
    plain.add_url_rule("/predict", "predict", view, methods=["POST"])
    instrumented = monitor.instrument(Flask("instrumented"))
    instrumented.add_url_rule("/predict", "predict",
                              monitor.track(features="features", prediction="prediction")(view),
                              methods=["POST"])
    bodies = [json.dumps({"features": {k: v for k, v in r.items() if k != "species"},
                          "truth": r["species"]}) for r in rows]
    clients = {"plain": plain.test_client(), "instrumented": instrumented.test_client()}
    it = {"plain": iter(range(10 ** 9)), "instrumented": iter(range(10 ** 9))}

    def call(name: str) -> Callable[[], None]:
        client = clients[name]

        def fn() -> None:
            client.post("/predict", data=bodies[next(it[name]) % len(bodies)],
                        content_type="application/json")
        return fn

    times = {"plain": [], "instrumented": []}
    calls = 300 if quick else 1000
    for _ in range(5 if quick else 9):  # interleaved repeats
        for name in times:
            times[name].append(per_call_us(call(name), calls))
    plain_us = statistics.median(times["plain"])
    inst_us = statistics.median(times["instrumented"])
    return {"plain_us": plain_us, "instrumented_us": inst_us,
            "inferences": monitor.sample("promdrift_inferences_total")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = read_rows(PENGUINS_CSV)
    print("| exporter ingest over HTTP (2 workers, 4 client threads) | requests | rows | "
          "requests/s | rows/s |")
    print("|---|---|---|---|---|")
    for r in bench_http(rows, args.quick):
        label = "1 row per request (JSON object)" if r["size"] == 1 else \
            f"batches of {r['size']:,} rows (JSON array)"
        print(f"| {label} | {r['requests']:,} | {r['rows']:,} | "
              f"{r['requests'] / r['seconds']:,.0f} | {r['rows'] / r['seconds']:,.0f} |")
    print()
    f = bench_flask(rows, args.quick)
    print("| Flask `/predict` through the test client, 7 features + 1 output | µs per request "
          "(median) |")
    print("|---|---|")
    print(f"| uninstrumented | {f['plain_us']:.0f} |")
    print(f"| with `monitor.track` | {f['instrumented_us']:.0f} |")
    print(f"| added by the instrumentation | {f['instrumented_us'] - f['plain_us']:.0f} "
          f"({f['instrumented_us'] / f['plain_us']:.2f}x) |")


if __name__ == "__main__":
    main()
