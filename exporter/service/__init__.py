"""The ingest service of ``promdrift exporter``, one module per layer, outermost first:

- ``command``: the ``promdrift exporter`` subcommand: options, baselines, the gunicorn
  master that forks and recycles the workers (or werkzeug's server without gunicorn);
- ``worker``: a gunicorn worker process, serving with ``httpserver``;
- ``httpserver``: the HTTP server of one process: connections read on an asyncio event loop
  with h11, within ``limits``, the app run in a thread pool on complete requests;
- ``app``: the WSGI app (Flask): routes, authentication, body parsing, then
  ``DriftMonitor.observe`` / ``record_label``;
- ``limits``, ``webconfig`` (TLS and basic authentication), ``metrics`` (the exporter's own
  families): what the layers above share.

See docs/exporter.md and docs/architecture.md.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .app import create_app
    from .command import make_app

__all__ = ["create_app", "make_app"]

__getattr__, __dir__ = _exports(__name__, {"create_app": ".app", "make_app": ".command"})
