"""Benchmark: does ``promdrift exporter`` keep serving while slow clients hold connections?

    python benchmarks/slow_clients.py                    # this checkout's exporter
    python benchmarks/slow_clients.py --promdrift /other/venv/bin/promdrift   # another build

For each number N of hostile connections, a fresh ``promdrift exporter --workers 2`` (4
threads each where the server uses threads) on 127.0.0.1 receives N connections that send a
request head announcing ``Content-Length: 100000`` and then one byte of body, and never more.
While they are held, the benchmark times a normal one-row POST and a ``GET /metrics`` (each
with a 20 s client timeout: "timeout" means no answer within 20 s), then waits up to 15 s for
the server to answer or close the hostile connections and reports how many it still holds.
Every server is stopped by the benchmark; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from conftest import PENGUINS_CSV  # noqa: E402
from integration.servers import free_port, wait_until  # noqa: E402

from promdrift.instrumentation import Baseline  # noqa: E402

PATH = "/v1/models/penguins/observations"
HEAD = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100000\r\n\r\n[").encode()
ROW = json.dumps([{"features": {"bill_length_mm": 39.1, "island": "Dream"},
                   "prediction": "Adelie"}]).encode()


def timed(method: str, url: str, body: Optional[bytes] = None, timeout: float = 20.0) -> str:
    """Seconds to an answer (and its status), or "timeout" / the error."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (TimeoutError, socket.timeout):
        return "timeout"
    except OSError as e:
        return type(e).__name__
    return f"{time.perf_counter() - t0:.3f} s ({status})"


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
    url = f"http://127.0.0.1:{port}"
    mp = tempfile.mkdtemp(dir=workdir)
    log = open(os.path.join(workdir, f"exporter-{n}.log"), "wb")
    proc = subprocess.Popen([promdrift, "exporter", "--baseline", baseline, "--listen",
                             f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                             "--multiproc-dir", mp], stdout=log, stderr=subprocess.STDOUT)
    conns: List[socket.socket] = []
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(ready, timeout=60, what="the exporter")
        timed("POST", url + PATH, ROW)  # both workers warm
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(HEAD)
            conns.append(c)
        time.sleep(0.5)  # the server has read every head
        post = timed("POST", url + PATH, ROW)
        metrics = timed("GET", url + "/metrics")
        still = held(conns, 15.0)
        return {"hostile": n, "post": post, "metrics": metrics, "held after 15 s": still}
    finally:
        for c in conns:
            c.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


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
    print("| hostile connections | normal POST | GET /metrics | hostile still held after 15 s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['hostile']} | {r['post']} | {r['metrics']} | {r['held after 15 s']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
