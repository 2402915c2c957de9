"""docs/servers.md's snippets run as written: the predictor class with observe and the
drop-in start_http_server (in a fresh process: it uses prometheus_client's default
registry), and the Node.js fetch example against a real exporter on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

from promdrift.exporter.service.app import create_app
from promdrift.instrumentation import DriftMonitor

from exporter_helpers import free_port, samples

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "servers.md")


def blocks(language):
    with open(DOC, encoding="utf-8") as f:
        return re.findall(rf"```{language}\n(.*?)```", f.read(), flags=re.S)


def test_the_predictor_class_and_start_http_server(penguins_species, penguins_rows, tmp_path):
    cls, serve = blocks("python")
    penguins_species.save(str(tmp_path / "baseline.json"))
    port = free_port()
    rows = [{k: v for k, v in r.items() if k != "species"} for r in penguins_rows[:40]]
    driver = f"""
import json, urllib.request
{cls}
service = PenguinClassifier()
answers = service.predict({rows!r}[:30]) + service.predict({rows!r}[30:])
{serve.replace("9108", str(port))}
text = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
server.shutdown()
print(json.dumps({{"answers": answers, "metrics": text}}))
"""
    (tmp_path / "driver.py").write_text(driver)
    out = subprocess.run([sys.executable, "driver.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    reference = DriftMonitor(penguins_species, registry=None)
    answers = result["answers"]
    reference.observe(rows[:30], answers[:30])  # two predict calls: two requests
    reference.observe(rows[30:], answers[30:])
    got = samples(result["metrics"])
    for key, value in samples(reference.render()).items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    key = (("baseline", penguins_species.digest), ("model", "penguins"))
    assert got["promdrift_inferences_total", key] == 40


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_fetch_example_against_the_exporter(penguins_species, tmp_path):
    from werkzeug.serving import make_server
    (script,) = blocks("js")
    (tmp_path / "observe.mjs").write_text(script)
    monitor = DriftMonitor(penguins_species, registry=None)
    server = make_server("127.0.0.1", 0, create_app([monitor], token="t0k3n"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        env = {**os.environ, "PROMDRIFT_EXPORTER": url, "PROMDRIFT_TOKEN": "t0k3n"}
        out = subprocess.run(["node", "observe.mjs"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "accepted 1"
        env["PROMDRIFT_TOKEN"] = "wrong"  # an error is thrown with the exporter's answer
        out = subprocess.run(["node", "observe.mjs"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "401" in out.stderr
    finally:
        server.shutdown()
        thread.join(10)
    assert monitor.sample("promdrift_inferences_total") == 1
    assert monitor.sample("promdrift_feature_category_total", feature="island",
                          category="Dream") == 1
    assert monitor.sample("promdrift_prediction_class_total", output="species",
                          **{"class": "Adelie"}) == 1
    assert monitor.sample("promdrift_feature_invalid_total", feature="body_mass_g",
                          reason="missing") == 1
