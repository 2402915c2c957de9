"""The demo (demo/): its model, model server and traffic, and `make demo` end to end."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "demo"))

import app as demo_app  # noqa: E402
import model as demo_model  # noqa: E402
import traffic as demo_traffic  # noqa: E402

from promdrift.exporter.stack import ALERTMANAGER, PROMETHEUS  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return demo_model.train(str(tmp_path_factory.mktemp("demo")))


def test_model_generalises_to_held_out_rows():
    rows = demo_model.load_rows()
    order = np.random.default_rng(0).permutation(len(rows))
    train = [rows[i] for i in order[:240]]
    test = [rows[i] for i in order[240:]]
    model = demo_model.SpeciesModel.fit(train)
    # Species are nearly separable by the four measurements; a majority-class guess is 44 %.
    assert model.accuracy(test) >= 0.95


def test_model_answers_for_bad_inputs(trained):
    model = demo_model.SpeciesModel.load(trained[0])
    for row in ({}, {"bill_length_mm": "n/a", "island": "Atlantis"},
                {"body_mass_g": float("nan"), "flipper_length_mm": None}):
        out = model.predict(row)
        assert out["species"] in model.classes and 0 < out["confidence"] <= 1


def test_baseline_covers_features_and_outputs(trained):
    from promdrift.instrumentation import Baseline
    baseline = Baseline.load(trained[1])
    assert baseline.model == demo_model.MODEL_NAME
    assert baseline.feature_names == list(demo_model.FEATURES)
    assert baseline.prediction_names == ["species", "confidence"]
    assert baseline.rows == len(demo_model.load_rows())


def test_server_predicts_and_counts(trained):
    app = demo_app.create_app(trained[0], trained[1], registry=CollectorRegistry())
    monitor = app.config["PROMDRIFT_MONITOR"]
    client = app.test_client()
    rows = demo_model.load_rows()[:20]
    for row in rows:
        r = client.post("/predict", json={"features": {k: v for k, v in row.items()
                                                       if k != "species"}})
        assert r.status_code == 200 and r.get_json()["species"] in ("Adelie", "Chinstrap",
                                                                    "Gentoo")
    assert client.post("/predict", json=[1, 2]).status_code == 400
    assert monitor.sample("promdrift_inferences_total") == 20.0
    predicted = sum(monitor.sample("promdrift_prediction_class_total", output="species",
                                   **{"class": c}) or 0.0 for c in ("Adelie", "Chinstrap",
                                                                    "Gentoo"))
    assert predicted == 20.0
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and b"promdrift_feature_value_bucket" in metrics.data


def test_drifted_rows_have_the_documented_mix():
    rng = np.random.default_rng(3)
    base = {"bill_length_mm": 40.0, "body_mass_g": 4000.0, "flipper_length_mm": 200.0,
            "island": "Dream"}
    n = 20000
    out = [demo_traffic.drifted(base, rng) for _ in range(n)]
    invalid = sum(1 for r in out if r.get("flipper_length_mm", "x") in ("x", None, "n/a"))
    atlantis = sum(1 for r in out if r["island"] == "Atlantis")
    # Binomial(20000, p): 5 standard deviations are under 1.5 percentage points.
    assert abs(invalid / n - 0.15) < 0.015
    assert abs(atlantis / n - 0.25) < 0.016
    assert all(r["body_mass_g"] == 5000.0 and r["bill_length_mm"] == 46.0 for r in out)


@contextlib.contextmanager
def demo_run(*args):
    """demo/run.py with ``args`` as a child process, output piped as text; killed through
    its handle if it still runs when the block ends."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "demo", "run.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@pytest.mark.integration
@pytest.mark.skipif(PROMETHEUS is None or ALERTMANAGER is None,
                    reason="needs the prometheus and prometheus-alertmanager binaries")
def test_make_demo_end_to_end(tmp_path):
    """`demo/run.py` with short phases: no alert while traffic is normal, drift alerts after."""
    with demo_run("--workdir", str(tmp_path), "--normal", "20", "--drift", "120",
                  "--linger", "0", "--every", "10") as proc:
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "alerts during the normal phase: 0" in out, out
    assert "result: OK" in out
    assert "ALERT Promdrift" in out
    assert "offline report over" in out and (tmp_path / "violations.json").exists()


def _processes_mentioning(text):
    """PIDs of live processes whose command line contains ``text`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{entry}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmd and state != "Z":
                out.append(int(entry))
    return out


@pytest.mark.integration
@pytest.mark.skipif(PROMETHEUS is None or ALERTMANAGER is None or not os.path.isdir("/proc"),
                    reason="needs the prometheus and prometheus-alertmanager binaries and /proc")
def test_ctrl_c_stops_every_process_the_demo_started(tmp_path):
    import signal
    import time
    workdir = str(tmp_path / "demo-interrupted")
    with demo_run("--workdir", workdir) as proc:
        lines = []
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # until the traffic runs: every process is up
            lines.append(line)
            if "normal traffic" in line or time.monotonic() > deadline:
                break
        assert any("normal traffic" in x for x in lines), "".join(lines)
        # the model server, Prometheus and Alertmanager all run with paths under workdir
        assert len(_processes_mentioning(workdir)) >= 3
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "every process it started has been stopped" in out
    assert _processes_mentioning(workdir) == []
