"""Benchmark: what promdrift adds to a request, and what a scrape of /metrics costs.

    python benchmarks/request_path.py                      # every part, markdown tables
    python benchmarks/request_path.py --part inprocess     # or: http, metrics
    python benchmarks/request_path.py --quick              # fewer calls and requests

1. ``inprocess``: the same app (``request_apps.py``, both instrumented with ``/metrics``)
   with its predict view plain and under ``@monitor.track`` (25 numeric features, one
   numeric output), called in one process without a network: Flask through its WSGI
   callable, FastAPI through its ASGI callable in one event loop. Times are CPU time of the
   process (all its threads), not wall time: on a shared machine wall time mostly measures
   the other jobs. Blocks of 100 calls alternate between the two apps; a round's figure per
   variant is the median block, the added time is the difference of the two (reported: the
   median over rounds, with the lowest and highest round).
2. ``http``: the two variants served side by side on 127.0.0.1 by two gunicorn servers
   (1 worker x 4 threads, gthread) or two uvicorn servers (1 worker each), loaded in turn by
   ``ab -k -c 4 -n N`` (Debian's apache2-utils): a fixed request count per run, the variants
   alternated (ABBA), so each round gives one throughput ratio. Every server is stopped
   through its own process handle.
3. ``metrics``: rendering ``/metrics`` for 100 numeric features x 20 bins (7,003 samples)
   in every documented way, against prometheus_client's ``generate_latest`` of the same
   registry (what its own ``start_http_server`` / ``make_wsgi_app`` / ``make_asgi_app``
   serve).

The machine is shared: compare the ratios of one run, and the spread over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from promdrift.instrumentation import Baseline, DriftMonitor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import request_apps  # noqa: E402
from integration.servers import free_port  # noqa: E402

FEATURES = 25
#: The in-process part's clock: CPU seconds of this process (every thread: the background
#: binning of deferred rows counts too). Wall time on a shared machine mostly measures the
#: other jobs; what a request costs in CPU is what limits a server's throughput.
CLOCK = time.process_time


def fit_baseline(directory: str, features: int = FEATURES) -> str:
    """A baseline of ``features`` normal features and a numeric output, saved in
    ``directory``; returns its path."""
    rng = np.random.default_rng(0)
    data = {f"f{i}": rng.normal(size=20_000) for i in range(features)}
    data["prediction"] = 0.01 * sum(data.values())
    path = os.path.join(directory, "bench.json")
    Baseline.fit(data, model="bench", predictions="prediction", bins=20).save(path)
    return path


def body(seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return json.dumps({"features": {f"f{i}": float(v) for i, v in
                                    enumerate(rng.normal(size=FEATURES))}}).encode()


def spread(values: List[float], fmt: str = "{:.1f}") -> str:
    return (fmt.format(statistics.median(values)) + " (" + fmt.format(min(values)) + " to "
            + fmt.format(max(values)) + ")")


# ---------------------------------------------------------------------- in process
def wsgi_caller(app: Any, path: str, payload: bytes) -> Callable[[], None]:
    from werkzeug.test import EnvironBuilder
    template = EnvironBuilder(path=path, method="POST", data=payload,
                              content_type="application/json").get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{path}: {status}")

    def call() -> None:
        env = dict(template)
        env["wsgi.input"] = io.BytesIO(payload)
        result = app(env, start_response)
        for _ in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return call


def asgi_scope(path: str, payload: bytes) -> Dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())]}


async def asgi_calls(app: Any, path: str, payload: bytes, calls: int) -> float:
    """Seconds for ``calls`` requests to ``path`` through the ASGI callable."""
    template = asgi_scope(path, payload)
    message = {"type": "http.request", "body": payload, "more_body": False}
    status: List[int] = []

    async def receive() -> Dict[str, Any]:
        return message

    async def send(msg: Dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            status.append(msg["status"])

    t0 = CLOCK()
    for _ in range(calls):
        await app(dict(template), receive, send)
    elapsed = CLOCK() - t0
    if set(status) != {200}:
        raise RuntimeError(f"{path}: statuses {sorted(set(status))}")
    return elapsed


def alternate(timers: Dict[str, Callable[[int], float]], rounds: int, blocks: int,
              calls: int) -> Dict[str, List[float]]:
    """µs per call of each variant per round: the median over ``blocks`` blocks of ``calls``
    calls, the variants' blocks alternated (the order flips every block) so that both see the
    same machine; plus ``added``: tracked minus plain per round."""
    names = list(timers)
    out: Dict[str, List[float]] = {n: [] for n in names + ["added"]}
    for _ in range(rounds):
        per: Dict[str, List[float]] = {n: [] for n in names}
        for b in range(blocks):
            for n in (names if b % 2 == 0 else names[::-1]):
                per[n].append(timers[n](calls) / calls * 1e6)
        for n in names:
            out[n].append(statistics.median(per[n]))
        out["added"].append(out["tracked"][-1] - out["plain"][-1])
    return out


def bench_inprocess(baseline_path: str, quick: bool) -> List[Dict[str, Any]]:
    os.environ["PROMDRIFT_BENCH_BASELINE"] = baseline_path
    payload = body()
    rounds, blocks, calls = (3, 20, 100) if quick else (7, 40, 100)
    total = rounds * blocks * calls + 500
    out = []
    # Flask through its WSGI callable.
    m = request_apps.monitor()
    apps = {"plain": request_apps.create_flask(False), "tracked": request_apps.create_flask(
        True, m)}
    fns = {p: wsgi_caller(app, "/predict", payload) for p, app in apps.items()}

    def wsgi_timer(fn: Callable[[], None]) -> Callable[[int], float]:
        def run(n: int) -> float:
            t0 = CLOCK()
            for _ in range(n):
                fn()
            return CLOCK() - t0
        return run

    timers = {p: wsgi_timer(fn) for p, fn in fns.items()}
    for t in timers.values():
        t(500)
    res = alternate(timers, rounds, blocks, calls)
    if m.sample("promdrift_inferences_total") != total:
        raise RuntimeError("the tracked Flask route did not count every request")
    out.append({"server": "Flask (WSGI callable)", **res})
    # FastAPI through its ASGI callable.
    m = request_apps.monitor()
    try:
        apps = {"plain": request_apps.create_asgi(False), "tracked": request_apps.create_asgi(
            True, m)}
    except AttributeError as e:  # a promdrift without the ASGI integration (before it)
        print(f"(no ASGI measurement: {e})", file=sys.stderr)
        return out
    loop = asyncio.new_event_loop()
    try:
        timers = {p: (lambda n, p=p: loop.run_until_complete(
            asgi_calls(apps[p], "/predict", payload, n))) for p in apps}
        for t in timers.values():
            t(500)
        res = alternate(timers, rounds, blocks, calls)
    finally:
        loop.close()
    if m.sample("promdrift_inferences_total") != total:
        raise RuntimeError("the tracked FastAPI route did not count every request: "
                           f"{m.sample('promdrift_inferences_total')}")
    out.append({"server": "FastAPI (ASGI callable)", **res})
    return out


# ---------------------------------------------------------------------- over HTTP
def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {timeout} s")


def ab(url: str, payload_path: str, requests: int, concurrency: int = 4) -> float:
    """Requests per second of one ``ab -k`` run; every request must succeed."""
    out = subprocess.run(["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests),
                          "-s", "30", "-p", payload_path, "-T", "application/json", url],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"ab failed: {out.stderr.strip() or out.stdout[-500:]}")
    failed = int(re.search(r"Failed requests:\s+(\d+)", out.stdout).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out.stdout)
    if failed or non2xx:
        raise RuntimeError(f"ab: {failed} failed, {non2xx.group(1) if non2xx else 0} "
                           f"non-2xx responses for {url}")
    return float(re.search(r"Requests per second:\s+([\d.]+)", out.stdout).group(1))


def servers(port: int, before: bool = False) -> Dict[str, Dict[str, List[str]]]:
    """``{server: {variant: argv}}``; the variants listen on ``port``, ``port + 1`` (and
    ``port + 2``: the tracked app of another promdrift, ``--before``)."""
    py = sys.executable
    gunicorn_argv = [py, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "4",
                     "--chdir", HERE, "--log-level", "warning"]
    try:
        import gunicorn.config
        if "control_socket_disable" in {s.name for s in gunicorn.config.KNOWN_SETTINGS}:
            gunicorn_argv.append("--no-control-socket")
    except ImportError:
        pass
    uvicorn_argv = [py, "-m", "uvicorn", "--app-dir", HERE, "--factory", "--host",
                    "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    ports = {"plain": port, "tracked": port + 1}
    if before:
        ports["before"] = port + 2
    return {
        "gunicorn + Flask (1 worker x 4 threads)": {
            v: gunicorn_argv + ["--bind", f"127.0.0.1:{ports[v]}",
                                f"request_apps:create_flask({v != 'plain'})"]
            for v in ports},
        "uvicorn + FastAPI (1 worker)": {
            v: uvicorn_argv + ["--port", str(ports[v]),
                               f"request_apps:create_{'plain' if v == 'plain' else 'tracked'}"
                               "_asgi"]
            for v in ports},
    }


def free_ports(n: int) -> int:
    """A port ``p`` such that ``p`` ... ``p + n - 1`` are free on 127.0.0.1."""
    import socket
    for _ in range(100):
        p = free_port()
        try:
            for i in range(1, n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + i))
            return p
        except OSError:
            continue
    raise RuntimeError(f"no {n} consecutive free ports")


def pooled(rps: List[float]) -> float:
    """Requests per second over all rounds: equal request counts, so the harmonic mean."""
    return len(rps) / sum(1.0 / r for r in rps)


def bench_http(baseline_path: str, quick: bool, only: str = "",
               before: str = "") -> List[Dict[str, Any]]:
    """``before``: the import path of another promdrift (a checkout's package folder), whose
    tracked app runs as a third variant in the same rounds."""
    if shutil.which("ab") is None:
        raise SystemExit("ab not found: apt-get install apache2-utils")
    requests, rounds = (2_000, 3) if quick else (5_000, 10)
    tmp = tempfile.mkdtemp(prefix="promdrift-bench-")
    payload_path = os.path.join(tmp, "body.json")
    with open(payload_path, "wb") as f:
        f.write(body())
    env = {**os.environ, "PROMDRIFT_BENCH_BASELINE": baseline_path}
    env.pop("PROMDRIFT_MULTIPROC_DIR", None)
    out = []
    try:
        for name in servers(0):
            if only and only not in name:
                continue
            port = free_ports(3)
            argvs = servers(port, before=bool(before))[name]
            procs = {v: subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL,
                                         env={**env, "PYTHONPATH": before} if v == "before"
                                         else env)
                     for v, argv in argvs.items()}
            variants = list(procs)
            urls = {v: f"http://127.0.0.1:{port + i}" for i, v in enumerate(variants)}
            try:
                for v, proc in procs.items():
                    wait_ready(proc, urls[v] + "/healthz")
                for v in variants:  # warm-up
                    ab(urls[v] + "/predict", payload_path, 2000)
                rps: Dict[str, List[float]] = {v: [] for v in variants}
                for r in range(rounds):
                    turn = variants[r % len(variants):] + variants[:r % len(variants)]
                    per: Dict[str, List[float]] = {v: [] for v in variants}
                    for v in turn + turn[::-1]:  # ABC CBA: both halves of a round
                        per[v].append(ab(urls[v] + "/predict", payload_path, requests))
                    for v in variants:
                        rps[v].append(statistics.mean(per[v]))
                for v in variants[1:]:
                    text = urllib.request.urlopen(urls[v] + "/metrics",
                                                  timeout=10).read().decode()
                    line = next(x for x in text.splitlines()
                                if x.startswith("promdrift_inferences_total"))
                    want = 2000 + rounds * 2 * requests
                    if float(line.split()[-1]) != want:
                        raise RuntimeError(f"{name} {v}: /metrics says {line}, {want} were "
                                           "tracked")
            finally:
                for proc in procs.values():
                    proc.terminate()
                for proc in procs.values():
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
            out.append({"server": name, "requests": requests, "rounds": rounds, **rps,
                        **{f"loss_{v}": [100.0 * (1 - t / p) for t, p in zip(rps[v],
                                                                            rps["plain"])]
                           for v in variants[1:]},
                        # every request of every round over all the time they took
                        **{f"pooled_{v}": 100.0 * (1 - pooled(rps[v]) / pooled(rps["plain"]))
                           for v in variants[1:]}})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------- /metrics
def metrics_monitor(features: int = 100) -> Tuple[DriftMonitor, CollectorRegistry]:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    baseline = Baseline.fit(rng.normal(size=(20_000, features)), names=names, model="bench",
                            bins=20)
    registry = CollectorRegistry()
    monitor = DriftMonitor(baseline, registry=registry)
    monitor.observe(rng.normal(0.2, 1.0, size=(1000, features)))
    return monitor, registry


def bench_metrics(quick: bool) -> List[Tuple[str, List[float]]]:
    from promdrift.instrumentation.counting.exposition import metrics_text
    monitor, registry = metrics_monitor()
    ways: List[Tuple[str, Callable[[], Any]]] = [
        ("`metrics_text(registry)` (what `instrument(app)` and the exporter serve)",
         lambda: metrics_text(registry)),
    ]
    try:
        from promdrift.instrumentation.counting import exposition as ex
        wsgi = ex.make_wsgi_app(registry)
        asgi = ex.make_asgi_app(registry)
    except AttributeError:
        wsgi = asgi = None
    server = None
    if wsgi is not None:
        from werkzeug.test import EnvironBuilder
        env = EnvironBuilder(path="/metrics").get_environ()

        def call_wsgi() -> None:
            b"".join(wsgi(dict(env), lambda *a: None))
        ways.append(("promdrift's `make_wsgi_app(registry)` (WSGI callable)", call_wsgi))
        loop = asyncio.new_event_loop()
        scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [],
                 "query_string": b""}

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg: Dict[str, Any]) -> None:
            pass

        ways.append(("promdrift's `make_asgi_app(registry)` (ASGI callable)",
                     lambda: loop.run_until_complete(asgi(dict(scope), receive, send))))
        port = free_port()
        server, thread = ex.start_http_server(port, addr="127.0.0.1", registry=registry)
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def get() -> None:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            resp.read()
        ways.append(("promdrift's `start_http_server(port, registry=...)`, one GET over "
                     "loopback", get))
    ways.append(("prometheus_client `generate_latest(registry)` (its own start_http_server, "
                 "make_wsgi_app, make_asgi_app)", lambda: generate_latest(registry)))
    repeats = 20 if quick else 100
    times: List[List[float]] = [[] for _ in ways]
    for r in range(repeats):
        for i, (name, fn) in enumerate(ways):
            if "generate_latest" in name and r % 5:
                continue  # 40 ms a call: a fifth as many
            t0 = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - t0) * 1e3)
    if server is not None:
        server.shutdown()
        server.server_close()
    return [(name, t) for (name, _), t in zip(ways, times)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=("inprocess", "http", "metrics"), action="append")
    ap.add_argument("--only", default="", help="http part: only servers whose name has this")
    ap.add_argument("--before", default="", metavar="PYTHONPATH",
                    help="http part: also serve the tracked app with the promdrift found on "
                         "this import path (an earlier checkout), in the same rounds")
    args = ap.parse_args()
    parts = args.part or ["inprocess", "http", "metrics"]
    tmp = tempfile.mkdtemp(prefix="promdrift-bench-")
    try:
        path = fit_baseline(tmp)
        if "inprocess" in parts:
            print("| route, 25 numeric features + 1 output, in process | plain CPU µs/request "
                  "| tracked CPU µs/request | added µs: median (lowest to highest round) |")
            print("|---|---|---|---|")
            for r in bench_inprocess(path, args.quick):
                print(f"| {r['server']} | {statistics.median(r['plain']):.1f} | "
                      f"{statistics.median(r['tracked']):.1f} | {spread(r['added'])} |")
            print()
        if "http" in parts:
            cols = ("| plain req/s | tracked req/s | throughput lost % (all rounds) | lost % per "
                    "round: median (lowest to highest) |")
            if args.before:
                cols += " before: tracked req/s | before: lost % (all rounds) | before: per round |"
            print("| server on 127.0.0.1, `ab -k -c 4` | requests per run | rounds " + cols)
            print("|---" * (7 + (3 if args.before else 0)) + "|")
            for r in bench_http(path, args.quick, args.only, args.before):
                line = (f"| {r['server']} | {r['requests']:,} | {r['rounds']} | "
                        f"{pooled(r['plain']):,.0f} | {pooled(r['tracked']):,.0f} | "
                        f"{r['pooled_tracked']:.1f} | {spread(r['loss_tracked'])} |")
                if args.before:
                    line += (f" {pooled(r['before']):,.0f} | {r['pooled_before']:.1f} | "
                             f"{spread(r['loss_before'])} |")
                print(line)
            print()
        if "metrics" in parts:
            print("| /metrics, 100 numeric features x 20 bins | p50 ms | best ms |")
            print("|---|---|---|")
            for name, t in bench_metrics(args.quick):
                print(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
