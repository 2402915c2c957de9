"""The README's quickstart runs as written: the training side and the Flask server (one
snippet), then the FastAPI server, each in a fresh process (they use prometheus_client's
default registry), with the two names the README says the reader brings: ``train_df`` (the
training features as a pandas DataFrame) and ``model`` (a ``predict(DataFrame)`` returning a
numpy array, as scikit-learn's estimators do; here the demo's penguin model behind it).
So do the snippets of "Batches and delayed labels": the batch endpoint added to the
quickstart's Flask app, and the FastAPI app with ``inference_id`` and a label endpoint."""

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


def section(title):
    """The python blocks of the README's section ``title``."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    body = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def quickstart():
    """The python blocks of the README's Quickstart section."""
    return section("Quickstart")


def run(tmp_path, snippet, client, body=ROW):
    """Run ``snippet`` then ``client`` (its ``%r``: ``body``) in a fresh process in
    ``tmp_path``; returns the client's status, answer and /metrics text."""
    driver = DRIVER.format(demo=os.path.join(ROOT, "demo"), csv=PENGUINS_CSV,
                           snippet=snippet, client=client % (body,))
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


#: Three rows for the batch endpoint, one of them with a value the baseline counts invalid.
BATCH = [ROW, {**ROW, "body_mass_g": 5200, "island": "Biscoe", "sex": "male"},
         {**ROW, "flipper_length_mm": None, "island": "Atlantis"}]

BATCH_CLIENT = """
client = app.test_client()
response = client.post("/predict_batch", json={"instances": %r})
status, answer = response.status_code, response.get_json()
metrics = client.get("/metrics").get_data(as_text=True)
"""

LABELS_CLIENT = """
from fastapi.testclient import TestClient
with TestClient(app) as client:
    response = client.post("/predict", json={"id": "r-1", "features": %r})
    status, answer = response.status_code, response.json()
    answer["labels"] = [client.post("/label", json={"id": i, "species": answer["species"]}
                                    ).json()["status"] for i in ("r-1", "r-1", "r-2")]
    metrics = client.get("/metrics").text
"""


def test_the_batch_endpoint_runs_as_written(tmp_path):
    flask_block = quickstart()[0]
    batch_block = section("Batches and delayed labels")[0]
    result = run(tmp_path, flask_block + "\n" + batch_block, BATCH_CLIENT, BATCH)
    assert result["status"] == 200, result["answer"]
    predicted = result["answer"]["species"]
    assert len(predicted) == len(BATCH)
    baseline = Baseline.load(str(tmp_path / "baseline.json"))
    reference = DriftMonitor(baseline, registry=None)
    reference.observe(BATCH, [{"species": p} for p in predicted])  # one batch
    got = samples(result["metrics"])
    for key, value in samples(reference.render()).items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    b = ("baseline", baseline.digest)
    assert got["promdrift_inferences_total", (b, ("model", "penguins"))] == 3
    assert got["promdrift_feature_invalid_total", (b, ("feature", "flipper_length_mm"),
                                                   ("model", "penguins"),
                                                   ("reason", "null"))] == 1


def test_inference_id_and_the_label_endpoint_run_as_written(tmp_path):
    run(tmp_path, quickstart()[0], FLASK_CLIENT)  # fits the quickstart's baseline.json
    labels_block = section("Batches and delayed labels")[1]
    result = run(tmp_path, labels_block, LABELS_CLIENT)
    assert result["status"] == 200, result["answer"]
    species = result["answer"]["species"]
    # joined; the same id again is a duplicate; an id never predicted waits (held)
    assert result["answer"]["labels"] == ["matched", "duplicate", "held"]
    baseline = Baseline.load(str(tmp_path / "baseline.json"))
    reference = DriftMonitor(baseline, registry=None).track_labels(":memory:")
    reference.observe(ROW, {"species": species}, inference_id="r-1")
    for i in ("r-1", "r-1", "r-2"):
        reference.record_label(i, species)
    got = samples(result["metrics"])
    for key, value in samples(reference.render()).items():
        if key[0].startswith("promdrift_quality_label_delay_seconds") \
                and not key[0].endswith("_count"):
            continue  # seconds from the prediction to its label: when things happened
        assert got[key] == pytest.approx(value, rel=1e-12), key
    model = (("baseline", baseline.digest), ("model", "penguins"))
    assert got["promdrift_quality_labels_total", model] == 1
    assert got["promdrift_quality_labels_duplicate_total", model] == 1
    assert got["promdrift_quality_confusion_total", (
        ("actual", species), ("baseline", baseline.digest), ("model", "penguins"),
        ("output", "species"), ("predicted", species))] == 1
