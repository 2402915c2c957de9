"""``promdrift exporter``: serve the exporter app with promdrift's HTTP server, in gunicorn's
worker processes.

    promdrift exporter --baseline churn.json --baseline fraud.json --listen 0.0.0.0:9108 \\
        --workers 4 --token-file /etc/promdrift/token --web-config /etc/promdrift/web.yml

Each worker reads its connections on an asyncio event loop and runs the app in ``--threads``
threads on complete requests only (``promdrift.exporter.service.httpserver``): a client that
sends slowly holds a connection slot, never a thread, and is answered 408 after
``--read-timeout``; connections and buffered bodies are bounded (``--max-connections``,
``--max-buffer``: 503 with ``Retry-After`` beyond). ``--web-config`` adds TLS and basic
authentication (``promdrift.exporter.service.webconfig``, the exporter-toolkit's format).
With gunicorn installed (``pip install 'promdrift[exporter]'``) the app runs in ``--workers``
processes whose counts are merged through ``PROMDRIFT_MULTIPROC_DIR`` (``--multiproc-dir``,
or a temporary directory removed at exit), so every scrape reports exact totals, also across
``--max-requests`` worker restarts; SIGTERM drains them (``--graceful-timeout``). Without
gunicorn, ``--workers 1`` falls back to werkzeug's threaded development server with a warning
(fine for a laptop: it has no read timeouts or connection limits); more workers are refused.
See docs/exporter.md.

    >>> parse_listen("127.0.0.1:9108"), parse_listen(":9108"), parse_listen("[::1]:80")
    (('127.0.0.1', 9108), ('127.0.0.1', 9108), ('::1', 80))
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

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
             labels_dir: Optional[str] = None, coerce_numbers: bool = True,
             **options: Any) -> Any:
    """The exporter app for baseline files (one monitor each, in a registry of its own).
    ``labels_dir``: track labels, each model's waiting predictions in
    ``<labels_dir>/labels-<model>.sqlite3`` (``POST /v1/models/<model>/labels``).
    ``coerce_numbers``: a string spelling a number counts as that number for a numeric
    column (``DriftMonitor(coerce_numbers=)``; ``--no-coerce-numbers`` turns it off)."""
    from prometheus_client import CollectorRegistry

    from promdrift.instrumentation import DriftMonitor

    from .app import create_app
    registry = CollectorRegistry()
    monitors = [DriftMonitor(path, registry=registry, coerce_numbers=coerce_numbers)
                for path in baselines]
    if labels_dir:
        os.makedirs(labels_dir, exist_ok=True)
        for m in monitors:
            m.track_labels(os.path.join(labels_dir, f"labels-{_file_safe(m.model)}.sqlite3"))
    return create_app(monitors, token=token, **options)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def add_parser(sub: Any) -> None:
    """Add the ``exporter`` subcommand to the ``promdrift`` parser's subparsers."""
    from .limits import DEFAULT_MAX_BODY, DEFAULT_MAX_ROWS, Limits
    limits = Limits()
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
    p.add_argument("--web-config", metavar="FILE",
                   help="TLS (tls_server_config) and basic authentication (basic_auth_users, "
                        "bcrypt) in the Prometheus exporter-toolkit format")
    p.add_argument("--protect-metrics", action="store_true",
                   help="require the token or a basic-auth user on / and /metrics too")
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help=f"largest request body (default {DEFAULT_MAX_BODY})")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N",
                   help=f"most observations per request (default {DEFAULT_MAX_ROWS})")
    p.add_argument("--read-timeout", type=float, default=limits.read_timeout,
                   metavar="SECONDS",
                   help="time for a request's head, and then for its body, to arrive (408 "
                        f"beyond; default {limits.read_timeout:g})")
    p.add_argument("--max-connections", type=int, default=limits.max_connections, metavar="N",
                   help="open connections per worker; more are answered 503 with Retry-After "
                        f"(default {limits.max_connections})")
    p.add_argument("--max-buffer", type=int, default=limits.max_buffer, metavar="BYTES",
                   help="request body bytes a worker holds at once; more is answered 503 with "
                        f"Retry-After (default {limits.max_buffer})")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, default=limits.threads,
                   help=f"threads per worker that run the app (default {limits.threads})")
    p.add_argument("--max-requests", type=int, default=0, metavar="N",
                   help="recycle a worker after N requests (default 0: never)")
    p.add_argument("--graceful-timeout", type=float, default=limits.graceful_timeout,
                   metavar="SECONDS",
                   help="on SIGTERM, time the requests in flight have to finish (default "
                        f"{limits.graceful_timeout:g})")
    p.add_argument("--labels-dir", metavar="DIR",
                   help="track delayed ground truth (POST /v1/models/<model>/labels): one "
                        "SQLite file of waiting predictions per model here, shared by the "
                        "workers")
    p.add_argument("--multiproc-dir", metavar="DIR",
                   help="directory of the per-worker counts files (default: "
                        "$PROMDRIFT_MULTIPROC_DIR, else a temporary directory)")
    p.add_argument("--no-coerce-numbers", dest="coerce_numbers", action="store_false",
                   help="count a string sent for a numeric feature or output as wrong_type "
                        "(default: a string spelling a number, \"27\" or \" 2.5 \", counts "
                        "as that number, as pydantic reads it, and in "
                        "promdrift_feature_coerced_total)")
    p.set_defaults(func=cmd_exporter)


def _gunicorn_app(factory: Callable[[], Any], options: Dict[str, Any],
                  server_options: Dict[str, Any]) -> Any:
    from gunicorn.app.base import BaseApplication

    class ExporterApplication(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # control_socket_disable: gunicorn >= 24 only
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return factory()

    app = ExporterApplication()
    app.server_options = server_options  # read by promdrift.exporter.service.worker.ExporterWorker
    return app


def flush_all() -> None:
    """Write what this process's monitors queued and count their deferred rows (a stopping
    exporter process)."""
    from promdrift.instrumentation.counting.monitor import shutdown_all
    from promdrift.instrumentation.counting.store import drain_all
    shutdown_all()
    drain_all()


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def cmd_exporter(args: argparse.Namespace) -> int:
    from promdrift.extras import MissingExtra, require
    from promdrift.instrumentation import Baseline, BaselineError
    from promdrift.instrumentation import gunicorn as hooks
    from promdrift.instrumentation.counting.multiprocess import ENV, check_directory

    from .limits import Limits
    from .webconfig import WebConfig

    require("exporter", "flask", "Flask")  # the app, here rather than in every worker
    try:
        host, port = parse_listen(args.listen)
        token = read_token(args.token_file) if args.token_file else None
        for name, value in (("--workers", args.workers), ("--threads", args.threads),
                            ("--max-body", args.max_body), ("--max-rows", args.max_rows)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if args.max_requests < 0:
            raise ValueError("--max-requests must be 0 or more")
        try:
            limits = Limits(read_timeout=args.read_timeout, max_connections=args.max_connections,
                            max_buffer=args.max_buffer, max_body=args.max_body,
                            threads=args.threads, graceful_timeout=args.graceful_timeout)
        except ValueError as e:
            raise ValueError(f"--{str(e).replace('_', '-')}") from None
        web = WebConfig.load(args.web_config) if args.web_config else WebConfig()
        models = [Baseline.load(path).model for path in args.baseline]  # fail fast, in the master
        if len(set(models)) != len(models):
            raise ValueError(f"two baselines have the same model name: {sorted(models)}")
    except (OSError, ValueError, BaselineError) as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    if (token or web.users) and not web.tls and not _loopback(host):
        print(f"promdrift: warning: credentials and rows reach {host} in clear text; add "
              "tls_server_config to --web-config (docs/exporter.md)", file=sys.stderr)
    options = {"max_body": args.max_body, "max_rows": args.max_rows,
               "protect_metrics": args.protect_metrics}

    def factory() -> Any:
        return make_app(args.baseline, token, labels_dir=args.labels_dir,
                        coerce_numbers=args.coerce_numbers, basic_auth=web.basic_auth(),
                        **options)

    scheme = "https" if web.tls else "http"
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        require("exporter", "gunicorn", "gunicorn")
    except MissingExtra:
        if args.workers > 1 or args.max_requests:
            print("promdrift: error: several workers and --max-requests need gunicorn: pip "
                  "install 'promdrift[exporter]' (or pass --workers 1 for a development "
                  "server)", file=sys.stderr)
            return 2
        print("promdrift: warning: gunicorn is not installed; serving with werkzeug's "
              "development server (one process, threaded, no read timeouts or connection "
              "limits). pip install 'promdrift[exporter]' for production.", file=sys.stderr)
        from werkzeug.serving import run_simple
        context = web.ssl_context()
        run_simple(host, port, factory(), threaded=True,
                   **({"ssl_context": context} if context is not None else {}))
        return 0

    require("exporter", "h11", "h11")  # the workers' HTTP server, checked before they start
    made, master = None, os.getpid()
    directory = args.multiproc_dir or os.environ.get(ENV)
    if not directory:
        directory = made = tempfile.mkdtemp(prefix="promdrift-multiproc-")
    try:
        os.environ[ENV] = check_directory(directory)
        gunicorn_options = {
            "bind": [bind], "workers": args.workers, "threads": args.threads,
            "worker_class": "promdrift.exporter.service.worker.ExporterWorker",
            "max_requests": args.max_requests,
            "max_requests_jitter": args.max_requests // 10,
            "graceful_timeout": math.ceil(args.graceful_timeout),  # gunicorn's is whole seconds
            "on_starting": hooks.on_starting, "child_exit": hooks.child_exit,
            "worker_exit": hooks.worker_exit,
            "proc_name": "promdrift-exporter", "errorlog": "-",
            "control_socket_disable": True}
        print(f"promdrift: exporter for {', '.join(models)} on {scheme}://{bind}/ "
              f"({args.workers} workers)", file=sys.stderr)
        _gunicorn_app(factory, gunicorn_options, {"limits": limits, "web_config": web}).run()
    except ValueError as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    finally:
        if made and os.getpid() == master:  # workers leave through here too
            shutil.rmtree(made, ignore_errors=True)
    return 0
