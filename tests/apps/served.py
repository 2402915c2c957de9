"""Instrumented model servers for the server tests: the same model as a Flask app
(``served:create_flask()``, for gunicorn) and a FastAPI app (``served:create_asgi``, for
uvicorn and gunicorn's UvicornWorker), each tracking drift, labels, the ``island`` facet and
data capture.

``PROMDRIFT_TEST_BASELINE`` names the baseline file (penguins, output ``species``),
``PROMDRIFT_TEST_CAPTURE`` the capture directory; ``PROMDRIFT_MULTIPROC_DIR`` makes every
count exact across workers (and the label store one file shared by them). The monitor
registers in prometheus_client's default registry, as a user's does, with its process, GC
and platform collectors.
"""

import os

from promdrift.instrumentation import DriftMonitor
from promdrift.instrumentation.capture import DataCapture


def monitor():
    m = DriftMonitor(os.environ["PROMDRIFT_TEST_BASELINE"],
                     capture=DataCapture(os.environ["PROMDRIFT_TEST_CAPTURE"],
                                         flush_interval=0.1))
    return m.track_labels().track_facets("island")


def create_flask():
    from flask import Flask, request

    m = monitor()
    app = m.instrument(Flask("served"))

    @app.post("/predict")
    @m.track(features="features", prediction="prediction", inference_id="id")
    def predict():
        body = request.get_json()
        return {"prediction": body["truth"], "worker": os.getpid()}

    @app.post("/label")
    def label():
        body = request.get_json()
        return {"status": m.record_label(body["id"], body["label"])}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def create_asgi():
    from typing import Any, Dict, Optional

    from fastapi import FastAPI
    from pydantic import BaseModel

    class Observation(BaseModel):
        features: Dict[str, Optional[Any]]
        truth: str
        id: Optional[str] = None

    class Label(BaseModel):
        id: str
        label: str

    m = monitor()
    app = m.instrument(FastAPI())

    @app.post("/predict")
    @m.track(features="features", prediction="prediction", inference_id="id")
    async def predict(body: Observation) -> Dict[str, Any]:
        return {"prediction": body.truth, "worker": os.getpid()}

    @app.post("/label")
    def label(body: Label) -> Dict[str, str]:  # a thread: the label store is SQLite
        return {"status": m.record_label(body.id, body.label)}

    @app.get("/healthz")
    async def healthz() -> Dict[str, str]:
        return {"status": "ok"}

    return app

