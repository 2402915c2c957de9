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

``instrument`` also serves a landing page at ``/`` (:func:`~promdrift.instrumentation.landing_page`:
every model of the monitor's registry, live against baseline), unless the app has its own
``/``; ``landing_path=None`` turns it off::

    >>> page = app.test_client().get("/")
    >>> page.status_code, page.mimetype, page.get_data(as_text=True).count('<svg class="hist"')
    (200, 'text/html', 2)

``features`` and ``prediction`` are either a key (of the request's JSON body, of the view's
returned dict / JSON response) or a callable: ``features(request)`` and
``prediction(result)``, where ``result`` is what the view returned. Extraction and counting
run after the view and never change its response: a failure is counted in
``promdrift_instrumentation_errors_total``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional, Union


__all__ = ["instrument", "add_landing_page", "landing_monitors", "track", "CONTENT_TYPE"]

#: What ``/metrics`` serves: the Prometheus text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Extractor = Union[str, Callable[[Any], Any]]


def instrument(monitor: Any, app: Any, metrics_path: str = "/metrics",
               landing_path: Optional[str] = "/") -> Any:
    """Add ``metrics_path`` to ``app``, serving the monitor's registry, and the landing page
    at ``landing_path`` (see :func:`add_landing_page`); returns ``app``."""
    from flask import Response

    def promdrift_metrics() -> Any:
        return Response(monitor.metrics_text(), content_type=CONTENT_TYPE)

    app.add_url_rule(metrics_path, endpoint=f"promdrift_metrics_{monitor.model}",
                     view_func=promdrift_metrics, methods=["GET"])
    if landing_path is not None:
        add_landing_page(monitor, app, landing_path, metrics_path=metrics_path)
    return app


def _landing_endpoint(path: str) -> str:
    return f"promdrift_landing_{path}"


def _other_get_rule(app: Any, path: str, endpoint: str) -> Any:
    """A GET rule for ``path`` that is not ours (the app's own page), or None."""
    for rule in app.url_map.iter_rules():
        if rule.rule == path and rule.endpoint != endpoint and "GET" in (rule.methods or ()):
            return rule
    return None


def landing_monitors(monitors: Any) -> List[Any]:
    """The monitors a landing page shows: every model of each monitor's registry (what its
    ``/metrics`` serves), or the monitor alone when it has no registry; no duplicates."""
    from .exposition import collector_for
    out: List[Any] = []
    seen = set()
    for m in monitors:
        coll = collector_for(m.registry, create=False) if m.registry is not None else None
        for shown in (coll.monitors if coll is not None else [m]):
            if id(shown) not in seen:
                seen.add(id(shown))
                out.append(shown)
    return out


def add_landing_page(monitor: Any, app: Any, path: str = "/",
                     metrics_path: Optional[str] = "/metrics") -> bool:
    """Serve the landing page at ``path``; returns whether ``monitor`` is shown there.

    The app's own page always wins: nothing is added when ``app`` already has a rule for
    ``path``, and a rule the app adds for ``path`` later is served in place of the landing
    page. Several monitors instrumenting one app share one page, which shows every model of
    their registries.
    """
    from flask import Response, request

    from .landing import CONTENT_TYPE as HTML, landing_page

    endpoint = _landing_endpoint(path)
    state = app.extensions.setdefault("promdrift", {}).setdefault("landing", {})
    if endpoint in app.view_functions:  # a monitor already added the page: share it
        if not any(m is monitor for m in state[path]):
            state[path].append(monitor)
        return True
    if any(rule.rule == path for rule in app.url_map.iter_rules()):
        return False
    state[path] = [monitor]

    def promdrift_landing(**kwargs: Any) -> Any:
        other = _other_get_rule(app, path, endpoint)
        if other is not None:  # added by the app after instrument(): the app's page wins
            return app.view_functions[other.endpoint](**kwargs)
        link = request.script_root + metrics_path if metrics_path else None
        page = landing_page(landing_monitors(state[path]), metrics_path=link)
        return Response(page, content_type=HTML, headers={"Cache-Control": "no-store"})

    app.add_url_rule(path, endpoint=endpoint, view_func=promdrift_landing, methods=["GET"])
    return True


def _result_json(result: Any) -> Any:
    if isinstance(result, tuple):
        result = result[0]
    get_json = getattr(result, "get_json", None)
    if callable(get_json):
        return get_json(silent=True)
    return result


def track(monitor: Any, features: Extractor, prediction: Optional[Extractor] = None,
          inference_id: Optional[Extractor] = None
          ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: after the view returns, observe its features and prediction.

    ``inference_id`` (a key of the request's JSON body, or ``inference_id(request)``) passes
    the request's id to ``observe`` for data capture and the label store; an id that cannot
    be extracted is left out (the row is still counted)."""

    def get_id(request: Any) -> Any:
        if inference_id is None:
            return None
        try:
            if callable(inference_id):
                return inference_id(request)
            body = request.get_json(silent=True)
            return body.get(inference_id) if isinstance(body, dict) else None
        except Exception:
            return None

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
                rid = get_id(request)
                if rid is None:
                    monitor.observe(row, pred)
                else:
                    monitor.observe(row, pred, inference_id=rid)
            return result
        return wrapper

    return decorator
