"""``monitor.track(...)``: one decorator for Flask views and FastAPI / Starlette endpoints.

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="m", bins=2),
    ...                        registry=CollectorRegistry())
    >>> @monitor.track(features="features", prediction="y")
    ... def predict():
    ...     return {"y": 1.0}
    >>> predict.__wrapped__().get("y"), getattr(predict, TRACKED).features
    (1.0, 'features')

The decorated function keeps its kind (``def`` or ``async def``), name and parameters, so
frameworks that read them (FastAPI's dependency injection) see the original endpoint. At
call time the wrapper finds its request: Flask's request context, the Starlette ``Request``
an endpoint is called with, or, for a FastAPI endpoint, the ``Request`` FastAPI passes in a
parameter the wrapper adds to the signature (``promdrift_request``; FastAPI knows it is no
body, query or path value, so it appears nowhere in the OpenAPI schema). What is extracted:

- ``features``: a key of the request's JSON body (the raw JSON, before any validation, so
  aliased names keep their JSON spelling), ``None`` for the whole body, or a callable:
  ``features(request)`` for Flask, ``features(body)`` (the parsed JSON body) for ASGI apps;
- ``prediction``: a key (or attribute) of what the view returned (a dict, a pydantic model,
  a JSON response), or ``prediction(result)``;
- ``inference_id``: like ``features`` (an id that cannot be extracted is left out).

The features are counted even when the view raises (then without a prediction), and, on
FastAPI, when request validation answers 422 before the endpoint runs (``instrument(app)``
wraps the app's ``RequestValidationError`` handler): values the validation rejects are
counted as invalid, by reason. Extraction and counting never change the response: a
failure is counted in ``promdrift_instrumentation_errors_total``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import typing
from typing import Any, Callable, Optional, Union

__all__ = ["track", "Tracker", "TRACKED", "REQUEST_PARAMETER"]

Extractor = Union[None, str, Callable[[Any], Any]]
#: The attribute of a decorated endpoint that holds its :class:`Tracker`.
TRACKED = "_promdrift_tracker"
#: The keyword parameter a decorated FastAPI endpoint receives its ``Request`` in.
REQUEST_PARAMETER = "promdrift_request"


def _starlette_request_type() -> Any:
    """Starlette's ``Request`` when Starlette is installed (and so possibly serving)."""
    try:
        from starlette.requests import Request
    except ImportError:
        return None
    return Request


class _Unread:
    def __repr__(self) -> str:
        return "UNREAD"


_UNREAD: Any = _Unread()


class Tracker:
    """What one decorated view extracts, and the counting of it."""

    def __init__(self, monitor: Any, features: Extractor, prediction: Extractor,
                 inference_id: Extractor):
        self.monitor = monitor
        self.features = features
        self.prediction = prediction
        self.inference_id = inference_id
        #: keys only, no id: the request path's common case, read in one step
        self._keys = (isinstance(features, str) and isinstance(prediction, str)
                      and inference_id is None)

    def features_of(self, body: Any) -> Any:
        """The features of a parsed body: ``body[features]``, or the whole body."""
        if self.features is None:
            return body
        if callable(self.features):
            return self.features(body)
        return body[self.features]

    def id_of(self, body: Any) -> Any:
        """The inference id of a parsed body (``None``: none, or not extractable)."""
        if self.inference_id is None:
            return None
        try:
            if callable(self.inference_id):
                return self.inference_id(body)
            return body.get(self.inference_id) if isinstance(body, dict) else None
        except Exception:
            return None

    def prediction_of(self, result: Any) -> Any:
        """The prediction in what a view returned."""
        p = self.prediction
        if p is None:
            return None
        if callable(p):
            return p(result)
        if isinstance(result, tuple):  # Flask: (body, status) / (body, status, headers)
            result = result[0]
        if isinstance(result, dict):
            return result[p]
        get_json = getattr(result, "get_json", None)  # a Flask / werkzeug response
        if callable(get_json):
            return get_json(silent=True)[p]
        body = getattr(result, "body", None)  # a Starlette JSONResponse
        if isinstance(body, (bytes, bytearray)) and hasattr(result, "media_type"):
            return json.loads(body)[p]
        return getattr(result, p)  # a pydantic model or another object

    def observe(self, body: Any, result: Any, ran: bool, features: Any = _UNREAD,
                rid: Any = None) -> None:
        """Count a request: ``body`` its parsed JSON, ``result`` what the view returned
        (``ran``: it returned). ``features`` / ``rid``: already extracted (Flask's
        callables take the request), else read from ``body``."""
        m = self.monitor
        if self._keys and type(body) is dict and (not ran or type(result) is dict):
            try:
                row = body[self.features]
                pred = result[self.prediction] if ran else None
            except KeyError:
                pass
            else:
                m.observe(row, pred)
                return
        try:
            if features is _UNREAD:
                features = self.features_of(body)
            pred = self.prediction_of(result) if ran else None
        except Exception:
            m._count_error()
            return
        if rid is None:
            rid = self.id_of(body)
        if rid is None:
            m.observe(features, pred)
        else:
            m.observe(features, pred, inference_id=rid)

    def flask_observe(self, request: Any, result: Any, ran: bool) -> None:
        """Count a Flask request (``ran``: the view returned ``result``)."""
        if self._keys:
            self.observe(request.get_json(silent=True), result, ran)
            return
        features, rid = _UNREAD, None
        try:
            if callable(self.features):
                features = self.features(request)
        except Exception:
            self.monitor._count_error()
            return
        if callable(self.inference_id):
            try:
                rid = self.inference_id(request)
            except Exception:
                rid = None
        body = request.get_json(silent=True)  # parsed once per request, cached by Flask
        self.observe(body, result, ran, features, rid)


_flask_context: Any = None  # Flask's request context variable, once Flask is imported


def _flask_request() -> Any:
    """The request of the active Flask request context, or ``None`` (without importing
    Flask when nothing did)."""
    global _flask_context
    cv = _flask_context
    if cv is None:
        if "flask" not in sys.modules:
            return None
        from flask.globals import _cv_request as cv  # no proxy on the hot path
        _flask_context = cv
    ctx = cv.get(None)
    return ctx.request if ctx is not None else None


def _cached_json(request: Any) -> Any:
    """The parsed JSON body a Starlette request already read, else ``_UNREAD``."""
    body = getattr(request, "_json", _UNREAD)
    return body


async def _read_json(request: Any) -> Any:
    body = _cached_json(request)
    if body is _UNREAD:
        try:
            body = await request.json()
        except Exception:
            body = None
    return body


def _sync_json(request: Any) -> Any:
    """The JSON body from a worker thread (a sync endpoint that did not read it)."""
    body = _cached_json(request)
    if body is not _UNREAD:
        return body
    try:
        from anyio.from_thread import run
        return run(request.json)
    except Exception:
        return None


def track(monitor: Any, features: Extractor, prediction: Extractor = None,
          inference_id: Extractor = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorator behind ``DriftMonitor.track`` (see the module's documentation)."""
    tracker = Tracker(monitor, features, prediction, inference_id)
    request_type = _starlette_request_type()

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        # The endpoint's own Request parameter, or the one added for FastAPI to fill.
        own = _request_parameter(view, request_type) if request_type is not None else None
        name = own or REQUEST_PARAMETER

        def find_request(args: Any, kwargs: Any) -> Any:
            request = kwargs.get(name) if own else kwargs.pop(REQUEST_PARAMETER, None)
            if request is None and request_type is not None:
                for a in args[:2]:  # a Starlette endpoint (request) or method (self, request)
                    if isinstance(a, request_type):
                        return a
            return request

        if inspect.iscoroutinefunction(view):
            @functools.wraps(view)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                request = find_request(args, kwargs)
                if request is None:
                    return await view(*args, **kwargs)
                try:
                    result = await view(*args, **kwargs)
                except BaseException:
                    tracker.observe(await _read_json(request), None, ran=False)
                    raise
                body = _cached_json(request)
                if body is _UNREAD:
                    body = await _read_json(request)
                tracker.observe(body, result, ran=True)
                return result
        else:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                request = find_request(args, kwargs) if args or kwargs else None
                if request is None:
                    flask_request = _flask_request()
                    if flask_request is None:
                        return view(*args, **kwargs)
                    try:
                        result = view(*args, **kwargs)
                    except BaseException:
                        tracker.flask_observe(flask_request, None, ran=False)
                        raise
                    tracker.flask_observe(flask_request, result, ran=True)
                    return result
                try:
                    result = view(*args, **kwargs)
                except BaseException:
                    tracker.observe(_sync_json(request), None, ran=False)
                    raise
                tracker.observe(_sync_json(request), result, ran=True)
                return result
        setattr(wrapper, TRACKED, tracker)
        if request_type is not None and own is None:
            _add_request_parameter(wrapper, view, request_type)
        return wrapper

    return decorator


def _request_parameter(view: Any, request_type: Any) -> Optional[str]:
    """The name of ``view``'s own parameter annotated with Starlette's ``Request`` (FastAPI
    fills one such parameter only), or ``None``."""
    try:
        hints = typing.get_type_hints(view)
    except Exception:
        hints = getattr(view, "__annotations__", {})
    for name, hint in hints.items():
        if isinstance(hint, type) and issubclass(hint, request_type):
            return name
        if isinstance(hint, str) and hint.rsplit(".", 1)[-1] == "Request":  # unresolved
            return name
    return None


def _add_request_parameter(wrapper: Any, view: Any, request_type: Any) -> None:
    """Give ``wrapper`` the signature of ``view`` plus a keyword-only ``Request`` parameter,
    which FastAPI fills with the request (Flask and Starlette never read signatures)."""
    try:
        sig = inspect.signature(view)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    extra = inspect.Parameter(REQUEST_PARAMETER, inspect.Parameter.KEYWORD_ONLY,
                              annotation=request_type)
    if params and params[-1].kind == inspect.Parameter.VAR_KEYWORD:
        params.insert(len(params) - 1, extra)
    else:
        params.append(extra)
    wrapper.__signature__ = sig.replace(parameters=params)


def observe_rejected(endpoint: Any, body: Any) -> None:
    """Count the features of a request whose validation failed before ``endpoint`` ran
    (FastAPI's 422), when ``endpoint`` is tracked."""
    tracker = getattr(endpoint, TRACKED, None)
    if tracker is not None:
        tracker.observe(body, None, ran=False)


# asyncio is imported for the coroutine check of older Pythons' inspect (3.9 treats
# functools.wraps'd coroutines correctly through inspect.iscoroutinefunction).
_ = asyncio
