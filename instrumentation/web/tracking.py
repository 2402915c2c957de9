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

The features are counted even when the view raises or answers an error status (then
without a prediction), and, on FastAPI, when request validation answers 422 before the
endpoint runs (``instrument(app)`` wraps the app's ``RequestValidationError`` handler):
values the validation rejects are counted as invalid, by reason.

A body whose features cannot be read is the client's error, never promdrift's: it is
counted as a refused request (``DriftMonitor.invalid_request``) by reason: ``not_json`` (the
body is not JSON, or not sent as JSON where the framework requires it), ``not_object``
(JSON, but not an object, when ``features`` is a key), ``no_features`` (the key is absent
or null; a callable extractor raised ``LookupError``, ``TypeError``, ``ValueError`` or
``AttributeError``), ``bad_shape`` (features no row or batch has: a string, a number, a
row of the wrong length). Extraction and counting never change the response. Only
promdrift's own failures (and an extractor raising anything else, or a prediction that
cannot be found in a successful answer) are counted in
``promdrift_instrumentation_errors_total``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import typing
from typing import Any, Callable, Optional, Union

from ..values import NO_FEATURES, NOT_JSON, NOT_OBJECT

__all__ = ["track", "Tracker", "TRACKED", "REQUEST_PARAMETER", "COUNTED", "NOT_JSON_BODY",
           "observe_rejected", "observe_unreadable"]

Extractor = Union[None, str, Callable[[Any], Any]]
#: The attribute of a decorated endpoint that holds its :class:`Tracker`.
TRACKED = "_promdrift_tracker"
#: The keyword parameter a decorated FastAPI endpoint receives its ``Request`` in.
REQUEST_PARAMETER = "promdrift_request"
#: The ASGI scope key a tracked endpoint sets once it counted its request.
COUNTED = "promdrift.counted"


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


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


#: A request body that is not JSON (or was not sent as JSON).
NOT_JSON_BODY: Any = _NotJson()
#: What a callable extractor raises on a body that lacks what it reads: the client's error.
_CLIENT_ERRORS = (LookupError, TypeError, ValueError, AttributeError)


def _status(result: Any) -> int:
    """The HTTP status a view's return value answers with (200 unless it says otherwise):
    a Flask ``(body, status[, headers])`` tuple, a response object's ``status_code``."""
    if isinstance(result, tuple) and len(result) >= 2:
        code = result[1]
        if isinstance(code, int):
            return code
        if isinstance(code, str):
            head = code.strip().split(" ", 1)[0]
            return int(head) if head.isdigit() else 200
        return 200
    code = getattr(result, "status_code", None)
    return code if isinstance(code, int) else 200


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
        """Count a request: ``body`` its parsed JSON (:data:`NOT_JSON_BODY`: not JSON),
        ``result`` what the view returned (``ran``: it returned). ``features`` / ``rid``:
        already extracted (Flask's callables take the request), else read from ``body``.
        A body whose features cannot be read is counted as a refused request, by reason.
        Never raises."""
        try:
            self._observe(body, result, ran, features, rid)
        except Exception:  # a bug here must never cost the app its answer
            self.monitor._count_error()

    def _observe(self, body: Any, result: Any, ran: bool, features: Any, rid: Any) -> None:
        m = self.monitor
        if self._keys and type(body) is dict and (not ran or type(result) is dict):
            try:
                row = body[self.features]
                pred = result[self.prediction] if ran else None
            except KeyError:
                pass
            else:
                if row is not None:
                    m.observe(row, pred)
                    return
        if features is _UNREAD:
            features, reason = self._features_or_reason(body)
            if reason is not None:
                if reason is not _ERROR:
                    m.invalid_request(reason)
                return
        try:
            pred = self.prediction_of(result) if ran and _status(result) < 400 else None
        except Exception:  # the app's successful answer has no such prediction
            m._count_error()
            return
        if rid is None:
            rid = self.id_of(body)
        if rid is None:
            m.observe(features, pred)
        else:
            m.observe(features, pred, inference_id=rid)

    def _features_or_reason(self, body: Any) -> Any:
        """``(features, None)``, or ``(None, reason)`` for a body whose features cannot be
        read (``_ERROR``: the extractor failed otherwise, counted as an error)."""
        if body is NOT_JSON_BODY:
            return None, NOT_JSON
        f = self.features
        if f is None:  # the whole body is the row or batch
            if isinstance(body, (dict, list)):
                return body, None
            return None, NOT_OBJECT
        if callable(f):
            try:
                features = f(body)
            except _CLIENT_ERRORS:
                return None, NO_FEATURES
            except Exception:
                self.monitor._count_error()
                return None, _ERROR
            return (features, None) if features is not None else (None, NO_FEATURES)
        if not isinstance(body, dict):
            return None, NOT_OBJECT
        features = body.get(f)
        return (features, None) if features is not None else (None, NO_FEATURES)

    def flask_observe(self, request: Any, result: Any, ran: bool) -> None:
        """Count a Flask request (``ran``: the view returned ``result``). Never raises."""
        try:
            self._flask_observe(request, result, ran)
        except Exception:  # a bug here must never cost the app its answer
            self.monitor._count_error()

    def _flask_observe(self, request: Any, result: Any, ran: bool) -> None:
        if self._keys:
            self.observe(_flask_json(request), result, ran)
            return
        features, rid = _UNREAD, None
        if callable(self.features):
            try:
                features = self.features(request)
            except Exception as e:
                body = _flask_json(request)
                if body is NOT_JSON_BODY:
                    self.monitor.invalid_request(NOT_JSON)
                elif isinstance(e, _CLIENT_ERRORS) or _client_error(e):
                    self.monitor.invalid_request(NO_FEATURES)
                else:
                    self.monitor._count_error()
                return
            if features is None:
                body = _flask_json(request)
                self.monitor.invalid_request(NOT_JSON if body is NOT_JSON_BODY else NO_FEATURES)
                return
        if callable(self.inference_id):
            try:
                rid = self.inference_id(request)
            except Exception:
                rid = None
        body = _flask_json(request)  # parsed once per request, cached by Flask
        self.observe(body, result, ran, features, rid)


class _Error:
    def __repr__(self) -> str:
        return "ERROR"


_ERROR: Any = _Error()


def _client_error(e: BaseException) -> bool:
    """An HTTP 4xx exception (werkzeug's ``BadRequest`` from ``request.get_json()`` ...)."""
    code = getattr(e, "code", None)
    return isinstance(code, int) and 400 <= code < 500


def _flask_json(request: Any) -> Any:
    """The JSON body of a Flask request (cached by Flask), :data:`NOT_JSON_BODY` when it
    is not JSON or not sent as JSON (Flask's own ``get_json`` refuses it then too)."""
    try:
        body = request.get_json(silent=True)
    except Exception:  # nested too deep for the parser, too large, a broken stream
        return NOT_JSON_BODY
    if body is None and not _json_null(request):
        return NOT_JSON_BODY
    return body


def _json_null(request: Any) -> bool:
    """Whether a Flask request whose ``get_json(silent=True)`` is None holds JSON ``null``."""
    if not request.is_json:
        return False
    try:
        return json.loads(request.get_data(cache=True)) is None
    except Exception:
        return False


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
    """The parsed JSON body of a Starlette request, :data:`NOT_JSON_BODY` when it is not
    JSON (or could not be read)."""
    body = _cached_json(request)
    if body is _UNREAD:
        try:
            body = await request.json()
        except Exception:
            body = NOT_JSON_BODY
    return body


def _sync_json(request: Any) -> Any:
    """The JSON body from a worker thread (a sync endpoint that did not read it)."""
    body = _cached_json(request)
    if body is not _UNREAD:
        return body
    try:
        from anyio.from_thread import run
        return run(_read_json, request)
    except Exception:
        return NOT_JSON_BODY


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
                request.scope[COUNTED] = True
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
                request.scope[COUNTED] = True
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


async def observe_rejected(request: Any, exc: Any) -> None:
    """Count the features of a request whose validation failed before its endpoint ran
    (FastAPI's 422, ``exc`` its ``RequestValidationError``), when the endpoint is tracked.
    A body FastAPI could not decode as JSON, or that was not sent as JSON, is ``not_json``."""
    tracker = getattr(request.scope.get("endpoint"), TRACKED, None)
    if tracker is None:
        return
    request.scope[COUNTED] = True
    body = getattr(exc, "body", None)
    errors = exc.errors() if callable(getattr(exc, "errors", None)) else ()
    if any(isinstance(e, dict) and e.get("type") == "json_invalid" for e in errors) \
            or isinstance(body, (bytes, bytearray)):
        body = NOT_JSON_BODY
    elif body is None:  # no body, JSON null, or an endpoint that never read its body
        body = await _read_json(request)
        if body is not NOT_JSON_BODY and body is None and not await _has_body(request):
            body = NOT_JSON_BODY
    tracker.observe(body, None, ran=False)


async def observe_unreadable(request: Any, exc: Any) -> None:
    """Count a request whose body the framework could not read before its endpoint ran (an
    ``HTTPException`` 400 caused by a decoding error: bytes that are not UTF-8, JSON nested
    too deep for the parser) as ``not_json``, when the endpoint is tracked and its request
    not counted yet."""
    tracker = getattr(request.scope.get("endpoint"), TRACKED, None)
    if tracker is None or request.scope.get(COUNTED):
        return
    if getattr(exc, "status_code", None) == 400 and isinstance(
            exc.__cause__, (ValueError, RecursionError)):
        request.scope[COUNTED] = True
        tracker.monitor.invalid_request(NOT_JSON)


async def _has_body(request: Any) -> bool:
    try:
        return bool((await request.body()).strip())
    except Exception:
        return False


# asyncio is imported for the coroutine check of older Pythons' inspect (3.9 treats
# functools.wraps'd coroutines correctly through inspect.iscoroutinefunction).
_ = asyncio
