"""``promdrift exporter``: serve the exporter app with gunicorn (or werkzeug without it).

    promdrift exporter --baseline churn.json --baseline fraud.json --listen 127.0.0.1:9108 \\
        --workers 4 --token-file /etc/promdrift/token

With gunicorn installed (``pip install 'promdrift[server]'``) the app runs in ``--workers``
processes (``gthread`` workers, ``--threads`` each) whose counts are merged through
``PROMDRIFT_MULTIPROC_DIR`` (``--multiproc-dir``, or a temporary directory removed at exit),
so every scrape reports exact totals, also across ``--max-requests`` worker restarts. Without
gunicorn, ``--workers 1`` falls back to werkzeug's threaded server with a warning (fine for a
laptop, not for production); more workers are refused. See docs/exporter.md.

    >>> parse_listen("127.0.0.1:9108"), parse_listen(":9108"), parse_listen("[::1]:80")
    (('127.0.0.1', 9108), ('127.0.0.1', 9108), ('::1', 80))
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

from prometheus_client import CollectorRegistry

__all__ = ["add_parser", "cmd_exporter", "make_app", "parse_listen", "read_token"]


def parse_listen(value: str) -> Tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host is 127.0.0.1) as ``(host, port)``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace removed; must not be empty)."""
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    if any(c.isspace() for c in token):
        raise ValueError(f"token file {path} must hold one token without whitespace")
    return token


def make_app(baselines: List[str], token: Optional[str] = None,
             labels_dir: Optional[str] = None, **limits: Any) -> Any:
    """The exporter app for baseline files (one monitor each, in a registry of its own).
    ``labels_dir``: track labels, each model's waiting predictions in
    ``<labels_dir>/labels-<model>.sqlite3`` (``POST /v1/models/<model>/labels``)."""
    from promdrift.instrumentation import DriftMonitor

    from .service import create_app
    registry = CollectorRegistry()
    monitors = [DriftMonitor(path, registry=registry) for path in baselines]
    if labels_dir:
        os.makedirs(labels_dir, exist_ok=True)
        for m in monitors:
            m.track_labels(os.path.join(labels_dir, f"labels-{_file_safe(m.model)}.sqlite3"))
    return create_app(monitors, token=token, **limits)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def add_parser(sub: Any) -> None:
    """Add the ``exporter`` subcommand to the ``promdrift`` parser's subparsers."""
    from .service import DEFAULT_MAX_BODY, DEFAULT_MAX_ROWS
    p = sub.add_parser(
        "exporter", help="serve the HTTP exporter (ingest rows, expose /metrics)",
        description="Serve /metrics for model servers that POST their rows to "
                    "/v1/models/<model>/observations (JSON or NDJSON).")
    p.add_argument("--baseline", action="append", required=True, metavar="FILE",
                   help="baseline JSON file; repeat for several models")
    p.add_argument("--listen", default="127.0.0.1:9108", metavar="HOST:PORT",
                   help="address to bind (default 127.0.0.1:9108; 0.0.0.0:9108 for every "
                        "interface)")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding a bearer token that ingest requests must carry")
    p.add_argument("--protect-metrics", action="store_true",
                   help="require the token on / and /metrics too")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help=f"largest request body (default {DEFAULT_MAX_BODY})")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N",
                   help=f"most observations per request (default {DEFAULT_MAX_ROWS})")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    p.add_argument("--max-requests", type=int, default=0, metavar="N",
                   help="recycle a worker after N requests (default 0: never)")
    p.add_argument("--labels-dir", metavar="DIR",
                   help="track delayed ground truth (POST /v1/models/<model>/labels): one "
                        "SQLite file of waiting predictions per model here, shared by the "
                        "workers")
    p.add_argument("--multiproc-dir", metavar="DIR",
                   help="directory of the per-worker counts files (default: "
                        "$PROMDRIFT_MULTIPROC_DIR, else a temporary directory)")
    p.set_defaults(func=cmd_exporter)


def _gunicorn_app(factory: Callable[[], Any], options: Dict[str, Any]) -> Any:
    from gunicorn.app.base import BaseApplication

    class ExporterApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # control_socket_disable: gunicorn >= 24 only
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return factory()

    return ExporterApplication()


def cmd_exporter(args: argparse.Namespace) -> int:
    from promdrift.instrumentation import Baseline, BaselineError
    from promdrift.instrumentation import gunicorn as hooks
    from promdrift.instrumentation.multiprocess import ENV, check_directory

    try:
        host, port = parse_listen(args.listen)
        token = read_token(args.token_file) if args.token_file else None
        for name, value in (("--workers", args.workers), ("--threads", args.threads),
                            ("--max-body", args.max_body), ("--max-rows", args.max_rows)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if args.max_requests < 0:
            raise ValueError("--max-requests must be 0 or more")
        models = [Baseline.load(path).model for path in args.baseline]  # fail fast, in the master
        if len(set(models)) != len(models):
            raise ValueError(f"two baselines have the same model name: {sorted(models)}")
    except (OSError, ValueError, BaselineError) as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    limits = {"max_body": args.max_body, "max_rows": args.max_rows,
              "protect_metrics": args.protect_metrics}

    def factory() -> Any:
        return make_app(args.baseline, token, labels_dir=args.labels_dir, **limits)

    try:
        import gunicorn  # noqa: F401
    except ImportError:
        if args.workers > 1:
            print("promdrift: error: several workers need gunicorn: pip install "
                  "'promdrift[server]' (or pass --workers 1 for a development server)",
                  file=sys.stderr)
            return 2
        print("promdrift: warning: gunicorn is not installed; serving with werkzeug's "
              "development server (one process, threaded). pip install 'promdrift[server]' "
              "for production.", file=sys.stderr)
        from werkzeug.serving import run_simple
        run_simple(host, port, factory(), threaded=True)
        return 0

    made, master = None, os.getpid()
    directory = args.multiproc_dir or os.environ.get(ENV)
    if not directory:
        directory = made = tempfile.mkdtemp(prefix="promdrift-multiproc-")
    try:
        os.environ[ENV] = check_directory(directory)
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options = {"bind": [bind], "workers": args.workers, "threads": args.threads,
                   "worker_class": "gthread", "max_requests": args.max_requests,
                   "max_requests_jitter": args.max_requests // 10,
                   "on_starting": hooks.on_starting, "child_exit": hooks.child_exit,
                   "proc_name": "promdrift-exporter", "errorlog": "-",
                   "control_socket_disable": True}
        print(f"promdrift: exporter for {', '.join(models)} on http://{bind}/ "
              f"({args.workers} workers)", file=sys.stderr)
        _gunicorn_app(factory, options).run()
    except ValueError as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    finally:
        if made and os.getpid() == master:  # workers leave through here too
            shutil.rmtree(made, ignore_errors=True)
    return 0
