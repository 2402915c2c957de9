"""The model servers of ``benchmarks/request_path.py``: the same app with its predict route
plain or tracked.

The apps read their baseline from ``PROMDRIFT_BENCH_BASELINE`` (25 numeric features ``f0``
... ``f24`` and one numeric output ``prediction``) and serve ``POST /predict``
(``{"features": {...}}`` -> ``{"prediction": ...}``), under ``@monitor.track(
features="features", prediction="prediction")`` when ``tracked``, plus ``GET /metrics``
(``monitor.instrument(app)``, in both variants) and ``GET /healthz``.

    gunicorn -k gthread -w 1 --threads 4 --chdir benchmarks 'request_apps:create_flask(True)'
    uvicorn --app-dir benchmarks --factory request_apps:create_tracked_asgi
"""


import os
from typing import Any, Dict

from prometheus_client import CollectorRegistry

from promdrift.instrumentation import DriftMonitor


def predict(features: Dict[str, Any]) -> float:
    """The stand-in model: a few microseconds of arithmetic on the features."""
    return 0.01 * sum(features.values())


def monitor() -> DriftMonitor:
    return DriftMonitor(os.environ["PROMDRIFT_BENCH_BASELINE"], registry=CollectorRegistry())


def create_flask(tracked: bool, m: Any = None) -> Any:
    from flask import Flask, request

    m = m or monitor()
    app = m.instrument(Flask("bench"))

    def view() -> Any:
        return {"prediction": predict(request.get_json()["features"])}

    if tracked:
        view = m.track(features="features", prediction="prediction")(view)
    app.add_url_rule("/predict", "predict", view, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    return app


def create_asgi(tracked: bool, m: Any = None) -> Any:
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Payload(BaseModel):
        features: Dict[str, float]

    m = m or monitor()
    app = m.instrument(FastAPI())

    async def predict_route(body: Payload) -> Dict[str, float]:
        return {"prediction": predict(body.features)}

    if tracked:
        predict_route = m.track(features="features", prediction="prediction")(predict_route)
    app.post("/predict")(predict_route)

    @app.get("/healthz")
    async def healthz() -> Dict[str, str]:
        return {"status": "ok"}

    return app


def create_plain_asgi() -> Any:
    return create_asgi(False)


def create_tracked_asgi() -> Any:
    return create_asgi(True)
