"""The gunicorn worker of ``promdrift exporter``: gunicorn's master forks, watches and recycles
the worker processes (``--workers``, ``--max-requests``, the ``child_exit`` hook of the
multiprocess counts), and each worker serves with :class:`promdrift.exporter.service.httpserver.Server`
(connections on an asyncio event loop, the app in ``--threads`` threads).

    >>> from promdrift.exporter.service.worker import ExporterWorker
    >>> ExporterWorker.__mro__[1].__module__
    'gunicorn.workers.base'

The server's limits and TLS context come from the gunicorn application's
``server_options`` (``promdrift.exporter.service.command`` sets them): ``limits`` (a ``Limits``) and
``web_config`` (a ``WebConfig``, whose TLS context each worker builds for itself).

On SIGTERM (gunicorn's graceful stop, ``kubectl delete pod``) a worker stops accepting,
answers the requests in flight for up to gunicorn's ``graceful_timeout``, and leaves through
writing what its monitors queued (the label store's predictions, captured rows) and counting
the rows still deferred into its counts file. SIGINT and SIGQUIT stop it at once.
"""

from __future__ import annotations

import asyncio
import os
import signal

from promdrift.extras import require

from .command import flush_all
from .httpserver import Limits, Server

require("exporter", "gunicorn", "gunicorn")

from gunicorn.workers.base import Worker  # noqa: E402

__all__ = ["ExporterWorker"]

_HEARTBEAT = 0.5  # seconds between the worker's checks (gunicorn's timeout is far longer)
_FLUSH = 2.0  # seconds of the graceful timeout kept for flushing after the drain


class ExporterWorker(Worker):
    """A gunicorn worker serving the app with promdrift's asyncio server."""

    def run(self) -> None:
        options = getattr(self.app, "server_options", {}) or {}
        limits: Limits = options.get("limits") or Limits()
        web = options.get("web_config")
        server = Server(self.wsgi, limits, ssl_context=web.ssl_context() if web else None,
                        max_requests=self.max_requests if self.cfg.max_requests else 0,
                        on_max_requests=self._recycle)
        asyncio.run(self._serve(server))
        # a second SIGTERM (the master stopping while this worker drains) must not cut the
        # flush short; the master's SIGKILL after graceful_timeout still bounds it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        flush_all()  # gunicorn's worker_exit hook runs next, in this process

    def _recycle(self) -> None:
        self.log.info("Autorestarting worker after current request.")
        self.alive = False

    def _quit(self) -> None:
        self.alive = False
        self._quick = True

    async def _serve(self, server: Server) -> None:
        loop = asyncio.get_running_loop()
        self._quick = False
        loop.add_signal_handler(signal.SIGTERM, lambda: setattr(self, "alive", False))
        loop.add_signal_handler(signal.SIGINT, self._quit)
        loop.add_signal_handler(signal.SIGQUIT, self._quit)
        await server.start(self.sockets)
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            await asyncio.sleep(_HEARTBEAT)
        # the master kills a worker graceful_timeout after its SIGTERM: leave time to flush
        timeout = float(self.cfg.graceful_timeout)
        grace = 0.0 if self._quick else max(0.0, timeout - min(_FLUSH, timeout / 4))
        stopping = asyncio.ensure_future(server.stop(grace))
        while not stopping.done():  # the master must not take a draining worker for hung
            self.notify()
            await asyncio.wait([stopping], timeout=_HEARTBEAT)
        stopping.result()
