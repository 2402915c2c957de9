"""Real rule engines, Alertmanager, a webhook receiver and metrics apps for integration tests.

    with WebhookReceiver() as hook, Alertmanager(workdir, hook.url) as am, \\
            Prometheus(workdir, targets=["127.0.0.1:8000"], rule_files=rules,
                       alertmanager=am.address) as prom:
        prom.wait_up(1, timeout=30)
        prom.query("up")   # [{"metric": {...}, "value": 1.0}]

The rule engines are :class:`Prometheus` and :class:`VictoriaMetricsEngine` (single-node
:class:`VictoriaMetrics` scraping the targets, :class:`VMAlert` evaluating the rules); both
answer the same questions (:class:`RuleEngine`: ``query``, ``wait_up``,
``wait_evaluated_after``). Every server class takes its ``binary`` as a parameter (the system's
by default), so one test can run Debian's Prometheus 2 and a Prometheus 3 fetched by
scripts/fetch-engines (tests/integration/engines.py chooses them).

Everything binds to 127.0.0.1 on a free port and writes into ``workdir``. Each server is a
context manager that stops the process it started through its own ``Popen`` handle
(terminate, wait, kill on timeout). Every wait is bounded by a timeout and raises
``TimeoutError`` with the server's log tail when it runs out.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

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


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration: ``parse_duration("1m30s") == 90.0``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text):
        if m.start() != pos:
            break
        total, pos = total + float(m.group(1)) * units[m.group(2)], m.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"not a duration: {text!r}")
    return total


def scrape_config(targets: Sequence[str], interval: str, scrape_timeout: Optional[str] = None,
                  job: str = "promdrift",
                  target_labels: Optional[Mapping[str, Mapping[str, str]]] = None
                  ) -> Dict[str, Any]:
    """The Prometheus configuration that scrapes ``targets`` every ``interval`` (also read by
    VictoriaMetrics' ``-promscrape.config``). ``target_labels`` adds labels to the series of
    some targets (host:port -> labels, a static config's ``labels``), as a cluster or
    environment label would."""
    labelled = dict(target_labels or {})
    static: List[Dict[str, Any]] = [{"targets": [t for t in targets if t not in labelled]}]
    static += [{"targets": [t], "labels": dict(labels)} for t, labels in labelled.items()]
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": scrape_timeout or interval},
        "scrape_configs": [{"job_name": job,
                            "static_configs": [s for s in static if s["targets"]]}],
    }


class _Process:
    """A server binary run as a child process with its log in ``workdir``/``name``.

    ``binary`` is the executable to run; None takes ``default_binary`` (the one on PATH)."""

    name = "process"
    default_binary: Optional[str] = None

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
            raise RuntimeError(f"{self.name} is not installed")
        return self.binary

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


class Alertmanager(_Process):
    """``prometheus-alertmanager`` routing every alert to one webhook, grouped by model,
    with 1 s group wait and interval (clustering disabled)."""

    name = "alertmanager"
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


class _QueryAPI:
    """The Prometheus HTTP query API (``/api/v1/...``), which VictoriaMetrics serves too."""

    url: str
    # extra parameters of every query request (VictoriaMetrics: see its class)
    query_params: Dict[str, str] = {}

    def api(self, path: str, **params: Any) -> Any:
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


class RuleEngine(_QueryAPI):
    """A server that scrapes targets and evaluates rule groups: what a test asks of any engine
    (``query``, ``api``, ``wait_up``, ``wait_evaluated_after``).

    ``eval_delay`` is how far before its evaluation time an engine queries (0 for
    Prometheus); :meth:`rule_group_stamps` gives, per group, the timestamp of the samples its
    last evaluation wrote; :meth:`sync` makes everything the engine ingested so far visible to
    queries (a no-op on Prometheus, whose appends are visible at once).
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
            self.check_alive()
            self.sync()
            return len(self.query(f"sum_over_time(up[5m]) >= {scrapes}")) >= targets
        try:
            wait_until(all_up, timeout, interval=0.5,
                       what=f"{targets} targets up, each scraped {scrapes} times")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None

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
            self.check_alive()
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
                    self.check_alive()
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
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None
        return at


class Prometheus(RuleEngine, _Process):
    """``prometheus`` scraping ``targets`` every ``interval`` and evaluating ``rule_files``
    at the same interval, sending alerts to ``alertmanager`` (host:port) if given.
    ``target_labels``: see :func:`scrape_config`."""

    name = "prometheus"
    default_binary = PROMETHEUS

    def __init__(self, workdir: str, targets: Sequence[str], rule_files: Sequence[str] = (),
                 alertmanager: Optional[str] = None, interval: str = "1s",
                 scrape_timeout: Optional[str] = None, extra_args: Sequence[str] = (),
                 binary: Optional[str] = None,
                 target_labels: Optional[Mapping[str, Mapping[str, str]]] = None):
        super().__init__(workdir, binary)
        self.extra_args = list(extra_args)
        self.config_path = os.path.join(self.workdir, "prometheus.yml")
        config = scrape_config(targets, interval, scrape_timeout, target_labels=target_labels)
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


class VictoriaMetrics(_QueryAPI, _Process):
    """Single-node ``victoria-metrics`` scraping ``targets`` itself (``-promscrape.config``,
    the same scrape configuration as :class:`Prometheus`) and storing what :class:`VMAlert`
    writes back. Its flags, for short test windows:

    - ``-search.latencyOffset`` (default 30s): a query whose time is closer than this to now
      is moved back by it, so that fresh points are not half-ingested; 30 s would hide a
      whole fast test window. Set to ``latency_offset`` (5s), which is also vmalert's
      ``-rule.evalDelay`` as VictoriaMetrics' docs require; on this machine a sample of a known
      series became searchable 2.75 s after its scrape timestamp (the ~2 s flush of
      in-memory rows), a sample of a *new* series after up to 10 s. The tests' own queries
      pass ``nocache=1``, which disables that shift, and read at times in the past.
    - ``-search.disableCache``: no rollup result cache. The cache never serves points newer
      than ``-search.cacheTimestampOffset`` (default 5m) before now, which already covers
      a test, but a test asks again and again for the last minute; raw data only, always.
    - staleness and lookback: left at their defaults. Scraped series get Prometheus stale
      markers when they disappear; an instant query without a range looks back over its
      ``step`` (default 5m, vmalert's ``-datasource.queryStep``), like Prometheus' 5m
      ``--query.lookback-delta``.
    - ``-retentionPeriod=1d``, the minimum; ``-loggerLevel=WARN``.

    :meth:`flush` (``/internal/force_flush``) makes everything ingested so far searchable at
    once; tests call it before they read, so "what the engine has" is well defined.
    """

    name = "victoria-metrics"
    default_binary = shutil.which("victoria-metrics")
    query_params = {"nocache": "1"}

    def __init__(self, workdir: str, targets: Sequence[str], interval: str = "1s",
                 scrape_timeout: Optional[str] = None, latency_offset: str = "5s",
                 extra_args: Sequence[str] = (), binary: Optional[str] = None,
                 target_labels: Optional[Mapping[str, Mapping[str, str]]] = None):
        super().__init__(workdir, binary)
        self.latency_offset = latency_offset
        self.extra_args = list(extra_args)
        self.config_path = os.path.join(self.workdir, "scrape.yml")
        with open(self.config_path, "w") as f:
            json.dump(scrape_config(targets, interval, scrape_timeout,
                                    target_labels=target_labels), f, indent=2)

    def command(self) -> List[str]:
        return [self.executable(), f"-httpListenAddr={self.address}",
                f"-storageDataPath={os.path.join(self.workdir, 'data')}",
                f"-promscrape.config={self.config_path}",
                f"-search.latencyOffset={self.latency_offset}", "-search.disableCache",
                "-retentionPeriod=1d", "-loggerLevel=WARN", *self.extra_args]

    def flush(self) -> None:
        """Make every sample ingested so far searchable (``/internal/force_flush``)."""
        http_get(self.url + "/internal/force_flush", timeout=10)


class VMAlert(_Process):
    """``vmalert`` evaluating ``rule_files`` against a :class:`VictoriaMetrics` and writing the
    results back into it. Its flags:

    - ``-datasource.url``: the VictoriaMetrics that scrapes the targets.
    - ``-remoteWrite.url``: the same VictoriaMetrics: recording rule results and the
      ``ALERTS`` / ``ALERTS_FOR_STATE`` series are stored there, as Prometheus stores them in
      its own TSDB, so queries and dashboards read them alike.
    - ``-remoteRead.url``: the same again, to restore pending alerts' ``for:`` state after a
      restart (Prometheus restores it from its TSDB); a fresh test stack restores nothing.
    - ``-notifier.url``: the Alertmanager (``-notifier.blackhole`` without one).
    - ``-evaluationInterval`` = ``interval``, every group's interval (the rule files of the
      tests set none).
    - ``-rule.evalDelay`` = ``eval_delay`` (5s, default 30s): every query runs that long before
      the evaluation time, and the results are stamped with that earlier time. It must cover
      VictoriaMetrics' ingestion delay and equal its ``-search.latencyOffset``.
    - ``-remoteWrite.flushInterval=1s`` (default 2s): results reach VictoriaMetrics within an
      evaluation interval. A rule that reads another rule of its own group still sees that
      rule's result of an earlier evaluation: vmalert evaluates a group's rules in order but
      writes their results asynchronously (vmalert's documented limitation).
    - ``-disableAlertgroupLabel``: alerts and ``ALERTS`` carry the same labels as
      Prometheus' (no ``alertgroup``).
    - ``-datasource.queryStep`` stays 5m, Prometheus' lookback for instant selectors.
    """

    name = "vmalert"
    default_binary = shutil.which("vmalert")

    def __init__(self, workdir: str, datasource: str, rule_files: Sequence[str],
                 notifier: Optional[str] = None, interval: str = "1s", eval_delay: str = "5s",
                 extra_args: Sequence[str] = (), binary: Optional[str] = None):
        super().__init__(workdir, binary)
        self.datasource = datasource
        self.rule_files = [os.path.abspath(p) for p in rule_files]
        self.notifier = notifier
        self.interval = interval
        self.eval_delay = eval_delay
        self.extra_args = list(extra_args)

    def command(self) -> List[str]:
        notifier = [f"-notifier.url={self.notifier}"] if self.notifier else ["-notifier.blackhole"]
        return [self.executable(), f"-httpListenAddr={self.address}",
                *(f"-rule={p}" for p in self.rule_files),
                f"-datasource.url={self.datasource}", f"-remoteWrite.url={self.datasource}",
                f"-remoteRead.url={self.datasource}", *notifier,
                f"-evaluationInterval={self.interval}", f"-rule.evalDelay={self.eval_delay}",
                "-remoteWrite.flushInterval=1s", "-disableAlertgroupLabel",
                "-loggerLevel=WARN", *self.extra_args]

    def groups(self) -> List[Dict[str, Any]]:
        """The groups of ``/api/v1/rules`` (each with ``name``, ``interval``,
        ``lastEvaluation`` and its ``rules``)."""
        body = json.loads(http_get(self.url + "/api/v1/rules", timeout=10))
        return body["data"]["groups"]

    def last_evaluations(self) -> Dict[str, float]:
        """Per group name: the wall-clock start (Unix seconds) of its last evaluation
        (-inf for a group not evaluated yet)."""
        out = {}
        for g in self.groups():
            t = _rfc3339(g["lastEvaluation"])
            out[g["name"]] = t if t > 0 else -math.inf
        return out

    def remote_write_rows(self) -> Tuple[float, float]:
        """``(queued, done)``: rule results queued for remote write so far, and those sent or
        dropped so far (``done`` catches up with an earlier ``queued`` once they are out)."""
        m = {}
        for line in self.own_metrics().splitlines():
            name, _, value = line.partition(" ")
            if name in ("vmalert_remotewrite_total", "vmalert_remotewrite_sent_rows_total",
                        "vmalert_remotewrite_dropped_rows_total"):
                m[name] = float(value)
        return (m.get("vmalert_remotewrite_total", 0.0),
                m.get("vmalert_remotewrite_sent_rows_total", 0.0)
                + m.get("vmalert_remotewrite_dropped_rows_total", 0.0))


def _rfc3339(text: str) -> float:
    """Unix seconds of Go's RFC 3339 time with nanoseconds (``0001-01-01T00:00:00Z``: <= 0)."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return base.timestamp() + (float("0." + frac) if frac else 0.0)


class VictoriaMetricsEngine(RuleEngine):
    """VictoriaMetrics + vmalert as one :class:`RuleEngine`: queries go to VictoriaMetrics,
    rule evaluations are vmalert's.

    vmalert aligns each evaluation time to its interval and stamps the results with that time
    minus ``-rule.evalDelay``; :meth:`rule_group_stamps` derives that stamp from the
    wall-clock ``lastEvaluation`` of ``/api/v1/rules``. Before a test reads results,
    :meth:`wait_written` waits until vmalert has sent every result queued so far and flushes
    VictoriaMetrics.
    """

    def __init__(self, vm: VictoriaMetrics, vmalert: VMAlert):
        self.vm, self.vmalert = vm, vmalert
        self.url = vm.url
        self.query_params = vm.query_params
        self.interval = parse_duration(vmalert.interval)
        self.eval_delay = parse_duration(vmalert.eval_delay)

    def check_alive(self) -> None:
        self.vm.check_alive()
        self.vmalert.check_alive()

    def log_tail(self, lines: int = 30) -> str:
        return (f"--- victoria-metrics:\n{self.vm.log_tail(lines)}"
                f"--- vmalert:\n{self.vmalert.log_tail(lines)}")

    def rule_group_stamps(self) -> Dict[str, float]:
        return {g: math.floor(t / self.interval) * self.interval - self.eval_delay
                for g, t in self.vmalert.last_evaluations().items()}

    def sync(self) -> None:
        self.vm.flush()

    def wait_written(self, timeout: float = 30.0) -> None:
        queued, _ = self.vmalert.remote_write_rows()
        wait_until(lambda: self.vmalert.remote_write_rows()[1] >= queued, timeout, interval=0.2,
                   what="vmalert to send the results it has queued")
        self.vm.flush()

    def wait_readable(self, at: float, timeout: float = 30.0) -> None:
        """Until a query of each recording rule's bare name at ``at`` finds its series (each
        rule that wrote samples in its last evaluation).

        VictoriaMetrics can answer a selector that names only the metric (``n``, no label
        matcher) without a series that has just been written, for 5 to 10 s after the
        samples are searchable through a label matcher (``n{feature=~".+"}`` finds them at
        once; measured with VictoriaMetrics 1.145 on the drift pipeline's window counts). The
        tests read rules by their bare names, as dashboards do.
        """
        names = {r["name"] for g in self.vmalert.groups() for r in g["rules"]
                 if r.get("type") == "recording" and r.get("lastSamples", 0) > 0}

        def found() -> bool:
            names.difference_update([n for n in sorted(names) if self.query(n, at=at)])
            return not names
        try:
            wait_until(found, timeout, interval=0.5, what="every recorded series readable")
        except TimeoutError as e:
            raise TimeoutError(f"{e}: not found at {at}: {sorted(names)[:10]}") from None

    def own_metrics(self) -> str:
        """vmalert's ``/metrics`` (the rule engine's own metrics)."""
        return self.vmalert.own_metrics()


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
