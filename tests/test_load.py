"""Bounded load on loopback: 8 threads x 5,000 requests to ``promdrift exporter`` (2 gunicorn
workers); ``/metrics`` then reports exactly what was sent, sample for sample."""

from __future__ import annotations

import json
import os
import time

import pytest

from promdrift.instrumentation import Baseline, DriftMonitor

from conftest import PENGUINS_CSV, read_rows
from exporter_helpers import BIN, GunicornProcess, assert_same_counts, free_port, post_all
from exporter_helpers import http as http_request

pytest.importorskip("gunicorn")

THREADS = 8
REQUESTS = 5000  # per thread
TIME_LIMIT = 240  # seconds for the whole load; the test fails beyond


@pytest.fixture(scope="module")
def rows():
    return read_rows(PENGUINS_CSV)


def split(row):
    return {k: v for k, v in row.items() if k != "species"}, row["species"]


def test_load_totals_equal_what_was_sent(rows, tmp_path, capsys):
    data = {k: [r[k] for r in rows] for k in rows[0]}
    path = str(tmp_path / "penguins.json")
    Baseline.fit(data, model="penguins", predictions="species").save(path)
    # Pre-encoded bodies: request i of thread t carries row (t * REQUESTS + i) % len(rows), and
    # every 10th request a batch of 4 rows; invalid values are part of the data (NA -> null).
    bodies, counts = [], []
    for t in range(THREADS):
        mine = []
        for i in range(REQUESTS):
            start = (t * REQUESTS + i) % len(rows)
            k = 4 if i % 10 == 9 else 1
            batch = [rows[(start + j) % len(rows)] for j in range(k)]
            mine.append(json.dumps([{"features": f, "prediction": p}
                                    for f, p in map(split, batch)]).encode())
            counts.append(batch)
        bodies.append(mine)

    port = free_port()
    argv = [os.path.join(BIN, "promdrift"), "exporter", "--baseline", path, "--listen",
            f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
            "--multiproc-dir", str(tmp_path)]
    with GunicornProcess(argv, port, log_path=str(tmp_path / "log")) as server:
        start = time.monotonic()
        failures = post_all(port, bodies, "/v1/models/penguins/observations",
                            deadline=start + TIME_LIMIT, join_timeout=TIME_LIMIT + 30)
        elapsed = time.monotonic() - start
        text = http_request("GET", server.url + "/metrics")[1].decode()
    assert failures == []
    reference = DriftMonitor(path, registry=None)
    sent_rows = 0
    for batch in counts:
        reference.observe([split(r)[0] for r in batch], [split(r)[1] for r in batch])
        sent_rows += len(batch)
    got = assert_same_counts(text, reference)
    inferences = got[("promdrift_inferences_total", tuple(sorted(reference.plan_labels)))]
    assert inferences == sent_rows == THREADS * REQUESTS * 13 // 10
    with capsys.disabled():
        print(f"\nload: {THREADS} threads x {REQUESTS} requests = {THREADS * REQUESTS} "
              f"requests, {sent_rows} rows in {elapsed:.1f} s; /metrics "
              f"promdrift_inferences_total = {inferences:.0f}")
