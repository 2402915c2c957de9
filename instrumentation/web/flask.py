"""Flask integration: ``/metrics`` on an app, and a decorator for predict views.

    >>> from flask import Flask, request
    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.0, 1.5]},
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
``promdrift_instrumentation_errors_total``. The decorator is the same for FastAPI and
Starlette endpoints (``promdrift.instrumentation.web.tracking``).
"""

from __future__ import annotations

from typing import Any, Optional

from promdrift.extras import require

from ..counting.exposition import CONTENT_TYPE
from .landing import landing_monitors
from .tracking import track

__all__ = ["instrument", "add_landing_page", "landing_monitors", "track", "CONTENT_TYPE"]


def instrument(monitor: Any, app: Any, metrics_path: str = "/metrics",
               landing_path: Optional[str] = "/") -> Any:
    """Add ``metrics_path`` to ``app``, serving the monitor's registry, and the landing page
    at ``landing_path`` (see :func:`add_landing_page`); returns ``app``."""
    require("flask", "flask", "Flask")
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


def add_landing_page(monitor: Any, app: Any, path: str = "/",
                     metrics_path: Optional[str] = "/metrics") -> bool:
    """Serve the landing page at ``path``; returns whether ``monitor`` is shown there.

    The app's own page always wins: nothing is added when ``app`` already has a rule for
    ``path``, and a rule the app adds for ``path`` later is served in place of the landing
    page. Several monitors instrumenting one app share one page, which shows every model of
    their registries.
    """
    require("flask", "flask", "Flask")
    from flask import Response, request

    from .landing import CONTENT_TYPE as HTML
    from .landing import landing_page

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
