"""Benchmark: does ``promdrift exporter`` keep serving while slow clients hold connections?

    python benchmarks/slow_clients.py                    # this checkout's exporter
    python benchmarks/slow_clients.py --promdrift /other/venv/bin/promdrift   # another build

For each number N of hostile connections, a fresh ``promdrift exporter --workers 2`` (4
threads each where the server uses threads) on 127.0.0.1 receives N connections that send a
request head announcing ``Content-Length: 100000`` and then one byte of body, and never more.
While they are held, the benchmark sends 10 normal one-row POSTs and 10 ``GET /metrics``, one
after the other, each on a new connection with a 5 s client timeout, and reports how many
were answered (200) and the slowest answer; then it waits up to 15 s for the server to answer
or close the hostile connections and reports how many it still holds.
Every server is stopped by the benchmark; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from conftest import PENGUINS_CSV  # noqa: E402
from exporter_helpers import GunicornProcess, free_port  # noqa: E402

from promdrift.instrumentation import Baseline  # noqa: E402

PATH = "/v1/models/penguins/observations"
HEAD = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100000\r\n\r\n[").encode()
TRIES = 10  # normal requests of each kind while the hostile connections are held
TIMEOUT = 5.0  # seconds each of them may take
ROW = json.dumps([{"features": {"bill_length_mm": 39.1, "island": "Dream"},
                   "prediction": "Adelie"}]).encode()


def timed(method: str, url: str, body: Optional[bytes] = None,
          timeout: float = 20.0) -> Optional[float]:
    """Seconds to a 200 answer on a new connection; ``None`` for no answer within
    ``timeout``, an error or another status."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return time.perf_counter() - t0 if r.status == 200 else None
    except OSError:  # timeouts, resets, HTTP errors
        return None


def held(conns: List[socket.socket], wait: float) -> int:
    """How many of ``conns`` the server neither answered nor closed within ``wait`` s."""
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c, selectors.EVENT_READ)
    open_ = set(conns)
    deadline = time.monotonic() + wait
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            sel.unregister(key.fileobj)
            open_.discard(key.fileobj)
    sel.close()
    return len(open_)


def scenario(promdrift: str, baseline: str, n: int, workdir: str) -> Dict[str, object]:
    port = free_port()
    argv = [promdrift, "exporter", "--baseline", baseline, "--listen", f"127.0.0.1:{port}",
            "--workers", "2", "--threads", "4", "--multiproc-dir", tempfile.mkdtemp(dir=workdir)]
    conns: List[socket.socket] = []
    log = os.path.join(workdir, f"exporter-{n}.log")
    with GunicornProcess(argv, port, log_path=log) as server:
        url = server.url
        try:
            timed("POST", url + PATH, ROW)  # both workers warm
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sendall(HEAD)
                conns.append(c)
            time.sleep(0.5)  # the server has read every head
            posts = [timed("POST", url + PATH, ROW, timeout=TIMEOUT) for _ in range(TRIES)]
            metrics = [timed("GET", url + "/metrics", timeout=TIMEOUT) for _ in range(TRIES)]
            still = held(conns, 15.0)
        finally:
            for c in conns:
                c.close()
    return {"hostile": n, "post": summary(posts), "metrics": summary(metrics),
            "held after 15 s": still}


def summary(results: List[Optional[float]]) -> str:
    """"k/n, slowest s": how many requests were answered (200) and the slowest of them."""
    answered = [r for r in results if r is not None]
    slowest = f", slowest {max(answered):.3f} s" if answered else ""
    return f"{len(answered)}/{len(results)}{slowest}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promdrift", default=os.path.join(os.path.dirname(sys.executable),
                                                            "promdrift"),
                        help="the promdrift command to start (default: this environment's)")
    parser.add_argument("--connections", default="4,16,64",
                        help="numbers of hostile connections (default 4,16,64)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="promdrift-slow-")
    baseline = os.path.join(workdir, "penguins.json")
    Baseline.fit_csv(PENGUINS_CSV, model="penguins", predictions="species",
                     progress=False).save(baseline)
    rows = [scenario(args.promdrift, baseline, int(n), workdir)
            for n in args.connections.split(",")]
    print(f"| hostile connections | normal POSTs answered (of {TRIES}, {TIMEOUT:g} s each) | "
          f"GET /metrics answered | hostile still held after 15 s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['hostile']} | {r['post']} | {r['metrics']} | {r['held after 15 s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
