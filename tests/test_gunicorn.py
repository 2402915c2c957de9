"""Several gunicorn workers, recycled by ``max_requests``, report exact totals: the exporter
(``promdrift exporter --workers 4``) and an instrumented Flask app
(``gunicorn -c python:promdrift.instrumentation.gunicorn``). Plus the command's errors."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import pytest

from promdrift.exporter import cli
from promdrift.instrumentation import Baseline, DriftMonitor

from conftest import PENGUINS_CSV, read_rows
from exporter_helpers import BIN, GunicornProcess, assert_same_counts, free_port, post_each
from exporter_helpers import http as http_request
from served_scenario import (APPS, assert_exact_totals, control_socket_flag, exercise,
                             server_env)

pytest.importorskip("gunicorn")

THREADS = 8
REQUESTS = 150  # per thread
MAX_REQUESTS = 40
WORKERS = 4


@pytest.fixture(scope="module")
def rows():
    return read_rows(PENGUINS_CSV)


def split(row):
    return {k: v for k, v in row.items() if k != "species"}, row["species"]


def test_exporter_four_workers_recycled_lose_nothing(rows, baseline_path, tmp_path):
    port = free_port()
    mp = tmp_path / "mp"
    mp.mkdir()
    log = str(tmp_path / "exporter.log")
    argv = [os.path.join(BIN, "promdrift"), "exporter", "--baseline", baseline_path,
            "--listen", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--threads", "2",
            "--max-requests", str(MAX_REQUESTS), "--multiproc-dir", str(mp),
            "--labels-dir", str(tmp_path / "labels")]
    reference = DriftMonitor(baseline_path, registry=None).track_labels(":memory:")
    sent, requests = [], []
    lock = threading.Lock()

    def make_request(t, i):
        k = 1 + (t + i) % 3  # 1 to 3 rows per request
        start = (t * REQUESTS + i) * 3 % len(rows)
        batch = [rows[(start + j) % len(rows)] for j in range(k)]
        body = [{"features": f, "prediction": p, "id": f"{t}-{i}-{j}"}
                for j, (f, p) in enumerate(map(split, batch))]
        with lock:
            sent.extend(batch)
            requests.append(body)
        return "/v1/models/penguins/observations", json.dumps(body)

    def make_label(t, i):  # labels for the first row of each request, to any worker
        return "/v1/models/penguins/labels", json.dumps(
            {"inference_id": f"{t}-{i}-0", "label": "Adelie"})

    with GunicornProcess(argv, port, log_path=log) as server:
        failures = post_each(port, make_request, THREADS, REQUESTS)
        assert failures == []
        assert post_each(port, make_label, THREADS, REQUESTS // 3) == []
        time.sleep(3.5)  # predictions still queued in a worker reach the shared store
        # every worker, whichever answers, reports the same exact totals
        texts = [http_request("GET", server.url + "/metrics")[1].decode() for _ in range(WORKERS)]
        server_log = server.log()
    for body in requests:  # as the exporter counts a request of rows with ids
        reference.observe_rows([r["features"] for r in body], [r["prediction"] for r in body],
                               [r["id"] for r in body])
    for t in range(THREADS):
        for i in range(REQUESTS // 3):
            reference.record_label(f"{t}-{i}-0", "Adelie")
    for text in texts:
        assert_same_counts(text, reference)
    assert reference.sample("promdrift_inferences_total") == len(sent) > THREADS * REQUESTS
    restarts = server_log.count("Autorestarting worker")
    assert restarts >= THREADS * REQUESTS // (MAX_REQUESTS * 2), server_log
    files = os.listdir(mp)
    assert any(f.endswith("-archive.f64") for f in files)  # dead workers were folded
    assert len([f for f in files if f.endswith(".f64")]) <= WORKERS + 2


def served_under_gunicorn(app_spec, rows, baseline_path, tmp_path, *options):
    """The served scenario (tests/served_scenario.py) under gunicorn's promdrift
    configuration, 4 workers recycled every 40 requests: exact totals of every family."""
    port = free_port()
    mp = tmp_path / "mp"
    mp.mkdir()
    log = str(tmp_path / "app.log")
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:promdrift.instrumentation.gunicorn",
            "--workers", str(WORKERS), "--max-requests", str(MAX_REQUESTS),
            "--bind", f"127.0.0.1:{port}", "--chdir", APPS, *options,
            *control_socket_flag(), app_spec]
    env = server_env(baseline_path, str(tmp_path / "capture"), str(mp))
    with GunicornProcess(argv, port, env=env, log_path=log) as server:
        reference = exercise(port, rows, baseline_path, str(tmp_path / "reference"))
        assert_exact_totals(port, reference)
        server_log = server.log()
    assert "Autorestarting worker" in server_log or "Maximum request limit" in server_log, \
        server_log
    assert any(f.endswith("-archive.f64") for f in os.listdir(mp))
    return reference


def test_instrumented_flask_app_under_gunicorn(rows, baseline_path, tmp_path):
    served_under_gunicorn("served:create_flask()", rows, baseline_path, tmp_path)


def test_fastapi_app_under_gunicorn_uvicorn_workers(rows, baseline_path, tmp_path):
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    served_under_gunicorn("served:create_asgi()", rows, baseline_path, tmp_path,
                          "-k", "uvicorn.workers.UvicornWorker")


# ---------------------------------------------------------------- the command's own errors

def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_cli_errors(baseline_path, tmp_path, capsys):
    base = ["exporter", "--baseline", baseline_path]
    code, err = run_cli(base + ["--listen", "nohost"], capsys)
    assert code == 2 and "HOST:PORT" in err
    empty = tmp_path / "token"
    empty.write_text("\n")
    code, err = run_cli(base + ["--token-file", str(empty)], capsys)
    assert code == 2 and "empty" in err
    code, err = run_cli(base + ["--token-file", str(tmp_path / "missing")], capsys)
    assert code == 2 and "missing" in err
    code, err = run_cli(base + ["--baseline", baseline_path], capsys)
    assert code == 2 and "same model name" in err
    code, err = run_cli(base + ["--workers", "0"], capsys)
    assert code == 2 and "--workers" in err
    code, err = run_cli(["exporter", "--baseline", str(tmp_path / "nope.json")], capsys)
    assert code == 2
    code, err = run_cli(base + ["--multiproc-dir", str(tmp_path / "absent")], capsys)
    assert code == 2 and "does not exist" in err


def test_cli_without_gunicorn(baseline_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gunicorn", None)  # import gunicorn -> ImportError
    code, err = run_cli(["exporter", "--baseline", baseline_path, "--workers", "2"], capsys)
    assert code == 2 and "need gunicorn" in err
    served = {}
    import werkzeug.serving
    monkeypatch.setattr(werkzeug.serving, "run_simple",
                        lambda host, port, app, threaded: served.update(
                            host=host, port=port, app=app, threaded=threaded))
    code, err = run_cli(["exporter", "--baseline", baseline_path, "--workers", "1",
                         "--listen", ":9999"], capsys)
    assert code == 0 and "development server" in err
    assert served["host"] == "127.0.0.1" and served["port"] == 9999 and served["threaded"]
    client = served["app"].test_client()
    assert client.post("/v1/models/penguins/observations",
                       json={"features": {"year": 2008}}).status_code == 200
    digest = Baseline.load(baseline_path).digest
    assert f'promdrift_inferences_total{{model="penguins",baseline="{digest}"}} 1' in client.get(
        "/metrics").get_data(as_text=True)


def test_cli_token_file_is_enforced(baseline_path, tmp_path, capsys, monkeypatch):
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    monkeypatch.setitem(sys.modules, "gunicorn", None)
    served = {}
    import werkzeug.serving
    monkeypatch.setattr(werkzeug.serving, "run_simple",
                        lambda host, port, app, threaded: served.update(app=app))
    code, _ = run_cli(["exporter", "--baseline", baseline_path, "--workers", "1",
                       "--token-file", str(token), "--max-rows", "2"], capsys)
    assert code == 0
    client = served["app"].test_client()
    url = "/v1/models/penguins/observations"
    assert client.post(url, json={"features": {}}).status_code == 401
    auth = {"Authorization": "Bearer tok-123"}
    assert client.post(url, json={"features": {}}, headers=auth).status_code == 200
    assert client.post(url, json=[{"features": {}}] * 3, headers=auth).status_code == 413

