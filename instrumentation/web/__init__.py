"""Web integrations, on top of the core: nothing below imports them.

- ``flask``: ``monitor.instrument(app)`` for a Flask app (``/metrics``, the landing page);
- ``asgi``: the same for FastAPI, Starlette and any ASGI app, with its lifespan;
- ``tracking``: ``@monitor.track``, for Flask views and ASGI endpoints alike;
- ``landing``: the HTML page at ``/`` (``landing_page``).

The server entry modules ``promdrift.instrumentation.gunicorn`` and
``promdrift.instrumentation.uvicorn`` belong to this layer; they keep the module paths their
command lines name.
"""
