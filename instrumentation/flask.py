"""Flask integration: ``/metrics`` on an app, and a decorator for predict views.

    >>> from flask import Flask, request
    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 1.0]},
    ...                        model="m", predictions="y", bins=2), registry=CollectorRegistry())
    >>> app = monitor.instrument(Flask("demo"))
    >>> @app.post("/predict")
    ... @monitor.track(features="features", prediction="prediction")
    ... def predict():
    ...     return {"prediction": 2 * request.get_json()["features"]["x"]}
    >>> app.test_client().post("/predict", json={"features": {"x": 1.5}}).status_code
    200
    >>> monitor.sample("promdrift_inferences_total")
    1.0

``features`` and ``prediction`` are either a key (of the request's JSON body, of the view's
returned dict / JSON response) or a callable: ``features(request)`` and
``prediction(result)``, where ``result`` is what the view returned. Extraction and counting
run after the view and never change its response: a failure is counted in
``promdrift_instrumentation_errors_total``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Union

from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["instrument", "track"]

Extractor = Union[str, Callable[[Any], Any]]


def instrument(monitor: Any, app: Any, metrics_path: str = "/metrics") -> Any:
    """Add ``metrics_path`` to ``app``, serving the monitor's registry; returns ``app``."""
    from flask import Response

    def promdrift_metrics() -> Any:
        return Response(monitor.metrics_text(), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule(metrics_path, endpoint=f"promdrift_metrics_{monitor.model}",
                     view_func=promdrift_metrics, methods=["GET"])
    return app


def _result_json(result: Any) -> Any:
    if isinstance(result, tuple):
        result = result[0]
    get_json = getattr(result, "get_json", None)
    if callable(get_json):
        return get_json(silent=True)
    return result


def track(monitor: Any, features: Extractor, prediction: Optional[Extractor] = None
          ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: after the view returns, observe its features and prediction."""

    def get_features(request: Any) -> Any:
        if callable(features):
            return features(request)
        return request.get_json(silent=True)[features]

    def get_prediction(result: Any) -> Any:
        if prediction is None:
            return None
        if callable(prediction):
            return prediction(result)
        return _result_json(result)[prediction]

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import request
            result = view(*args, **kwargs)
            try:
                row, pred = get_features(request), get_prediction(result)
            except Exception:
                monitor._count_error()
            else:
                monitor.observe(row, pred)
            return result
        return wrapper

    return decorator
