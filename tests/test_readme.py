"""The README's quickstart runs as written: the training side and the Flask server (one
snippet), then the FastAPI server, each in a fresh process (they use prometheus_client's
default registry), with the two names the README says the reader brings: ``train_df`` (the
training features as a pandas DataFrame) and ``model`` (a ``predict(DataFrame)`` returning a
numpy array, as scikit-learn's estimators do; here the demo's penguin model behind it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from promdrift.instrumentation import Baseline, DriftMonitor

from conftest import PENGUINS_CSV
from exporter_helpers import samples

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
README = os.path.join(ROOT, "README.md")

#: One request body of the quickstart's /predict, as a client sends it.
ROW = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181,
       "body_mass_g": 3750, "island": "Torgersen", "sex": None}

#: What the reader brings, then the README's snippet, then a request to the app.
DRIVER = """
import json, sys
import numpy as np
import pandas as pd
sys.path.insert(0, {demo!r})
from model import FEATURES, SpeciesModel, load_rows

_species = SpeciesModel.fit(load_rows({csv!r}), iterations=300)

class Model:
    def predict(self, frame):
        rows = frame.to_dict("records")
        return np.array([p["species"] for p in _species.predict_many(rows)])

model = Model()
train_df = pd.read_csv({csv!r})[list(FEATURES)]

{snippet}

{client}
print(json.dumps({{"status": status, "answer": answer, "metrics": metrics}}))
"""

FLASK_CLIENT = """
client = app.test_client()
response = client.post("/predict", json={"features": %r})
status, answer = response.status_code, response.get_json()
metrics = client.get("/metrics").get_data(as_text=True)
"""

ASGI_CLIENT = """
from fastapi.testclient import TestClient
with TestClient(app) as client:
    response = client.post("/predict", json={"features": %r})
    status, answer = response.status_code, response.json()
    metrics = client.get("/metrics").text
"""


def quickstart():
    """The python blocks of the README's Quickstart section."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run(tmp_path, snippet, client):
    driver = DRIVER.format(demo=os.path.join(ROOT, "demo"), csv=PENGUINS_CSV,
                           snippet=snippet, client=client % (ROW,))
    (tmp_path / "driver.py").write_text(driver)
    out = subprocess.run([sys.executable, "driver.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def check(result, baseline):
    assert result["status"] == 200, result["answer"]
    species = result["answer"]["species"]
    assert species in baseline.prediction("species").categories
    reference = DriftMonitor(baseline, registry=None)
    reference.observe(ROW, {"species": species})
    got = samples(result["metrics"])
    for key, value in samples(reference.render()).items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    key = (("baseline", baseline.digest), ("model", "penguins"))
    assert got["promdrift_inferences_total", key] == 1


def test_the_quickstart_runs_as_written(tmp_path):
    flask_block, asgi_block = quickstart()
    result = run(tmp_path, flask_block, FLASK_CLIENT)
    baseline = Baseline.load(str(tmp_path / "baseline.json"))
    # fitted on the model's predictions for every training row, the features without label
    assert sorted(c.name for c in baseline.features) == sorted(ROW)
    assert baseline.prediction("species").count == 344
    assert set(baseline.prediction("species").categories) == {"Adelie", "Chinstrap", "Gentoo"}
    check(result, baseline)
    check(run(tmp_path, asgi_block, ASGI_CLIENT), baseline)
