"""``promdrift trial``: the shipped alerts against your own model server, firing in minutes.

    promdrift trial --target 127.0.0.1:8000                  # until Ctrl-C
    promdrift trial --target 127.0.0.1:8000 --until-alerts 1 --duration 300
    promdrift trial --target 10.0.0.5:8000 --target 10.0.0.6:8000 --metrics-path /drift/metrics
    promdrift trial --target 127.0.0.1:8000 --set min_samples=100 --time-scale 30

It starts a local Prometheus and Alertmanager (on 127.0.0.1, free ports) with the rules and
alerts that ``promdrift rules`` generates, every duration divided by the time scale (default
60: the ``1h`` window covers the last minute, the ``5m`` window 5 s, ``for: 15m`` is 15 s;
names, thresholds and alert texts are the production ones). Prometheus scrapes the model
server(s) every second, and every alert Alertmanager delivers to the trial's webhook is
printed as it arrives. Ctrl-C or SIGTERM stops every process it started.

The rule files and options, without starting anything:

    >>> import os, tempfile
    >>> from promdrift.exporter.trial import trial_config, write_rules, parse_target
    >>> config = trial_config(time_scale=60, settings=["min_samples=100"])
    >>> config.range("1h"), config.range("5m"), config.pending_for("PromdriftFeatureDrift")
    ('1m', '5s', '15s')
    >>> [os.path.basename(p) for p in write_rules(config, tempfile.mkdtemp())]
    ['rules.yml', 'alerts.yml']
    >>> parse_target("http://127.0.0.1:8000/metrics")
    Traceback (most recent call last):
    ...
    promdrift.exporter.trial.TrialError: --target 'http://127.0.0.1:8000/metrics': give HOST:PORT without a scheme or path (the path goes into --metrics-path)

The local stack is :mod:`promdrift.exporter.stack`; ``make demo`` uses the same pieces.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from promdrift.promql import RulesConfig, generate
from promdrift.promql.config import ALERT_NAMES, config_from_args, parse_duration

from .stack import Alertmanager, MissingBinary, Prometheus, WebhookReceiver, find_binary

__all__ = ["TrialError", "Trial", "AlertLog", "describe", "trial_config", "write_rules",
           "parse_target", "add_parser", "cmd_trial", "DEFAULT_TIME_SCALE"]

#: The default time scale: every duration of the rules divided by 60 (an hour is a minute).
DEFAULT_TIME_SCALE = 60.0
#: Scrape and evaluation interval of the trial's Prometheus.
INTERVAL = "1s"
#: The recording rules whose first values the trial reports.
RECORDED = '{__name__=~"model_(feature|output):promdrift_.+"}'


class TrialError(Exception):
    """A trial that cannot start or run: the message names the bad input and the fix."""


def parse_target(text: str) -> str:
    """``HOST:PORT`` of a model server to scrape, checked.

        >>> parse_target(" 127.0.0.1:8000 "), parse_target("[::1]:9108")
        ('127.0.0.1:8000', '[::1]:9108')
        >>> parse_target("127.0.0.1")
        Traceback (most recent call last):
        ...
        promdrift.exporter.trial.TrialError: --target '127.0.0.1': expected HOST:PORT, e.g. 127.0.0.1:8000
    """
    target = text.strip()
    if "://" in target or "/" in target:
        raise TrialError(f"--target {text!r}: give HOST:PORT without a scheme or path "
                         f"(the path goes into --metrics-path)")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port:
        raise TrialError(f"--target {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TrialError(f"--target {text!r}: port {port!r} is not a number from 1 to 65535")
    if any(c.isspace() for c in host) or (":" in host and not host.startswith("[")):
        raise TrialError(f"--target {text!r}: {host!r} is not a host name or address "
                         f"(an IPv6 address goes in brackets: [::1]:8000)")
    return target


def trial_config(time_scale: float = DEFAULT_TIME_SCALE, settings: Sequence[str] = (),
                 base: Optional[RulesConfig] = None) -> RulesConfig:
    """The generator options of a trial: ``base`` (default: the shipped configuration) with
    every duration divided by ``time_scale`` and the thresholds of ``settings``
    (``NAME=VALUE``, as ``promdrift rules --set``)."""
    try:
        return config_from_args(base or RulesConfig(), settings=settings, time_scale=time_scale)
    except ValueError as e:
        raise TrialError(str(e)) from None


def write_rules(config: RulesConfig, outdir: str) -> List[str]:
    """Write ``config``'s ``rules.yml`` and ``alerts.yml`` into ``outdir``; return the
    paths Prometheus loads."""
    paths = generate(config, outdir, dashboards=False)
    return [p for p in paths if p.endswith(("rules.yml", "alerts.yml"))]


def describe(alert: Dict[str, Any], width: Optional[int] = None) -> str:
    """One line of an alert as Alertmanager's webhook delivers it.

        >>> describe({"labels": {"alertname": "PromdriftFeatureDrift", "severity": "warning",
        ...                      "model": "wine", "feature": "alcohol"},
        ...           "annotations": {"description": "KS 0.4"}})
        'PromdriftFeatureDrift [warning] wine/alcohol: KS 0.4'
    """
    labels = alert.get("labels", {})
    what = labels.get("model", "")
    column = labels.get("feature") or labels.get("output")
    if column:
        what = f"{what}/{column}" if what else column
    desc = alert.get("annotations", {}).get("description", "").strip().replace("\n", " ")
    if width is not None:
        desc = desc[:width]
    return f"{labels.get('alertname')} [{labels.get('severity', '?')}] {what}: {desc}"


class AlertLog:
    """Firing alerts delivered to a :class:`~promdrift.exporter.stack.WebhookReceiver`,
    each once (Alertmanager re-sends a group's alerts with every notification).

        >>> class Hook:
        ...     def alerts(self):
        ...         a = {"status": "firing", "labels": {"alertname": "A", "model": "m"}}
        ...         return [a, dict(a), {"status": "resolved", "labels": {"alertname": "B"}}]
        >>> log = AlertLog(Hook())
        >>> [a["labels"]["alertname"] for a in log.new()], log.new()
        (['A'], [])
    """

    def __init__(self, hook: Any):
        self.hook = hook
        self.seen: Dict[Tuple[str, ...], Dict[str, Any]] = {}

    def new(self) -> List[Dict[str, Any]]:
        """The firing alerts not returned before, in order of arrival."""
        out = []
        for a in self.hook.alerts():
            if a.get("status") != "firing":
                continue
            labels = a["labels"]
            key = (labels.get("alertname", ""), labels.get("model", ""),
                   labels.get("feature", ""), labels.get("output", ""), labels.get("reason", ""))
            if key not in self.seen:
                self.seen[key] = a
                out.append(a)
        return out


class Trial:
    """A local Prometheus + Alertmanager + webhook receiver running the time-scaled rules
    against ``targets``, printing to ``out`` what happens.

        trial = Trial(["127.0.0.1:8000"], until_alerts=1, duration=300)
        status = trial.run()      # 0: the alerts arrived; 1: not within the duration

    Binaries: ``prometheus`` / ``alertmanager`` paths, else :func:`find_binary`'s. Raises
    :class:`TrialError` for a bad option, a missing binary or a target that is not up within
    ``up_timeout`` seconds (naming Prometheus' scrape error).
    """

    def __init__(self, targets: Sequence[str], *, metrics_path: str = "/metrics",
                 time_scale: float = DEFAULT_TIME_SCALE, settings: Sequence[str] = (),
                 duration: Optional[float] = None, until_alerts: Optional[int] = None,
                 keep_running: bool = False, workdir: Optional[str] = None,
                 prometheus: Optional[str] = None, alertmanager: Optional[str] = None,
                 up_timeout: float = 60.0, out: TextIO = sys.stdout,
                 clock: Callable[[], float] = time.monotonic):
        if not targets:
            raise TrialError("give at least one --target HOST:PORT (your model server)")
        self.targets = [parse_target(t) for t in targets]
        if len(set(self.targets)) != len(self.targets):
            raise TrialError(f"--target: a target is given twice in {self.targets}")
        if not metrics_path.startswith("/"):
            raise TrialError(f"--metrics-path {metrics_path!r}: must start with /")
        self.metrics_path = metrics_path
        if duration is not None and not duration > 0:
            raise TrialError(f"--duration {duration!r}: must be a positive number of seconds")
        if until_alerts is not None and until_alerts < 1:
            raise TrialError(f"--until-alerts {until_alerts!r}: must be at least 1")
        self.duration, self.until_alerts, self.keep_running = duration, until_alerts, keep_running
        self.config = trial_config(time_scale, settings)
        shortest = min(parse_duration(self.config.range(w)) for w in self.config.windows)
        if shortest < 4:
            raise TrialError(f"--time-scale {time_scale:g}: the shortest window would be "
                             f"{shortest:.2g} s, fewer than 4 scrapes at {INTERVAL}; use a "
                             f"smaller time scale")
        try:
            self.prometheus = find_binary("prometheus", prometheus)
            self.alertmanager = find_binary("alertmanager", alertmanager)
        except MissingBinary as e:
            raise TrialError(str(e)) from None
        self.workdir = workdir
        self.up_timeout = up_timeout
        self.out = out
        self.clock = clock
        self.alerts: List[Dict[str, Any]] = []

    # ------------------------------------------------------------------ output
    def say(self, msg: str) -> None:
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"[{now} +{self.clock() - self.t0:4.0f}s] {msg}", file=self.out, flush=True)

    def _scale_line(self) -> str:
        c = self.config
        windows = ", ".join(f"{w} window {c.range(w)}" for w in c.windows)
        alert = "PromdriftFeatureDrift"
        return (f"time scale {c.time_scale:g}: {windows}; {alert} for: {ALERT_NAMES[alert]} is "
                f"{c.pending_for(alert)}; an alert needs at least "
                f"{c.thresholds.min_samples} values in the {c.alert_window} window "
                f"({c.range(c.alert_window)})")

    # ------------------------------------------------------------------ checks
    def _targets_up(self, prom: Prometheus) -> bool:
        targets = prom.targets()
        return len(targets) == len(self.targets) and all(t.get("health") == "up"
                                                         for t in targets)

    def _wait_targets(self, prom: Prometheus) -> None:
        deadline = self.clock() + self.up_timeout
        while self.clock() < deadline:
            prom.check_alive()
            with contextlib.suppress(OSError, ValueError):
                if self._targets_up(prom):
                    return
            time.sleep(0.5)
        down = []
        with contextlib.suppress(OSError, ValueError):
            down = [f"{t.get('scrapeUrl')}: {t.get('lastError') or 'not scraped yet'}"
                    for t in prom.targets() if t.get("health") != "up"]
        raise TrialError(
            f"target(s) not up after {self.up_timeout:g} s: " + ("; ".join(down) or "no scrape")
            + ". Is the model server running on that address, and does it serve promdrift's "
              "metrics at --metrics-path (default /metrics; monitor.instrument(app) adds it)?")

    def _models(self, prom: Prometheus) -> List[str]:
        return sorted({r["metric"].get("model", "?")
                       for r in prom.query("promdrift_baseline_info")})

    def _recorded(self, prom: Prometheus) -> Dict[str, int]:
        return {r["metric"].get("model", "?"): int(r["value"])
                for r in prom.query(f"count by (model) ({RECORDED})")}

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Start the stack, print status lines and alerts, stop by itself (``duration``,
        ``until_alerts``) or on Ctrl-C / SIGTERM; return the exit status (0, or 1 when
        ``until_alerts`` alerts did not arrive within ``duration``)."""
        self.t0 = self.clock()
        with contextlib.ExitStack() as stack:
            workdir = self.workdir
            if workdir is None:
                workdir = tempfile.mkdtemp(prefix="promdrift-trial-")
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            workdir = os.path.abspath(workdir)
            rules = write_rules(self.config, os.path.join(workdir, "rules"))
            self.say(f"rules: {', '.join(rules)}")
            self.say(self._scale_line())
            hook = stack.enter_context(WebhookReceiver())
            am = stack.enter_context(Alertmanager(workdir, hook.url, binary=self.alertmanager))
            prom = stack.enter_context(Prometheus(
                workdir, self.targets, rules, alertmanager=am.address, interval=INTERVAL,
                binary=self.prometheus, metrics_path=self.metrics_path))
            self.say(f"Prometheus {prom.url} (scraping {', '.join(self.targets)} at "
                     f"{self.metrics_path} every {INTERVAL}), Alertmanager {am.url}")
            self.say("waiting for the first scrape ...")
            self._wait_targets(prom)
            models = self._models(prom)
            if models:
                self.say(f"targets up: {', '.join(self.targets)}; models: {', '.join(models)}")
            else:
                self.say(f"targets up: {', '.join(self.targets)}, but no promdrift_baseline_info "
                         f"series: is a DriftMonitor serving its metrics at {self.metrics_path}?")
            self.say("send traffic to your model server; alerts are printed as Alertmanager "
                     "delivers them" + ("" if self.duration or self.until_alerts
                                        else " (Ctrl-C stops)"))
            return self._watch(prom, am, hook)
        return 1  # not reached (the with block returns or raises)

    def _health(self, prom: Prometheus, health: Dict[str, str]) -> None:
        """Say when a target goes down (with Prometheus' scrape error) or comes back."""
        with contextlib.suppress(OSError, ValueError):
            for t in prom.targets():
                url, now = t.get("scrapeUrl", "?"), t.get("health", "unknown")
                if now == "unknown" or health.get(url, "up") == now:
                    health[url] = health.get(url, now)
                    continue
                health[url] = now
                self.say(f"target {url} is up again" if now == "up" else
                         f"target {url} is {now}: {t.get('lastError') or 'no answer'}")

    def _watch(self, prom: Prometheus, am: Alertmanager, hook: WebhookReceiver) -> int:
        log = AlertLog(hook)
        recorded_seen = False
        end = None if self.duration is None else self.clock() + self.duration
        done = False
        health: Dict[str, str] = {}
        while True:
            prom.check_alive()
            am.check_alive()
            self._health(prom, health)
            if not recorded_seen:
                with contextlib.suppress(OSError, ValueError):
                    recorded = self._recorded(prom)
                    if recorded:
                        recorded_seen = True
                        self.say("first rule values: " + ", ".join(
                            f"{n} recorded series of model {m}" for m, n in sorted(recorded.items())))
            for a in log.new():
                self.alerts.append(a)
                self.say(f"ALERT {describe(a)}")
            if not done:
                reached = self.until_alerts is not None and len(self.alerts) >= self.until_alerts
                timed_out = end is not None and self.clock() >= end
                if reached or timed_out:
                    done = True
                    status = 1 if (self.until_alerts is not None and not reached) else 0
                    self.say(self._summary(reached))
                    if not self.keep_running:
                        return status
                    self.say("--keep-running: the stack stays up; Ctrl-C stops it")
            time.sleep(0.5)

    def _summary(self, reached: bool) -> str:
        n = len(self.alerts)
        if self.until_alerts is not None and not reached:
            return (f"stopping: {n} of {self.until_alerts} alert(s) within {self.duration:g} s. "
                    f"Did the model server get at least {self.config.thresholds.min_samples} "
                    f"drifted requests within {self.config.range(self.config.alert_window)}?")
        return f"stopping: {n} alert(s) delivered"


def cmd_trial(args: argparse.Namespace) -> int:
    try:
        trial = Trial(args.target or [], metrics_path=args.metrics_path,
                      time_scale=args.time_scale, settings=args.set or (),
                      duration=args.duration, until_alerts=args.until_alerts,
                      keep_running=args.keep_running, workdir=args.workdir,
                      prometheus=args.prometheus, alertmanager=args.alertmanager,
                      up_timeout=args.up_timeout)
    except TrialError as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C: the ExitStack stops every process by its handle.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return trial.run()
    except TrialError as e:
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError) as e:  # a server exited or never became ready
        print(f"promdrift: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"promdrift trial: interrupted after {len(trial.alerts)} alert(s); every "
              f"process it started has been stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt()


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """The ``promdrift trial`` subcommand."""
    p = sub.add_parser(
        "trial", help="try the shipped alerts on your own model server, in minutes",
        description="Start a local Prometheus and Alertmanager with promdrift's rules and "
                    "alerts on a shorter time scale, scraping your model server(s), and print "
                    "every alert as Alertmanager delivers it. Ctrl-C stops everything.",
        epilog="Binaries: prometheus and prometheus-alertmanager (or alertmanager) from PATH, "
               "else .cache/engines/root/usr/bin of a promdrift clone (scripts/fetch-engines); "
               "Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager.")
    p.add_argument("--target", action="append", metavar="HOST:PORT",
                   help="a model server serving promdrift's metrics (repeatable)")
    p.add_argument("--metrics-path", default="/metrics",
                   help="path of the metrics on every target (default /metrics)")
    p.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE, metavar="X",
                   help=f"divide every window and for: by X (default {DEFAULT_TIME_SCALE:g}: "
                        "the 1h window is 1 minute)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a threshold, as promdrift rules --set (e.g. min_samples=100)")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--until-alerts", type=int, metavar="N",
                   help="stop once N distinct alerts have arrived (exit 1 if --duration ends "
                        "first)")
    p.add_argument("--keep-running", action="store_true",
                   help="after --duration / --until-alerts, keep the stack up until Ctrl-C")
    p.add_argument("--workdir", metavar="DIR",
                   help="keep the rules, configs, logs and data here (default: a temporary "
                        "directory, removed at the end)")
    p.add_argument("--prometheus", metavar="PATH", help="the prometheus binary to run")
    p.add_argument("--alertmanager", metavar="PATH", help="the alertmanager binary to run")
    p.add_argument("--up-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up when a target is not up within this time (default 60)")
    p.set_defaults(func=cmd_trial)
