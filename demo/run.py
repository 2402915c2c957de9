"""``make demo``: the whole promdrift loop on this machine, no Docker, in a few minutes.

    .venv/bin/python demo/run.py                  # what `make demo` runs
    .venv/bin/python demo/run.py --keep-running   # leave the stack up at the end (Ctrl-C stops)

1. train a small numpy model on the Palmer penguins data set and fit its drift baseline;
2. start the instrumented model server (demo/app.py), a webhook receiver, Alertmanager and
   Prometheus (the local Debian binaries) loaded with the shipped promql/ rules and alerts;
3. replay normal traffic, then drifted traffic (a shift, invalid values, an unseen island),
   printing the live drift statistics read from Prometheus and each alert as Alertmanager
   delivers it;
4. print a summary and the URLs it served, and stop every process it started.

Demo time scale: the rules are the shipped ones with their windows shortened so that a run
takes minutes, not hours (``5m`` -> 30 s, ``1h`` -> 60 s, every ``for:`` -> 10 s; rule names
keep their suffixes). Prometheus scrapes and evaluates every second. Everything binds to
127.0.0.1; logs and data are kept in ``.demo/`` for a look afterwards.

The exit status is 0 when at least one drift alert arrived during the drift phase and none
during the normal phase.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import model as demo_model  # noqa: E402
from traffic import Traffic  # noqa: E402

from promdrift.exporter.stack import (ALERTMANAGER, PROMETHEUS, Alertmanager,  # noqa: E402
                                      Process, Prometheus, WebhookReceiver)
from promdrift.exporter.trial import AlertLog, describe, write_rules  # noqa: E402
from promdrift.promql import RulesConfig  # noqa: E402

WINDOWS = {"5m": "30s", "1h": "60s"}
PENDING = "10s"
#: Alerts that mean "the data drifted" (as opposed to plumbing alerts).
DRIFT_ALERTS = ("PromdriftFeatureDrift", "PromdriftPredictionDrift",
                "PromdriftPredictionClassDrift", "PromdriftFeaturePSIHigh",
                "PromdriftCategoricalDrift", "PromdriftUnseenCategoryShareHigh",
                "PromdriftInvalidValuesHigh")


class ModelServer(Process):
    """demo/app.py as a child process on 127.0.0.1 (log in ``workdir``/model-server),
    stopped through its handle."""

    name = "model-server"
    ready_path = "/healthz"

    def __init__(self, workdir: str, capture_dir: Optional[str] = None,
                 python: str = sys.executable):
        super().__init__(workdir, binary=python)
        self.app_args = ["--workdir", workdir, "--listen", self.address]
        if capture_dir:
            self.app_args += ["--capture-dir", capture_dir]

    def command(self) -> List[str]:
        return [self.executable(), os.path.join(HERE, "app.py"), *self.app_args]

    def wait_ready(self, timeout: float = 60.0) -> None:
        super().wait_ready(timeout)


def _fmt(v: Optional[float], pct: bool = False) -> str:
    if v is None or math.isnan(v):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


class Stats:
    """The live drift statistics of the demo model, read from Prometheus' HTTP API."""

    QUERIES = {
        "ks": "model_feature:promdrift_ks_statistic:1h",
        "crit": "model_feature:promdrift_ks_critical:1h",
        "psi": "model_feature:promdrift_psi:1h",
        "tvd": "model_feature:promdrift_category_tvd:1h",
        "unseen": "model_feature:promdrift_category_unseen:ratio1h",
        "invalid": "model_feature:promdrift_invalid:ratio_rate5m",
    }
    OUTPUT_QUERIES = {
        "ks": "model_output:promdrift_prediction_ks_statistic:1h",
        "crit": "model_output:promdrift_prediction_ks_critical:1h",
        "tvd": "model_output:promdrift_prediction_class_tvd:1h",
    }

    def __init__(self, prom: Prometheus):
        self.prom = prom

    def _collect(self, queries: Dict[str, str], label: str) -> Dict[str, Dict[str, float]]:
        out: Dict[str, Dict[str, float]] = {}
        for key, expr in queries.items():
            try:
                result = self.prom.query(f'{expr}{{model="{demo_model.MODEL_NAME}"}}')
            except (OSError, ValueError):
                continue
            for r in result:
                out.setdefault(r["metric"].get(label, "?"), {})[key] = r["value"]
        return out

    def table(self) -> List[str]:
        feats = self._collect(self.QUERIES, "feature")
        outs = self._collect(self.OUTPUT_QUERIES, "output")
        lines = [f"    {'column':<20} {'KS':>6} {'crit':>6} {'PSI':>6} {'TVD':>6} "
                 f"{'unseen':>7} {'invalid':>8}"]
        for name in demo_model.FEATURES:
            s = feats.get(name, {})
            flag = " <- drift" if (s.get("ks", 0) > max(s.get("crit", 1), 0.1)
                                   or s.get("tvd", 0) > 0.1 or s.get("psi", 0) > 0.25) else ""
            lines.append(f"    {name:<20} {_fmt(s.get('ks')):>6} {_fmt(s.get('crit')):>6} "
                         f"{_fmt(s.get('psi')):>6} {_fmt(s.get('tvd')):>6} "
                         f"{_fmt(s.get('unseen'), True):>7} {_fmt(s.get('invalid'), True):>8}"
                         f"{flag}")
        for name in ("species", "confidence"):
            s = outs.get(name, {})
            lines.append(f"    {'prediction ' + name:<20} {_fmt(s.get('ks')):>6} "
                         f"{_fmt(s.get('crit')):>6} {'-':>6} {_fmt(s.get('tvd')):>6}")
        return lines


def offline_report(baseline_path: str, capture_dir: str, workdir: str) -> List[str]:
    """`promdrift report` over the rows the server captured (normal and drifted traffic),
    with the exact two-sample KS against the training data; summary lines for the end."""
    from promdrift.exporter.report import build_report, write_report
    from promdrift.instrumentation import Baseline

    time.sleep(1.0)  # the capture writer flushes every 0.5 s
    try:
        report = build_report(Baseline.load(baseline_path), capture_dir, train=demo_model.DATA)
        html_path = os.path.join(workdir, "report.html")
        json_path = os.path.join(workdir, "violations.json")
        write_report(report, html_path, json_path)
    except Exception as e:  # the report is a bonus: never fail the demo because of it
        return [f"  offline report: failed ({e})"]
    lines = [f"  offline report over {report.rows} captured rows: "
             f"{os.path.relpath(html_path)}, {len(report.violations)} constraint violations "
             f"in {os.path.relpath(json_path)}"]
    for v in report.violations[:8]:
        lines.append(f"    {v.check} {v.feature_name}: {v.description}")
    return lines


def run(args: argparse.Namespace) -> int:
    for binary, package in ((PROMETHEUS, "prometheus"), (ALERTMANAGER, "prometheus-alertmanager")):
        if binary is None:
            print(f"promdrift demo: the {package} binary is missing; `make demo` installs it "
                  f"(apt-get install {package})", file=sys.stderr)
            return 2
    workdir = os.path.abspath(args.workdir)
    rundir = os.path.join(workdir, "run")
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:5.0f}s] {msg}", flush=True)

    say("1/4 training the penguin species model and fitting its drift baseline")
    model_path, baseline_path, accuracy = demo_model.train(workdir)
    say(f"    model: {model_path} (training accuracy {accuracy:.3f})")
    say(f"    baseline: {baseline_path} (`promdrift show {os.path.relpath(baseline_path)}`)")

    rules = write_rules(RulesConfig(ranges=WINDOWS, pending={"*": PENDING},
                                    intervals={w: None for w in WINDOWS}),
                        os.path.join(rundir, "rules"))
    normal_alerts: List[Dict[str, Any]] = []
    drift_alerts: List[Dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        say("2/4 starting the model server, a webhook receiver, Alertmanager and Prometheus")
        capture_dir = os.path.join(rundir, "capture")
        server = stack.enter_context(ModelServer(workdir, capture_dir=capture_dir))
        hook = stack.enter_context(WebhookReceiver())
        am = stack.enter_context(Alertmanager(rundir, hook.url))
        prom = stack.enter_context(Prometheus(rundir, [f"127.0.0.1:{server.port}"], rules,
                                              alertmanager=am.address, interval="1s"))
        urls = {"model server (landing page /, POST /predict, /metrics)": server.url,
                "Prometheus": prom.url, "Alertmanager": am.url,
                "webhook receiver": hook.url}
        for name, url in urls.items():
            say(f"    {name}: {url}")
        say("    waiting for Prometheus' first scrape ...")
        prom.wait_up(1, timeout=60)
        alerts = AlertLog(hook)
        stats = Stats(prom)
        traffic = stack.enter_context(Traffic(server.url, rate=args.rate))

        def watch(phase: str, seconds: float, sink: List[Dict[str, Any]],
                  until: Optional[Any] = None) -> None:
            end = time.monotonic() + seconds
            next_table = time.monotonic() + args.every
            while time.monotonic() < end:
                for a in alerts.new():
                    sink.append(a)
                    say(f"  ALERT {describe(a, 160)}")
                if until is not None and until():
                    return
                if time.monotonic() >= next_table:
                    next_table += args.every
                    say(f"  {phase}: {traffic.sent[phase]} requests "
                        f"({traffic.failed[phase]} failed), {len(sink)} alerts")
                    for line in stats.table():
                        print(line, flush=True)
                time.sleep(0.5)

        say(f"3/4 normal traffic: {args.rate:g} requests/s for {args.normal:g} s "
            f"(rows drawn from the training data)")
        watch("normal", args.normal, normal_alerts)

        traffic.phase = "drift"
        drift_start = time.monotonic()
        say("4/4 drifted traffic: body_mass_g x1.25, bill_length_mm +6 mm, 15% invalid "
            "flipper_length_mm, 25% from the unseen island 'Atlantis'")
        first: List[float] = []

        def done() -> bool:
            kinds = {a["labels"]["alertname"] for a in drift_alerts}
            if kinds and not first:
                first.append(time.monotonic())
            if not first:
                return False
            # After the first alert, give the others up to `--linger` seconds to arrive.
            return (time.monotonic() - first[0] >= args.linger
                    or {"PromdriftFeatureDrift", "PromdriftInvalidValuesHigh",
                        "PromdriftUnseenCategoryShareHigh"} <= kinds)
        watch("drift", args.drift, drift_alerts, until=done)
        for line in stats.table():
            print(line, flush=True)

        report_lines = offline_report(baseline_path, capture_dir, workdir)
        delivered = [a for a in drift_alerts if a["labels"]["alertname"] in DRIFT_ALERTS]
        print()
        print("promdrift demo summary")
        print(f"  requests: normal {traffic.sent['normal']}, drift {traffic.sent['drift']} "
              f"(failed: {traffic.failed['normal'] + traffic.failed['drift']})")
        print(f"  alerts during the normal phase: {len(normal_alerts)}")
        for a in normal_alerts:
            print(f"    {describe(a, 160)}")
        print(f"  alerts during the drift phase: {len(drift_alerts)}")
        for a in drift_alerts:
            print(f"    +{a['received_at'] - drift_start:5.1f}s {describe(a, 160)}")
        for line in report_lines:
            print(line)
        print("  served:")
        for name, url in urls.items():
            print(f"    {name}: {url}")
        print(f"  logs and data: {os.path.relpath(workdir)}/")
        ok = bool(delivered) and not normal_alerts
        print(f"  result: {'OK' if ok else 'FAILED'}: "
              f"{len(delivered)} drift alert(s) delivered, {len(normal_alerts)} during normal "
              f"traffic")
        if args.keep_running:
            say("--keep-running: the stack stays up with drifted traffic; Ctrl-C stops it")
            while True:
                for a in alerts.new():
                    say(f"  ALERT {describe(a, 160)}")
                time.sleep(1)
    return 0 if ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep-running", action="store_true",
                   help="keep the stack up after the summary, until Ctrl-C")
    p.add_argument("--workdir", default=os.path.join(ROOT, ".demo"))
    p.add_argument("--rate", type=float, default=50.0, help="requests per second")
    p.add_argument("--normal", type=float, default=75.0, help="seconds of normal traffic")
    p.add_argument("--drift", type=float, default=150.0,
                   help="at most this many seconds of drifted traffic")
    p.add_argument("--linger", type=float, default=30.0,
                   help="seconds to keep collecting alerts after the first drift alert")
    p.add_argument("--every", type=float, default=15.0, help="seconds between stat tables")
    args = p.parse_args(argv)
    # Ctrl-C (SIGINT) and SIGTERM both unwind the ExitStack, which stops every process.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Also when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\npromdrift demo: interrupted; every process it started has been stopped",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
