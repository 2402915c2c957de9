"""uvicorn, with promdrift's start checks in its parent process, before any worker starts.

    PROMDRIFT_MULTIPROC_DIR=/run/promdrift python -m promdrift.instrumentation.uvicorn \\
        --workers 4 --host 127.0.0.1 --port 8000 myservice:app

is uvicorn's command line (the same options, parsed by uvicorn itself), and :func:`run` is
``uvicorn.run`` (the same arguments)::

    from promdrift.instrumentation.uvicorn import run
    run("myservice:app", workers=4, host="127.0.0.1", port=8000)

Why they exist: with several workers, uvicorn's parent process runs no code of the app, so
an instrumented app can check ``PROMDRIFT_MULTIPROC_DIR`` only in its workers. A worker that
fails the check logs one line and exits with status 3, and uvicorn (0.50 and later) stops
rather than start it again, but uvicorn's parent then exits with status 0, as it does for any
worker that fails to start. These two run the check first (:func:`check`,
``multiprocess.startup_error``): an unusable directory, or several workers without one, is
one error line on stderr and exit status 3, before any worker exists. Everything else is
uvicorn's. This module imports uvicorn only when called::

    >>> import promdrift.instrumentation.uvicorn as launcher
    >>> sorted(launcher.__all__)
    ['check', 'main', 'run']

See docs/multiprocess.md.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

from promdrift.extras import require

from .counting.multiprocess import STARTUP_FAILURE, startup_error

__all__ = ["check", "run", "main"]

#: The program name in uvicorn's usage and error messages.
PROG = "python -m promdrift.instrumentation.uvicorn"


def check(workers: Optional[int]) -> None:
    """Exit with status 3 (``SystemExit``), after one line on stderr naming the problem and
    its fix, when a server of ``workers`` worker processes must not start (``None``: as
    uvicorn counts them, ``WEB_CONCURRENCY`` or 1)::

        >>> check(1)  # one worker, or a usable PROMDRIFT_MULTIPROC_DIR: nothing happens
    """
    if workers is None:
        workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    error = startup_error(workers)
    if error is not None:
        print(f"Error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(STARTUP_FAILURE)


def run(app: Any, **kwargs: Any) -> None:
    """``uvicorn.run(app, **kwargs)`` after :func:`check` of its ``workers``."""
    check(kwargs.get("workers"))
    require("server", "uvicorn", "uvicorn")
    import uvicorn
    uvicorn.run(app, **kwargs)


def main(args: Optional[Sequence[str]] = None) -> None:
    """The command line: uvicorn's (``args``: its arguments, default ``sys.argv[1:]``),
    after :func:`check` of its ``--workers`` (or ``WEB_CONCURRENCY``)."""
    require("server", "uvicorn", "uvicorn")
    from uvicorn.main import main as command
    args = list(sys.argv[1:] if args is None else args)
    if not {"--help", "--version"} & set(args):
        params = command.make_context(PROG, list(args), resilient_parsing=True).params
        check(params.get("workers"))
    command.main(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
