"""Rule evaluation benchmark: the cost of promql/rules.yml + alerts.yml in a real Prometheus,
and the time from drift injection to the Alertmanager webhook.

    .venv/bin/python benchmarks/rules.py            # the table in benchmarks/README.md
    .venv/bin/python benchmarks/rules.py --features 100 --evaluations 3   # a quick run

The target is promdrift itself: ``--replicas`` DriftMonitors with one synthetic baseline of
``--features`` numeric features x ``--bins`` bins (standard normal training data), each served
on its own 127.0.0.1 port and fed a steady stream of standard normal rows from a thread.

1. Rule evaluation: Prometheus scrapes the replicas and evaluates the production rule files
   every ``--interval`` (the baseline group at its own 1m); once the window groups have run
   ``--evaluations`` times after their first evaluation,
   ``prometheus_rule_group_last_duration_seconds`` of every evaluation but each group's first
   is summarised per group.
2. Drift to webhook: a target of ``--latency-features`` features (same replicas, same rate;
   small enough that a 1 s evaluation interval is not overrun) and a second Prometheus (1 s
   scrape and evaluation) with the fast copy of the rules used by the integration tests
   (tests/integration/generated.py: windows ``--fast-window``, every ``for:`` ``--pending``),
   sending alerts to Alertmanager (group_wait 1s), which posts them to a local webhook. After
   the window has filled with undrifted traffic, ``--drift-features`` features shift by
   ``--shift`` standard deviations; the time until their PromdriftFeatureDrift alerts reach
   the webhook is measured.

Every process is started here, bound to 127.0.0.1, stopped through its own handle, and every
wait is bounded (``--timeout`` for each phase).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from integration.generated import fast_config, write_rules  # noqa: E402
from integration.servers import (Alertmanager, AppServer, Prometheus,  # noqa: E402
                                 WebhookReceiver, wait_until)

from promdrift.instrumentation import Baseline, DriftMonitor  # noqa: E402

PROMQL = os.path.join(ROOT, "promql")


class Traffic:
    """Feeds every monitor ``rate`` rows per second of N(shift, 1) values, per feature."""

    def __init__(self, monitors: Sequence[DriftMonitor], features: int, rate: int, seed: int = 1):
        self.monitors = list(monitors)
        self.shift = np.zeros(features)
        self.rate = rate
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def _run(self) -> None:
        tick = 0.25
        rows = max(1, int(self.rate * tick))
        while not self._stop.is_set():
            start = time.monotonic()
            for m in self.monitors:
                m.observe(self._rng.standard_normal((rows, len(self.shift))) + self.shift)
            self._stop.wait(max(0.0, tick - (time.monotonic() - start)))

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def metrics_app(monitor: DriftMonitor):
    def app(environ, start_response):
        body = monitor.render().encode()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app


def rule_group_stats(text: str) -> Dict[str, Dict[str, float]]:
    """Per rule group: last duration, iterations, missed iterations, rule count, and the
    start time of the last completed evaluation (set together with its duration when the
    evaluation ends; ``iterations_total`` counts evaluations when they start)."""
    out: Dict[str, Dict[str, float]] = {}
    pattern = re.compile(r'^(prometheus_rule_group_(?:last_duration_seconds|iterations_total|'
                         r'iterations_missed_total|rules|last_evaluation_timestamp_seconds))'
                         r'\{rule_group="[^"]*;([^"]+)"\} (\S+)$', re.M)
    for name, group, value in pattern.findall(text):
        out.setdefault(group, {})[name.replace("prometheus_rule_group_", "")] = float(value)
    return out


def phase_rule_evaluation(workdir: str, apps: List[AppServer], args: argparse.Namespace
                          ) -> List[str]:
    rules = [os.path.join(args.promql_dir, name) for name in ("rules.yml", "alerts.yml")]
    durations: Dict[str, List[float]] = {}
    seen: Dict[str, float] = {}
    groups = set()
    for path in rules:
        with open(path) as f:
            groups |= set(re.findall(r"^  - name: (\S+)", f.read(), flags=re.M))
    with Prometheus(os.path.join(workdir, "eval"), [a.address for a in apps], rules,
                    interval=args.interval) as prom:
        prom.wait_up(len(apps), timeout=args.timeout)
        started = time.monotonic()

        first: Dict[str, float] = {}

        def enough() -> bool:
            for group, s in rule_group_stats(prom.own_metrics()).items():
                done = s.get("last_evaluation_timestamp_seconds", 0)
                if done > 0 and done != seen.get(group):
                    seen[group] = done
                    first.setdefault(group, done)
                    if done != first[group]:  # the first evaluation warms caches up
                        durations.setdefault(group, []).append(s["last_duration_seconds"])
            return all(len(durations.get(g, [])) >= args.evaluations
                       for g in ("promdrift-5m", "promdrift-1h")) \
                and set(durations) == groups
        wait_until(enough, timeout=args.timeout, interval=0.3, what="rule evaluations")
        span = time.monotonic() - started
        own = prom.own_metrics()
        stats = rule_group_stats(own)
        api_groups = prom.api("rules")["groups"]
        intervals = {g["name"]: float(g["interval"]) for g in api_groups}
        slowest_rules = sorted(((r["evaluationTime"], r.get("name"), g["name"])
                                for g in api_groups for r in g["rules"]),
                               reverse=True)[:args.top_rules]
        head = re.search(r"^prometheus_tsdb_head_series (\S+)$", own, re.M)
        scrape = prom.query("scrape_duration_seconds")
        samples = prom.query("scrape_samples_scraped")
    series = int(float(head.group(1))) if head else 0
    lines = [
        f"Rule evaluation: {len(apps)} replicas x {args.features} features x {args.bins} bins, "
        f"{int(sum(s['value'] for s in samples))} samples per scrape round, {series} head "
        f"series; scrape and evaluation every {args.interval}; "
        f"{span:.0f} s of data (the 1h windows were only partly filled).",
        "",
        "| rule group | interval | rules | evaluations | median eval | max eval | "
        "eval s per minute | missed iterations |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = ["promdrift-config", "promdrift-baseline", "promdrift-5m", "promdrift-1h",
             "promdrift-alerts"]
    total = 0.0
    for group in sorted(durations, key=lambda g: order.index(g) if g in order else 99):
        d = durations[group]
        per_minute = statistics.median(d) * 60 / intervals[group]
        total += per_minute
        lines.append(f"| {group} | {intervals[group]:.0f} s | {int(stats[group]['rules'])} | "
                     f"{len(d)} | {statistics.median(d):.3f} s | {max(d):.3f} s | "
                     f"{per_minute:.1f} | "
                     f"{int(stats[group].get('iterations_missed_total', 0))} |")
    lines.append(f"| all groups | | | | | | {total:.1f} | |")
    lines.append("")
    lines.append(f"Scrape duration per replica: "
                 + ", ".join(f"{s['value']:.3f} s" for s in scrape) + ".")
    if slowest_rules:
        lines += ["", "| slowest rules (last evaluation) | group | seconds |", "|---|---|---|"]
        lines += [f"| `{name}` | {group} | {t:.3f} |" for t, name, group in slowest_rules]
    return lines


def phase_drift_to_webhook(workdir: str, apps: List[AppServer], traffic: Traffic,
                           features: int, args: argparse.Namespace) -> List[str]:
    fast = write_rules(fast_config(ranges={"5m": args.fast_window, "1h": args.fast_window},
                                   pending={"*": args.pending}),
                       os.path.join(workdir, "fast-rules"))
    drifted = {f"f{j:04d}" for j in range(args.drift_features)}
    with WebhookReceiver() as hook, \
            Alertmanager(os.path.join(workdir, "am"), hook.url) as am, \
            Prometheus(os.path.join(workdir, "fast"), [a.address for a in apps], fast,
                       alertmanager=am.address, interval="1s") as prom:
        prom.wait_up(len(apps), timeout=args.timeout)
        window_s = int(args.fast_window.rstrip("s"))
        time.sleep(window_s + 2)  # the window holds only undrifted traffic now
        before = [a for a in hook.alerts() if a["labels"]["alertname"] == "PromdriftFeatureDrift"]
        injected = time.monotonic()
        traffic.shift[: args.drift_features] = args.shift

        def arrived() -> Optional[List[float]]:
            times = {}
            for a in hook.alerts():
                f = a["labels"].get("feature")
                if a["labels"]["alertname"] == "PromdriftFeatureDrift" and f in drifted:
                    times.setdefault(f, a["received_at"] - injected)
            return sorted(times.values()) if len(times) == len(drifted) else None
        delays = wait_until(arrived, timeout=args.timeout, interval=0.2, what="drift alerts")
        n_eval = prom.query("model_feature:promdrift_feature_value_count:increase1h")
        false_alerts = [a for a in hook.alerts() if a["labels"]["alertname"] ==
                        "PromdriftFeatureDrift" and a["labels"].get("feature") not in drifted]
        stats = rule_group_stats(prom.own_metrics())
    n_window = statistics.median(s["value"] for s in n_eval) if n_eval else 0
    slowest = max(s.get("last_duration_seconds", 0) for s in stats.values())
    return [
        f"Drift to webhook: {args.drift_features} of {features} features shift by "
        f"{args.shift} sd (all replicas); fast rules: windows {args.fast_window}, for "
        f"{args.pending}; 1 s scrape and evaluation; Alertmanager group_wait 1s; "
        f"~{n_window:.0f} values per feature in the window.",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| injection to first PromdriftFeatureDrift at the webhook | {delays[0]:.1f} |",
        f"| injection to the last of the {len(delays)} drifted features' alerts | "
        f"{delays[-1]:.1f} |",
        f"| slowest rule group evaluation (1 s interval) | {slowest:.3f} |",
        "",
        f"Alerts for undrifted features: {len(false_alerts)} during the run, "
        f"{len(before)} before the injection.",
    ] + [f"- {a['labels'].get('feature')}: starts {a.get('startsAt')}, received "
         f"{a['received_at'] - injected:+.1f} s after the injection: "
         f"{a.get('annotations', {}).get('description', '')}" for a in false_alerts]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", type=int, default=1000)
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--rate", type=int, default=200, help="rows per second per replica")
    p.add_argument("--interval", default="15s", help="scrape and evaluation interval, phase 1")
    p.add_argument("--evaluations", type=int, default=5)
    p.add_argument("--latency-features", type=int, default=100)
    p.add_argument("--fast-window", default="30s")
    p.add_argument("--pending", default="3s")
    p.add_argument("--drift-features", type=int, default=10)
    p.add_argument("--shift", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds, per wait")
    p.add_argument("--skip-drift", action="store_true", help="skip phase 2")
    p.add_argument("--skip-eval", action="store_true", help="skip phase 1")
    p.add_argument("--top-rules", type=int, default=8, help="list the N slowest rules")
    p.add_argument("--promql-dir", default=PROMQL,
                   help="directory with rules.yml and alerts.yml (to compare rule versions)")
    args = p.parse_args(argv)

    out: List[str] = []
    with tempfile.TemporaryDirectory(prefix="promdrift-bench-") as workdir:
        if not args.skip_eval:
            with Target(args.features, args) as (apps, _):
                out += phase_rule_evaluation(workdir, apps, args)
        if not args.skip_drift:
            with Target(args.latency_features, args) as (apps, traffic):
                out += [""] + phase_drift_to_webhook(workdir, apps, traffic,
                                                     args.latency_features, args)
    print("\n".join(out))
    return 0


class Target:
    """``args.replicas`` DriftMonitors of one synthetic ``features`` x ``args.bins`` baseline,
    served on 127.0.0.1 and fed by a Traffic thread while the context is open."""

    def __init__(self, features: int, args: argparse.Namespace):
        rng = np.random.default_rng(0)
        train = {f"f{j:04d}": rng.standard_normal(2000) for j in range(features)}
        baseline = Baseline.fit(train, model="bench", bins=args.bins)
        self.monitors = [DriftMonitor(baseline, registry=None) for _ in range(args.replicas)]
        self.apps = [AppServer(metrics_app(m)) for m in self.monitors]
        self.traffic = Traffic(self.monitors, features, args.rate)
        self._entered: List[object] = []

    def __enter__(self):
        try:
            for cm in [*self.apps, self.traffic]:
                cm.__enter__()
                self._entered.append(cm)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.apps, self.traffic

    def __exit__(self, *exc: object) -> None:
        while self._entered:
            self._entered.pop().__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
