"""One scenario for the multi-worker server tests (gunicorn, uvicorn, gunicorn's
UvicornWorker), served by ``tests/apps/served.py``: predictions with ids, labels for a third
of them, then every scrape compared, sample for sample, with one in-process monitor that saw
the same requests (drift, quality, facets, data capture)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

from prometheus_client.parser import text_string_to_metric_families

from promdrift.instrumentation import DriftMonitor
from promdrift.instrumentation.capture import DataCapture
from promdrift.instrumentation.counting.exposition import PER_PROCESS_FAMILIES

from exporter_helpers import assert_same_counts, free_port, post_each
from exporter_helpers import http as http_request

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")
THREADS = 6
PER_THREAD = 50


def split(row: Dict[str, Any]):
    return {k: v for k, v in row.items() if k != "species"}, row["species"]


def server_env(baseline_path: str, capture_dir: str, multiproc_dir: str = "") -> Dict[str, str]:
    env = {**os.environ, "PROMDRIFT_TEST_BASELINE": baseline_path,
           "PROMDRIFT_TEST_CAPTURE": capture_dir, "PYTHONPATH": APPS}
    env.pop("PROMDRIFT_MULTIPROC_DIR", None)
    env.pop("PROMDRIFT_RUN", None)
    if multiproc_dir:
        env["PROMDRIFT_MULTIPROC_DIR"] = multiproc_dir
    return env


def uvicorn_argv(port: int, *options: str, module: str = "uvicorn") -> List[str]:
    """uvicorn's command line for the FastAPI app (``module``: another module taking
    uvicorn's options, ``promdrift.instrumentation.uvicorn``)."""
    return [sys.executable, "-m", module, "--factory", "served:create_asgi",
            "--app-dir", APPS, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            *options]


def control_socket_flag() -> List[str]:
    """gunicorn >= 24 opens a control socket in the home directory unless told not to."""
    import gunicorn.config
    known = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in known else []


def exercise(port: int, rows: List[Dict[str, Any]], baseline_path: str, reference_dir: str,
             threads: int = THREADS, per_thread: int = PER_THREAD) -> DriftMonitor:
    """Send the scenario's requests to 127.0.0.1:``port``; returns the reference monitor
    that saw the same."""
    reference = DriftMonitor(baseline_path, registry=None,
                             capture=DataCapture(reference_dir, registry=None))
    reference.track_labels(":memory:").track_facets("island")
    sent = {}

    def predict(t: int, i: int):
        features, truth = split(rows[(t * per_thread + i) % len(rows)])
        sent[f"{t}-{i}"] = (features, truth)
        return "/predict", json.dumps({"features": features, "truth": truth, "id": f"{t}-{i}"})

    failures = post_each(port, predict, threads, per_thread, retries=3)
    assert failures == [], failures
    ids = sorted(k for k in sent if sum(map(int, k.split("-"))) % 3 == 0)
    labels = {k: ("Adelie" if int(k.split("-")[1]) % 2 else sent[k][1]) for k in ids}

    per = len(ids) // threads
    ids = ids[:per * threads]

    def label(t: int, i: int):
        k = ids[t * per + i]
        return "/label", json.dumps({"id": k, "label": labels[k]})

    failures = post_each(port, label, threads, per, retries=3)
    assert failures == [], failures
    for k, (features, truth) in sent.items():
        reference.observe(features, truth, inference_id=k)
    for k in ids:
        reference.record_label(k, labels[k])
    reference.capture.flush()
    return reference


def families(text: str) -> List[str]:
    """The family names of an exposition text (a counter's without ``_total``)."""
    return [f.name for f in text_string_to_metric_families(text)]


def assert_exact_totals(port: int, reference: DriftMonitor, scrapes: int = 4) -> str:
    """Every scrape (whichever worker answers) reports the reference's samples, and none of
    the one-process families of prometheus_client's default collectors (the app's registry
    has them: docs/multiprocess.md). Waits for predictions still queued in a worker to reach
    the shared label store first."""
    time.sleep(3.5)  # the label queues' background write: within 2 x flush_seconds
    text = ""
    for _ in range(scrapes):
        status, body = http_request("GET", f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        text = body.decode()
        assert not PER_PROCESS_FAMILIES & set(families(text)), families(text)
        assert_same_counts(text, reference)
    return text


def run_refused(argv: List[str], env: Dict[str, str], timeout: float = 90
                ) -> Tuple[int, List[str]]:
    """Start a server that should refuse to start and wait, at most ``timeout`` seconds, for
    it to stop by itself; returns its exit status and its output lines. A server still
    running then (restarting its workers) fails the test, after its process group (started
    here, a session of its own) is killed through the handle."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        raise AssertionError(f"still running after {timeout} s:\n{out.decode()[-4000:]}")
    return proc.returncode, out.decode(errors="replace").splitlines()


__all__ = ["exercise", "assert_exact_totals", "server_env", "uvicorn_argv", "split",
           "free_port", "APPS", "families", "run_refused", "control_socket_flag"]
