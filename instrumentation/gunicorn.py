"""A gunicorn configuration for promdrift apps with several workers.

    PROMDRIFT_MULTIPROC_DIR=/run/promdrift gunicorn -c python:promdrift.instrumentation.gunicorn \\
        --workers 4 --bind 127.0.0.1:8000 myservice:app

or, in an existing ``gunicorn.conf.py``::

    from promdrift.instrumentation.gunicorn import child_exit, on_starting, worker_exit  # noqa

``on_starting`` (master, once) checks ``PROMDRIFT_MULTIPROC_DIR``, removes the counts
files of a previous run before any worker exists and names the run its workers belong to
(an unusable directory, or several workers without one, stops gunicorn there with one error
line and exit status 3, before any worker starts);
``worker_exit`` (worker, as it stops) writes what the worker's monitors queued (predictions
to the label store, captured rows to their file); ``child_exit`` (master, after a worker
died or was recycled by ``max_requests``) folds the dead worker's counts into the archive
file, so totals stay exact and the number of files bounded. The same configuration serves
``gunicorn -k uvicorn.workers.UvicornWorker`` (ASGI apps). This module does not import
gunicorn (gunicorn reads the hook functions from it)::

    >>> import promdrift.instrumentation.gunicorn as config
    >>> sorted(config.__all__)
    ['child_exit', 'on_starting', 'worker_exit']

See docs/multiprocess.md.
"""

from __future__ import annotations

import os
from typing import Any

from .counting.multiprocess import (ENV, RUN_ENV, STARTUP_FAILURE, clear_directory, current_run,
                                    mark_process_dead, startup_error)

__all__ = ["on_starting", "child_exit", "worker_exit"]


def on_starting(server: Any) -> None:
    """Check ``PROMDRIFT_MULTIPROC_DIR`` and clear old counts files; refuse to start with an
    unusable directory, or several workers without one (each would report only its own
    requests): gunicorn stops (``server.halt``) with the reason, exit status 3."""
    error = startup_error(getattr(server.cfg, "workers", 1))
    if error is not None:
        server.halt(reason=error, exit_status=STARTUP_FAILURE)
        return  # halt exits; a stand-in server may not
    directory = os.environ.get(ENV)
    if not directory:
        return
    removed = clear_directory(directory)
    os.environ[RUN_ENV] = current_run()  # this master's run, inherited by its workers
    server.log.info("promdrift: multiprocess counts in %s (%d old files removed)",
                    os.path.abspath(directory), removed)


def worker_exit(server: Any, worker: Any) -> None:
    """Write what the exiting worker's monitors queued (``monitor.shutdown_all``)."""
    from .counting.monitor import shutdown_all
    shutdown_all()


def child_exit(server: Any, worker: Any) -> None:
    """Fold the exited worker's counts files into the archive (totals unchanged)."""
    if os.environ.get(ENV):
        try:
            mark_process_dead(worker.pid, timeout=2.0)  # the master must not hang on scrapes
        except Exception:  # never take the master down; the files stay and still count
            server.log.warning("promdrift: could not fold the counts of worker %s", worker.pid)
