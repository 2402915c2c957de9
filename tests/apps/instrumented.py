"""An instrumented Flask model server for the gunicorn tests (module ``instrumented:app``).

The baseline file comes from ``PROMDRIFT_TEST_BASELINE``; ``PROMDRIFT_MULTIPROC_DIR`` makes
the monitor's counts exact across workers.
"""

import os

from flask import Flask, request
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import DriftMonitor

monitor = DriftMonitor(os.environ["PROMDRIFT_TEST_BASELINE"], registry=CollectorRegistry())
app = monitor.instrument(Flask("instrumented"))


@app.post("/predict")
@monitor.track(features="features", prediction="prediction")
def predict():
    body = request.get_json()
    return {"prediction": body["truth"], "worker": os.getpid()}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
