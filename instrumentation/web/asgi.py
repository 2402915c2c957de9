"""ASGI integration (FastAPI, Starlette, any ASGI app): ``/metrics``, the landing page, and
the server's start and stop, with the Flask integration's shape.

    >>> from fastapi import FastAPI
    >>> from fastapi.testclient import TestClient
    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.0, 1.5]},
    ...                        model="m", predictions="y", bins=2), registry=CollectorRegistry())
    >>> app = monitor.instrument(FastAPI())
    >>> @app.post("/predict")
    ... @monitor.track(features="features", prediction="prediction")
    ... async def predict(body: dict):
    ...     return {"prediction": 2 * body["features"]["x"]}
    >>> with TestClient(app) as client:
    ...     client.post("/predict", json={"features": {"x": 1.5}}).status_code
    ...     client.get("/metrics").headers["content-type"]
    200
    'text/plain; version=0.0.4; charset=utf-8'
    >>> monitor.sample("promdrift_inferences_total")
    1.0

``instrument(app)`` adds a :class:`PromdriftMiddleware` (``app.add_middleware`` for
Starlette and FastAPI apps, which stay the same object; any other ASGI callable is wrapped
and the wrapper returned). It answers ``GET /metrics`` (the monitor's registry, text format
0.0.4, rendered in a worker thread so the event loop never waits on it) and ``GET /`` with
the landing page unless the app answers that path itself (anything but a 404 wins), and it
takes part in the ASGI lifespan:

- **startup** refuses to start several worker processes without
  ``PROMDRIFT_MULTIPROC_DIR`` (``uvicorn --workers 4``: each worker would report only its
  own counts), or with an unusable one (``multiprocess.startup_error``), with the same
  message as the gunicorn configuration (said by the first worker of the server to fail;
  the others fail without repeating it): the worker exits with status 3 and uvicorn (0.50
  and later) or gunicorn's ``UvicornWorker`` then stops the server;
- **shutdown** (SIGTERM under uvicorn, Docker, Kubernetes) writes what every plugin queued,
  and data capture finalises its file, before the process exits (uvicorn re-raises the
  signal after the lifespan, so ``atexit`` hooks never run).

On FastAPI, a request whose validation fails (422) before a tracked endpoint runs still has
its features counted (``promdrift.instrumentation.web.tracking``): ``instrument`` wraps the
app's ``RequestValidationError`` handler, whichever it is when the app starts.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable, Dict, List, Optional

from ..counting.exposition import CONTENT_TYPE
from ..counting.multiprocess import first_report, startup_error, worker_count
from .landing import CONTENT_TYPE as HTML, landing_monitors, landing_page
from .tracking import observe_rejected, observe_unreadable

__all__ = ["instrument", "PromdriftMiddleware", "several_workers_error"]

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]


def several_workers_error(workers: int) -> Optional[str]:
    """The refusal of ``workers`` worker processes without a usable
    ``PROMDRIFT_MULTIPROC_DIR`` (the gunicorn configuration's wording), or ``None`` when they
    may start (``multiprocess.startup_error``).

        >>> several_workers_error(1) is None
        True
    """
    return startup_error(workers)


async def _in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a worker thread (anyio's when the app runs on anyio, as Starlette does)."""
    try:
        import anyio.to_thread
    except ImportError:
        return await asyncio.get_running_loop().run_in_executor(None, fn)
    return await anyio.to_thread.run_sync(fn)


class _Refused(RuntimeError):
    """Raised into the app's lifespan when promdrift refuses the start (after it reported
    the refusal with ``lifespan.startup.failed``)."""


class _State:
    """What the middleware serves: shared by every monitor that instruments one app."""

    def __init__(self, metrics_path: str, landing_path: Optional[str]):
        self.metrics_path = metrics_path
        self.landing_path = landing_path
        self.monitors: List[Any] = []


class PromdriftMiddleware:
    """ASGI middleware serving ``/metrics`` and the landing page, and running promdrift's
    part of the lifespan (see the module's documentation). ``state`` is shared by the
    monitors instrumenting one app; build it with :func:`instrument`."""

    def __init__(self, app: Any, state: _State):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):] or "/"
            state = self.state
            if path == state.metrics_path:
                return await self._metrics(scope, send)
            if path == state.landing_path:
                return await self._landing(scope, receive, send)
        elif kind == "lifespan":
            return await self._lifespan(scope, receive, send)
        await self.app(scope, receive, send)

    # ------------------------------------------------------------------ pages
    async def _respond(self, scope: Scope, send: Send, body: bytes, content_type: str,
                       extra: Optional[List[Any]] = None) -> None:
        headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode())] + (extra or [])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})

    async def _metrics(self, scope: Scope, send: Send) -> None:
        text = await _in_thread(self.state.monitors[0].metrics_text)
        await self._respond(scope, send, text, CONTENT_TYPE)

    async def _landing(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's own answer, unless it is a 404: then the landing page."""
        missing = False

        async def intercept(message: Dict[str, Any]) -> None:
            nonlocal missing
            if message["type"] == "http.response.start" and message["status"] == 404:
                missing = True
            if not missing:
                await send(message)

        await self.app(scope, receive, intercept)
        if missing:
            link = scope.get("root_path", "") + self.state.metrics_path
            page = await _in_thread(functools.partial(
                landing_page, landing_monitors(self.state.monitors), metrics_path=link))
            await self._respond(scope, send, page.encode("utf-8"), HTML,
                                [(b"cache-control", b"no-store")])

    # ------------------------------------------------------------------ lifespan
    def _startup(self) -> Optional[str]:
        """``None``, or the refusal to send with ``lifespan.startup.failed`` (empty when
        another worker of this server already said it)."""
        for m in self.state.monitors:
            for plugin in m.plugins:
                plugin.startup()
        error = several_workers_error(worker_count())
        if error is not None and not first_report():
            return ""
        return error

    def _shutdown(self) -> None:
        for m in self.state.monitors:
            m.shutdown()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        phase: Dict[str, Any] = {"startup": False, "answered": False, "refused": None}

        async def receive_(*args: Any) -> Dict[str, Any]:
            message = await receive()
            if message["type"] == "lifespan.startup":
                phase["startup"] = True
            return message

        async def send_(message: Dict[str, Any]) -> None:
            if phase["refused"] is not None:
                return  # the app's own report of the refusal: ours was sent
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                phase["answered"] = True
                error = await _in_thread(self._startup)
                if error is not None:  # "" too: refused, said by another worker
                    phase["refused"] = error
                    await send({"type": "lifespan.startup.failed", "message": error})
                    raise _Refused(error)  # stops the app's lifespan
            elif kind == "lifespan.startup.failed":
                phase["answered"] = True
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await _in_thread(self._shutdown)
            await send(message)

        try:
            await self.app(scope, receive_, send_)
        except BaseException:
            if phase["answered"]:  # a refusal too: the server sees the lifespan fail
                raise
            await self._own_lifespan(receive, send, phase["startup"])

    async def _own_lifespan(self, receive: Receive, send: Send, started: bool) -> None:
        """The lifespan of an app that does not speak it (it raised on the scope)."""
        while True:
            message = {"type": "lifespan.startup"} if started else await receive()
            started = False
            if message["type"] == "lifespan.startup":
                error = await _in_thread(self._startup)
                await send({"type": "lifespan.startup.failed", "message": error}
                           if error is not None else {"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _in_thread(self._shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _wrap_validation_handler(app: Any) -> None:
    """Count the features of requests FastAPI answers with a 422 before a tracked endpoint
    runs, and as ``not_json`` the bodies it answers with a 400 because it cannot decode them:
    wrap the app's ``RequestValidationError`` and ``HTTPException`` handlers when its
    middleware stack is built (so a handler the app registers after ``instrument`` is
    wrapped too)."""
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:
        return
    from starlette.exceptions import HTTPException
    build = app.build_middleware_stack

    def wrap(kind: Any, default: Any, observe: Any) -> None:
        handlers = app.exception_handlers
        current = handlers.get(kind) or default()
        if getattr(current, "_promdrift", False):
            return

        async def counted(request: Any, exc: Any) -> Any:
            try:
                await observe(request, exc)
            except Exception:  # the counting is the monitor's business, never the answer's
                pass
            result = current(request, exc)
            return await result if asyncio.iscoroutine(result) else result
        counted._promdrift = True  # type: ignore[attr-defined]
        handlers[kind] = counted

    def validation_default() -> Any:
        from fastapi.exception_handlers import request_validation_exception_handler
        return request_validation_exception_handler

    def http_default() -> Any:
        from fastapi.exception_handlers import http_exception_handler
        return http_exception_handler

    def build_middleware_stack() -> Any:
        wrap(RequestValidationError, validation_default, observe_rejected)
        wrap(HTTPException, http_default, observe_unreadable)  # a body FastAPI cannot decode
        return build()

    app.build_middleware_stack = build_middleware_stack


def instrument(monitor: Any, app: Any, metrics_path: str = "/metrics",
               landing_path: Optional[str] = "/") -> Any:
    """Serve ``metrics_path`` and the landing page from an ASGI app, and run promdrift's part
    of its lifespan; returns the app (Starlette / FastAPI: the same object) or, for another
    ASGI callable, the wrapping middleware (serve that). Several monitors may instrument one
    app: the landing page shows them all, ``/metrics`` serves the first one's registry."""
    state: Optional[_State] = getattr(app, "_promdrift_state", None)
    if state is not None:
        if not any(m is monitor for m in state.monitors):
            state.monitors.append(monitor)
        return app
    state = _State(metrics_path, landing_path)
    state.monitors.append(monitor)
    if hasattr(app, "add_middleware") and hasattr(app, "user_middleware"):  # Starlette
        app.add_middleware(PromdriftMiddleware, state=state)
        app._promdrift_state = state
        if hasattr(app, "exception_handlers") and hasattr(app, "openapi"):  # FastAPI
            _wrap_validation_handler(app)
        return app
    if not callable(app):
        raise TypeError(f"instrument needs a Flask app or an ASGI app, got "
                        f"{type(app).__name__}")
    wrapped = PromdriftMiddleware(app, state)
    wrapped._promdrift_state = state  # type: ignore[attr-defined]
    return wrapped
