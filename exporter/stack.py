"""A local Prometheus, Alertmanager and webhook receiver, each stopped by its own handle.

    >>> import tempfile
    >>> from promdrift.exporter.stack import Prometheus, scrape_config
    >>> scrape_config(["127.0.0.1:8000"], "1s")["scrape_configs"][0]["static_configs"]
    [{'targets': ['127.0.0.1:8000']}]
    >>> prom = Prometheus(tempfile.mkdtemp(), ["127.0.0.1:8000"])
    >>> prom.address.startswith("127.0.0.1:")
    True

Used as context managers they run a whole stack (``promdrift trial``, ``make demo`` and the
integration tests do)::

    with WebhookReceiver() as hook, Alertmanager(workdir, hook.url) as am, \\
            Prometheus(workdir, targets=["127.0.0.1:8000"], rule_files=rules,
                       alertmanager=am.address) as prom:
        prom.wait_up(1, timeout=30)
        prom.query("up")   # [{"metric": {...}, "value": 1.0}]

Everything binds to 127.0.0.1 on a free port and writes into ``workdir``. Each server is a
context manager that stops the process it started through its own ``Popen`` handle
(terminate, wait, kill on timeout). Every wait is bounded by a timeout and raises
``TimeoutError`` with the server's log tail when it runs out. A binary is the one given, else
the one on ``PATH``, else the one ``scripts/fetch-engines`` unpacked into a clone's
``.cache/engines/root/usr/bin`` (:func:`find_binary`); a missing one raises
:class:`MissingBinary`, which says what to install.
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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["free_port", "wait_until", "http_get", "scrape_config", "find_binary",
           "MissingBinary", "ENGINE_CACHE", "INSTALL", "Process", "Alertmanager", "QueryAPI",
           "RuleEngine", "Prometheus", "ThreadServer", "WebhookReceiver"]

#: Where ``scripts/fetch-engines`` unpacks the engines it fetches, relative to a clone.
ENGINE_CACHE = os.path.join(".cache", "engines", "root", "usr", "bin")

#: kind -> (executable names looked up, in order; how to install it).
INSTALL: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "prometheus": (("prometheus",),
                   "install Prometheus (Debian/Ubuntu: `apt-get install prometheus`; or a "
                   "release from https://prometheus.io/download/)"),
    "alertmanager": (("prometheus-alertmanager", "alertmanager"),
                     "install Alertmanager (Debian/Ubuntu: `apt-get install "
                     "prometheus-alertmanager`; or a release from "
                     "https://prometheus.io/download/)"),
}

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MissingBinary(RuntimeError):
    """A server binary that is not installed (or not executable); the message says what to
    install.

        >>> find_binary("prometheus", "/no/such/prometheus")
        Traceback (most recent call last):
        ...
        promdrift.exporter.stack.MissingBinary: prometheus: /no/such/prometheus is not an executable file
    """


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(kind: str, given: Optional[str] = None,
                cache_dirs: Optional[Sequence[str]] = None) -> str:
    """The executable of ``kind`` (``"prometheus"`` or ``"alertmanager"``): ``given`` (a path
    or a command name), else the first of its names on ``PATH``, else the one in
    :data:`ENGINE_CACHE` of the current directory or of this source tree.

        >>> find_binary("prometheus", "/bin/sh")
        '/bin/sh'
        >>> find_binary("grafana")
        Traceback (most recent call last):
        ...
        ValueError: unknown server kind 'grafana' (known: prometheus, alertmanager)

    Raises :class:`MissingBinary` naming what to install when there is none.
    """
    if kind not in INSTALL:
        raise ValueError(f"unknown server kind {kind!r} (known: {', '.join(INSTALL)})")
    names, hint = INSTALL[kind]
    if given:
        path = given if os.sep in given else (shutil.which(given) or given)
        if not _executable(path):
            raise MissingBinary(f"{kind}: {given} is not an executable file")
        return path
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    dirs = cache_dirs if cache_dirs is not None else [
        os.path.join(os.getcwd(), ENGINE_CACHE), os.path.join(_ROOT, ENGINE_CACHE)]
    for d in dirs:
        for name in names:
            if _executable(os.path.join(d, name)):
                return os.path.join(d, name)
    raise MissingBinary(f"{kind} not found: no {' or '.join(names)} on PATH or in "
                        f"{ENGINE_CACHE}; {hint}, or pass --{kind} PATH")


def _which(kind: str) -> Optional[str]:
    try:
        return find_binary(kind)
    except MissingBinary:
        return None


#: The binaries found at import (None when missing): the defaults of the server classes.
PROMETHEUS = _which("prometheus")
ALERTMANAGER = _which("alertmanager")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.2,
               what: str = "condition") -> Any:
    """Call ``condition`` until it returns something truthy; return that. Bounded in time.

        >>> calls = []
        >>> wait_until(lambda: calls.append(1) or len(calls) >= 3 and len(calls), 5, 0.01)
        3
        >>> wait_until(lambda: False, 0.05, 0.01, what="nothing")
        Traceback (most recent call last):
        ...
        TimeoutError: nothing not reached within 0 s

    ``OSError`` and ``ValueError`` (a server not listening yet, half-written JSON) count as
    "not yet"; the last one is named in the ``TimeoutError``.
    """
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
    """The body of ``GET url`` (``urllib``; an HTTP error status raises ``OSError``)."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def scrape_config(targets: Sequence[str], interval: str, scrape_timeout: Optional[str] = None,
                  job: str = "promdrift",
                  target_labels: Optional[Mapping[str, Mapping[str, str]]] = None,
                  metrics_path: str = "/metrics") -> Dict[str, Any]:
    """The Prometheus configuration that scrapes ``targets`` every ``interval`` (also read by
    VictoriaMetrics' ``-promscrape.config``).

        >>> cfg = scrape_config(["a:1", "b:2"], "1s", target_labels={"b:2": {"env": "x"}})
        >>> cfg["scrape_configs"][0]["static_configs"]
        [{'targets': ['a:1']}, {'targets': ['b:2'], 'labels': {'env': 'x'}}]

    ``target_labels`` adds labels to the series of some targets (host:port -> labels, a
    static config's ``labels``), as a cluster or environment label would; ``metrics_path``
    is the path scraped on every target."""
    labelled = dict(target_labels or {})
    static: List[Dict[str, Any]] = [{"targets": [t for t in targets if t not in labelled]}]
    static += [{"targets": [t], "labels": dict(labels)} for t, labels in labelled.items()]
    job_config: Dict[str, Any] = {"job_name": job,
                                  "static_configs": [s for s in static if s["targets"]]}
    if metrics_path != "/metrics":
        job_config["metrics_path"] = metrics_path
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": scrape_timeout or interval},
        "scrape_configs": [job_config],
    }


class Process:
    """A server binary run as a child process with its log in ``workdir``/``name``.

        >>> import tempfile
        >>> class Sleeper(Process):
        ...     name = "sleeper"
        ...     def command(self):
        ...         return [self.executable(), "-c", "sleep 30"]
        >>> s = Sleeper(tempfile.mkdtemp(), binary="/bin/sh").start()
        >>> s.check_alive()
        >>> s.stop()
        >>> s.proc is None
        True

    ``binary`` is the executable to run; None takes ``default_binary`` (the one
    :func:`find_binary` found at import). ``kind`` names its :data:`INSTALL` entry, for the
    error when there is no binary. Subclasses give :meth:`command`; ``with`` starts the
    process and waits until ``ready_path`` answers (:meth:`wait_ready`).
    """

    name = "process"
    kind: Optional[str] = None
    default_binary: Optional[str] = None
    #: the path that answers once the server is ready
    ready_path = "/-/ready"

    def __init__(self, workdir: str, binary: Optional[str] = None):
        self.workdir = os.path.join(workdir, self.name)
        os.makedirs(self.workdir, exist_ok=True)
        self.binary = binary or self.default_binary
        self.log_path = os.path.join(self.workdir, "log.txt")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.proc: Optional[subprocess.Popen] = None

    def executable(self) -> str:
        if self.binary is None:
            if self.kind in INSTALL:
                return find_binary(self.kind)  # raises MissingBinary, saying what to install
            raise MissingBinary(f"{self.name} is not installed")
        return self.binary

    def command(self) -> List[str]:
        raise NotImplementedError

    def start(self) -> "Process":
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
        """Raise ``RuntimeError`` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            self.check_alive()
            try:
                return http_get(self.url + self.ready_path, timeout=2) is not None
            except OSError:
                return False
        try:
            wait_until(ready, timeout, what=f"{self.name} ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (kill it after ``timeout`` seconds) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def own_metrics(self) -> str:
        """The server's own ``/metrics`` text."""
        return http_get(self.url + "/metrics").decode()

    def __enter__(self) -> Any:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Alertmanager(Process):
    """``prometheus-alertmanager`` routing every alert to one webhook, grouped by model,
    with 1 s group wait and interval (clustering disabled).

        >>> import tempfile
        >>> am = Alertmanager(tempfile.mkdtemp(), "http://127.0.0.1:9/alerts")
        >>> print(open(am.config_path).read().splitlines()[3])
          group_wait: 1s
    """

    name = "alertmanager"
    kind = "alertmanager"
    default_binary = ALERTMANAGER

    def __init__(self, workdir: str, webhook_url: str, config: Optional[str] = None,
                 binary: Optional[str] = None):
        super().__init__(workdir, binary)
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
        return [self.executable(), f"--config.file={self.config_path}",
                f"--storage.path={os.path.join(self.workdir, 'data')}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=", "--log.level=warn"]


class QueryAPI:
    """The Prometheus HTTP query API (``/api/v1/...``), which VictoriaMetrics serves too.

    A subclass sets ``url``; ``query_params`` are added to every request."""

    url: str
    query_params: Dict[str, str] = {}

    def api(self, path: str, **params: Any) -> Any:
        """The ``data`` of ``GET /api/v1/<path>?<params>``; ``ValueError`` unless success."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode({**self.query_params, **params})}"
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


class RuleEngine(QueryAPI):
    """A server that scrapes targets and evaluates rule groups: what is asked of any engine
    (``query``, ``api``, ``wait_up``, ``wait_evaluated_after``).

    ``eval_delay`` is how far before its evaluation time an engine queries (0 for
    Prometheus); :meth:`rule_group_stamps` gives, per group, the timestamp of the samples its
    last evaluation wrote; :meth:`sync` makes everything the engine ingested so far visible to
    queries (a no-op on Prometheus, whose appends are visible at once). A subclass is also a
    :class:`Process` (or has ``check_alive`` and ``log_tail``).
    """

    eval_delay = 0.0

    def rule_group_stamps(self) -> Dict[str, float]:
        raise NotImplementedError

    def sync(self) -> None:
        """Make every sample ingested so far visible to queries and rule evaluations."""

    def wait_written(self) -> None:
        """Until every rule result computed so far can be read back."""

    def wait_readable(self, at: float) -> None:
        """Until every recorded series of the last evaluations is found by a query at ``at``
        (Prometheus: at once)."""

    def wait_up(self, targets: int, timeout: float = 30.0, scrapes: int = 1) -> None:
        """Until each of ``targets`` targets has been scraped successfully ``scrapes`` times
        (within the last 5 minutes)."""
        def all_up() -> bool:
            self.check_alive()  # type: ignore[attr-defined]
            self.sync()
            return len(self.query(f"sum_over_time(up[5m]) >= {scrapes}")) >= targets
        try:
            wait_until(all_up, timeout, interval=0.5,
                       what=f"{targets} targets up, each scraped {scrapes} times")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None  # type: ignore[attr-defined]

    def wait_evaluated_after(self, since: float, targets: int, timeout: float = 60.0,
                             rounds: int = 1) -> float:
        """A time to read rule results at that reflects every sample up to ``since``.

        Waits until every target was scraped after ``since`` (Unix seconds) and that scrape
        was visible, then until every rule group has completed an evaluation that saw it (one
        that began once the scrape was visible and queried at or after its timestamp), and
        its results can be read. Returns a timestamp at which an instant query sees, for
        every group, a complete evaluation of that data (no rule of a later, partly written
        evaluation), however slow the machine.

        ``rounds`` > 1 waits for that many such evaluations of every group, each begun once
        the previous one's results were readable: what a rule reading another group's
        results needs (one round per hop).
        """
        last: Dict[str, Any] = {}

        def scraped() -> bool:
            self.check_alive()  # type: ignore[attr-defined]
            self.sync()
            stamps = [r["value"] for r in self.query("timestamp(up)")]
            last["stamps"] = stamps
            return len(stamps) >= targets and min(stamps) > since
        try:
            wait_until(scraped, timeout, interval=0.2, what=f"{targets} scrapes after the data")
            self.sync()
            need = max(time.time() - self.eval_delay, max(last["stamps"]))
            for _ in range(rounds):
                def started() -> Optional[Dict[str, float]]:
                    self.check_alive()  # type: ignore[attr-defined]
                    groups = self.rule_group_stamps()
                    return groups if groups and min(groups.values()) > need else None
                at = max(wait_until(started, timeout, interval=0.2,
                                    what="an evaluation of every group after the data").values())

                def finished() -> bool:  # a later evaluation began: the one before `at` ended
                    return min(self.rule_group_stamps().values()) > at
                wait_until(finished, timeout, interval=0.2, what="those evaluations to finish")
                self.wait_written()
                self.wait_readable(at)
                need = max(time.time() - self.eval_delay, at)
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None  # type: ignore[attr-defined]
        return at


class Prometheus(RuleEngine, Process):
    """``prometheus`` scraping ``targets`` every ``interval`` and evaluating ``rule_files``
    at the same interval, sending alerts to ``alertmanager`` (host:port) if given.

        >>> import json, tempfile
        >>> prom = Prometheus(tempfile.mkdtemp(), ["127.0.0.1:8000"], ["rules.yml"],
        ...                   alertmanager="127.0.0.1:9093", interval="2s")
        >>> config = json.load(open(prom.config_path))
        >>> config["global"]["evaluation_interval"], config["alerting"]["alertmanagers"]
        ('2s', [{'static_configs': [{'targets': ['127.0.0.1:9093']}]}])

    ``target_labels`` and ``metrics_path``: see :func:`scrape_config`."""

    name = "prometheus"
    kind = "prometheus"
    default_binary = PROMETHEUS

    def __init__(self, workdir: str, targets: Sequence[str], rule_files: Sequence[str] = (),
                 alertmanager: Optional[str] = None, interval: str = "1s",
                 scrape_timeout: Optional[str] = None, extra_args: Sequence[str] = (),
                 binary: Optional[str] = None,
                 target_labels: Optional[Mapping[str, Mapping[str, str]]] = None,
                 metrics_path: str = "/metrics"):
        super().__init__(workdir, binary)
        self.extra_args = list(extra_args)
        self.config_path = os.path.join(self.workdir, "prometheus.yml")
        config = scrape_config(targets, interval, scrape_timeout, target_labels=target_labels,
                               metrics_path=metrics_path)
        config["global"]["evaluation_interval"] = interval
        config["rule_files"] = [os.path.abspath(p) for p in rule_files]
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager]}]}]}
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)  # JSON is YAML

    def command(self) -> List[str]:
        return [self.executable(), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
                f"--web.listen-address={self.address}", "--log.level=warn",
                *self.extra_args]

    def targets(self) -> List[Dict[str, Any]]:
        """The active targets of ``/api/v1/targets`` (``scrapeUrl``, ``health``,
        ``lastError``, ``labels`` ...)."""
        return list(self.api("targets").get("activeTargets", []))

    def rule_group_evaluations(self) -> Dict[str, float]:
        """Per rule group name: the start time (Unix seconds) of its last evaluation."""
        out: Dict[str, float] = {}
        for line in self.own_metrics().splitlines():
            if line.startswith("prometheus_rule_group_last_evaluation_timestamp_seconds{"):
                labels, _, value = line.rpartition(" ")
                group = labels.split('rule_group="', 1)[1].split('"', 1)[0].rsplit(";", 1)[-1]
                out[group] = float(value)
        return out

    def rule_group_stamps(self) -> Dict[str, float]:
        """A Prometheus group stamps its results with its evaluation's start time."""
        return self.rule_group_evaluations()


class ThreadServer:
    """A server object serving from a daemon thread while its ``with`` block is open, then
    shut down, closed and joined. Subclasses call :meth:`_serve` with the bound server
    (see :class:`WebhookReceiver`)."""

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


class WebhookReceiver(ThreadServer):
    """An Alertmanager webhook endpoint on 127.0.0.1 that records every posted payload.

        >>> import json, urllib.request
        >>> with WebhookReceiver() as hook:
        ...     body = json.dumps({"alerts": [{"labels": {"alertname": "A"}}]}).encode()
        ...     _ = urllib.request.urlopen(urllib.request.Request(hook.url, data=body))
        ...     [a["labels"] for a in hook.alerts()]
        [{'alertname': 'A'}]

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
