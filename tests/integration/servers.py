"""Real Prometheus, Alertmanager, a webhook receiver and metrics apps for integration tests.

    with WebhookReceiver() as hook, Alertmanager(workdir, hook.url) as am, \\
            Prometheus(workdir, targets=["127.0.0.1:8000"], rule_files=rules,
                       alertmanager=am.address) as prom:
        prom.wait_up(1, timeout=30)
        prom.query("up")   # [{"metric": {...}, "value": 1.0}]

Everything binds to 127.0.0.1 on a free port and writes into ``workdir``. Each server is a
context manager that stops the process it started through its own ``Popen`` handle
(terminate, wait, kill on timeout). Every wait is bounded by a timeout and raises
``TimeoutError`` with the server's log tail when it runs out.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.2,
               what: str = "condition") -> Any:
    """Call ``condition`` until it returns something truthy; return that. Bounded in time."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except (OSError, ValueError) as e:  # server not listening yet, bad JSON mid-restart
            last_error = e
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s"
                               + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class _Process:
    """A server binary run as a child process with its log in ``workdir``."""

    name = "process"

    def __init__(self, workdir: str):
        self.workdir = os.path.join(workdir, self.name)
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "log.txt")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.proc: Optional[subprocess.Popen] = None

    def command(self) -> List[str]:
        raise NotImplementedError

    def start(self) -> "_Process":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            self.check_alive()
            try:
                return http_get(self.url + "/-/ready", timeout=2) is not None
            except OSError:
                return False
        try:
            wait_until(ready, timeout, what=f"{self.name} ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> "_Process":
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Alertmanager(_Process):
    """``prometheus-alertmanager`` routing every alert to one webhook, grouped by model,
    with 1 s group wait and interval (clustering disabled)."""

    name = "alertmanager"

    def __init__(self, workdir: str, webhook_url: str, config: Optional[str] = None):
        super().__init__(workdir)
        self.config_path = os.path.join(self.workdir, "alertmanager.yml")
        with open(self.config_path, "w") as f:
            f.write(config if config is not None else self.default_config(webhook_url))

    @staticmethod
    def default_config(webhook_url: str) -> str:
        return (
            "route:\n"
            "  receiver: webhook\n"
            "  group_by: [model]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: webhook\n"
            "    webhook_configs:\n"
            f"      - url: {json.dumps(webhook_url)}\n"
            "        send_resolved: false\n"
        )

    def command(self) -> List[str]:
        if ALERTMANAGER is None:
            raise RuntimeError("prometheus-alertmanager is not installed")
        return [ALERTMANAGER, f"--config.file={self.config_path}",
                f"--storage.path={os.path.join(self.workdir, 'data')}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=", "--log.level=warn"]


class Prometheus(_Process):
    """``prometheus`` scraping ``targets`` every ``interval`` and evaluating ``rule_files``
    at the same interval, sending alerts to ``alertmanager`` (host:port) if given.
    ``target_labels`` adds labels to the series of some targets (host:port -> labels, a
    static config's ``labels``), as a cluster or environment label would."""

    name = "prometheus"

    def __init__(self, workdir: str, targets: Sequence[str], rule_files: Sequence[str] = (),
                 alertmanager: Optional[str] = None, interval: str = "1s",
                 scrape_timeout: Optional[str] = None, extra_args: Sequence[str] = (),
                 target_labels: Optional[Mapping[str, Mapping[str, str]]] = None):
        super().__init__(workdir)
        self.extra_args = list(extra_args)
        self.config_path = os.path.join(self.workdir, "prometheus.yml")
        labelled = dict(target_labels or {})
        static: List[Dict[str, Any]] = [{"targets": [t for t in targets if t not in labelled]}]
        static += [{"targets": [t], "labels": dict(labels)} for t, labels in labelled.items()]
        config: Dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": scrape_timeout or interval},
            "rule_files": [os.path.abspath(p) for p in rule_files],
            "scrape_configs": [{"job_name": "promdrift",
                                "static_configs": [s for s in static if s["targets"]]}],
        }
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager]}]}]}
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)  # JSON is YAML

    def command(self) -> List[str]:
        if PROMETHEUS is None:
            raise RuntimeError("prometheus is not installed")
        return [PROMETHEUS, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
                f"--web.listen-address={self.address}", "--log.level=warn",
                *self.extra_args]

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        body = json.loads(http_get(url, timeout=10))
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: Optional[float] = None) -> List[Dict[str, Any]]:
        """Instant query: a list of ``{"metric": {labels}, "value": float}``."""
        params: Dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        if data["resultType"] != "vector":
            raise ValueError(f"{expr}: {data['resultType']} result, expected a vector")
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def wait_up(self, targets: int, timeout: float = 30.0) -> None:
        """Until ``targets`` targets have been scraped successfully (``up == 1``)."""
        def all_up() -> bool:
            self.check_alive()
            return len(self.query("up == 1")) >= targets
        try:
            wait_until(all_up, timeout, interval=0.5, what=f"{targets} targets up")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None

    def rule_group_evaluations(self) -> Dict[str, float]:
        """Per rule group name: the start time (Unix seconds) of its last evaluation."""
        out: Dict[str, float] = {}
        for line in self.own_metrics().splitlines():
            if line.startswith("prometheus_rule_group_last_evaluation_timestamp_seconds{"):
                labels, _, value = line.rpartition(" ")
                group = labels.split('rule_group="', 1)[1].split('"', 1)[0].rsplit(";", 1)[-1]
                out[group] = float(value)
        return out

    def wait_evaluated_after(self, since: float, targets: int, timeout: float = 60.0) -> float:
        """A time to read rule results at that reflects every sample up to ``since``.

        Waits until every target was scraped after ``since`` (Unix seconds) and that scrape
        was visible, then until every rule group has completed an evaluation that started
        after that moment. Returns a timestamp at which an instant query sees, for every
        group, a complete evaluation of that data (no rule of a later, partly written
        evaluation), however slow the machine.
        """
        def scraped() -> bool:
            self.check_alive()
            stamps = [r["value"] for r in self.query("timestamp(up)")]
            return len(stamps) >= targets and min(stamps) > since
        wait_until(scraped, timeout, interval=0.2, what=f"{targets} scrapes after the data")
        visible = time.time()

        def started() -> Optional[Dict[str, float]]:
            groups = self.rule_group_evaluations()
            return groups if groups and min(groups.values()) > visible else None
        at = max(wait_until(started, timeout, interval=0.2,
                            what="an evaluation of every group after the scrapes").values())

        def finished() -> bool:  # a later evaluation started, so the one before `at` ended
            groups = self.rule_group_evaluations()
            return min(groups.values()) > at
        wait_until(finished, timeout, interval=0.2, what="those evaluations to finish")
        return at

    def own_metrics(self) -> str:
        """Prometheus' own ``/metrics`` text."""
        return http_get(self.url + "/metrics").decode()


class _ThreadServer:
    """A server object serving from a daemon thread while its ``with`` block is open, then
    shut down, closed and joined. Subclasses call :meth:`_serve` with the bound server."""

    def _serve(self, server: Any, name: str) -> None:
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True, name=name)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class WebhookReceiver(_ThreadServer):
    """An Alertmanager webhook endpoint on 127.0.0.1 that records every posted payload.

    ``received`` is a list of ``(monotonic_time, payload)``; ``alerts()`` flattens them.
    """

    def __init__(self) -> None:
        self.received: List[Any] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"invalid_json": body.decode(errors="replace")}
                with receiver._lock:
                    receiver.received.append((time.monotonic(), payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "webhook-receiver")
        self.url = f"http://127.0.0.1:{self.port}/alerts"

    def alerts(self) -> List[Dict[str, Any]]:
        """Every alert of every payload, each with ``received_at`` (monotonic seconds)."""
        with self._lock:
            items = list(self.received)
        return [{**a, "received_at": t} for t, p in items for a in p.get("alerts", [])]



class AppServer(_ThreadServer):
    """A WSGI app (a Flask app with promdrift's ``/metrics``, say) served on 127.0.0.1 from
    a thread."""

    def __init__(self, app: Any):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._serve(server, f"app-{server.server_port}")
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
