"""Real rule engines, Alertmanager, a webhook receiver and metrics apps for integration tests.

    with WebhookReceiver() as hook, Alertmanager(workdir, hook.url) as am, \\
            Prometheus(workdir, targets=["127.0.0.1:8000"], rule_files=rules,
                       alertmanager=am.address) as prom:
        prom.wait_up(1, timeout=30)
        prom.query("up")   # [{"metric": {...}, "value": 1.0}]

The local stack that ``promdrift trial`` and ``make demo`` run is the package's
(:mod:`promdrift.exporter.stack`: ``free_port``, ``wait_until``, ``http_get``,
``scrape_config``, ``Alertmanager``, ``RuleEngine``, ``Prometheus``, ``WebhookReceiver`` and
their bases), re-exported here; this module adds what only the tests run:
:class:`VictoriaMetricsEngine` (single-node :class:`VictoriaMetrics` scraping the targets,
:class:`VMAlert` evaluating the rules), which answers the same questions as
:class:`Prometheus` (:class:`RuleEngine`: ``query``, ``wait_up``, ``wait_evaluated_after``),
and :class:`AppServer`. Every server class takes its ``binary`` as a parameter (the system's
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
import shutil
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from promdrift.exporter.stack import (  # noqa: F401 (re-exported for the tests)
    ALERTMANAGER, PROMETHEUS, Alertmanager, Prometheus, RuleEngine, WebhookReceiver, free_port,
    http_get, scrape_config, wait_until)
from promdrift.exporter.stack import Process as _Process
from promdrift.exporter.stack import QueryAPI as _QueryAPI
from promdrift.exporter.stack import ThreadServer as _ThreadServer
from promdrift.promql.config import parse_duration


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
