"""Rule evaluation benchmark: what promdrift's recording rules and alerts cost a real Prometheus
at fleet scale, two or more rule sets side by side in one run, and the time from drift to
the Alertmanager webhook.

    .venv/bin/python benchmarks/rules.py --prometheus PATH --skip-drift   # the README table
    .venv/bin/python benchmarks/rules.py --prometheus PATH --features 100 --evaluations 2 \\
        --skip-drift                                                      # a quick run

``PATH`` is a Prometheus binary (default: ``.cache/engines/root/usr/bin/prometheus``, where
the engine fetch script unpacks Prometheus 3.5). Each ``--rules NAME=SOURCE`` is a rule set
(default: ``old=git:a58adf6``, the hand-written rules before the generator, and
``generated=generated``, ``promdrift rules`` with its default options); SOURCE is
``git:REV`` (``promql/rules.yml`` and ``alerts.yml`` of a commit), ``generated``, a
directory holding ``rules.yml`` and ``alerts.yml``, or ``variant:NAME`` (a rule set of
``rule_variants.py``, written for measuring a change of the generator).

1. Rule evaluation, for each ``--fleet MODELSxFEATURES`` (default ``1x1000``; ``--features
   N`` is ``--fleet 1xN``): every model has FEATURES numeric features x ``--bins`` bins, fitted on
   standard normal training data, and runs ``--replicas`` DriftMonitors, each served on its
   own 127.0.0.1 port (one scrape target per model and replica); a model ``bench-cat`` of
   ``--categorical`` categorical features rides along on the first model's targets, so the
   categorical rules run too. Traffic: ``--rate`` rows per second per replica, standard
   normal with a share ``--invalid`` of NaN (so invalid ratios are not all 0); categories
   drawn from the training shares plus 1 % unseen values.

   Full windows: the rules must read an hour of samples at the scrape interval, as they do
   in a Prometheus that has been running. Before the live scrapes start, ``--history`` of
   past scrapes (one every ``--interval``) is computed on the monitors' own counter stores
   (per 15 s step the counts that ``--rate`` rows of the same distribution give, drawn
   multinomially) and each sample the targets would have exposed is sent to every
   Prometheus through its remote-write receiver, series by series in time order, with the
   labels a scrape gives (``job``, ``instance`` included). The samples land in the head
   block, where a running Prometheus keeps its last hours. The history ends when the live
   scrapes start (its timestamps are set ``--history-lead`` ahead of the upload); the
   monitors then go on counting from the last historical values, so history and live
   samples are one series without a counter reset (checked: series count, ``resets()``,
   samples per hour).

   Then every Prometheus (one per rule set, all started together) scrapes all targets every
   ``--interval`` and evaluates its rule files (global evaluation interval ``--interval``;
   groups with an ``interval:`` keep it). Once every group has completed ``--evaluations``
   evaluations after its first, each group's cost is the median of
   ``prometheus_rule_group_last_duration_seconds`` over those evaluations times its
   evaluations per minute (60 / ``prometheus_rule_group_interval_seconds``). Also
   reported: recorded series (of every recording rule, per numeric feature), head series,
   CPU seconds of each Prometheus, the slowest rules (the
   rules API's ``evaluationTime``), the alerts pending or firing, and a check that every
   statistic both rule sets record has the same value: each other rule set's expression is
   evaluated as an instant query in the first rule set's Prometheus at times its groups
   evaluated (times no scrape was in flight), and compared with what the first rule set
   recorded there. And a check against numpy of the KS, PSI (and, for the generated
   rules, KS critical value) of every rule set whose rules read only exported series: for
   ``--numpy-features`` features spread over the first model, the rules' expressions are
   queried at ``--check-times`` times a minute apart (after the scrapes stopped, so that
   both read the same samples) and ``promdrift.instrumentation.binning`` computes the same
   statistics from the per-series ``increase`` of every bucket (the rules' input, summed
   over the replicas here) and the baseline gauges; a difference above ``TOLERANCE``, a
   statistic never checked or a check that could not run fails the run (exit status 1).
   ``--fragments`` also times the parts of the generated KS and PSI
   (``promdrift.promql.Expressions``) alone, to show where their time goes.
2. Drift to webhook: a target of ``--latency-features`` features and a Prometheus (1 s
   scrape and evaluation) with the generated rules over windows of ``--fast-window``
   (``tests/integration/generated.py``; every ``for:`` ``--pending``), sending alerts to
   Alertmanager (``--alertmanager``, group_wait 1s), which posts them to a local webhook.
   After the window has filled with undrifted traffic, ``--drift-features`` features shift by
   ``--shift`` standard deviations; the time until their PromdriftFeatureDrift alerts reach
   the webhook is measured, and alerts for undrifted features are counted.

Every process is started here, bound to 127.0.0.1, stopped through its own handle, and every
wait is bounded (``--timeout`` per wait, ``--measure-timeout`` for the evaluation phase).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from integration.generated import fast_config, write_rules  # noqa: E402
from integration.servers import (Alertmanager, AppServer, Prometheus,  # noqa: E402
                                 WebhookReceiver, http_get, wait_until)

from promdrift.instrumentation import Baseline, DriftMonitor, binning  # noqa: E402
from promdrift.instrumentation.counting.store import REASONS  # noqa: E402
from promdrift.promql import Expressions, RulesConfig  # noqa: E402
from promdrift.promql.config import VERSION_LABELS  # noqa: E402
from promdrift.promql.expr import FEATURE  # noqa: E402

DEFAULT_PROMETHEUS = os.path.join(ROOT, ".cache", "engines", "root", "usr", "bin", "prometheus")
CAT_MODEL = "bench-cat"
NAN_SLOT = REASONS.index("nan")
TOLERANCE = 1e-9  # relative (absolute below 1) difference allowed between two rule sets
QUERY_TIMEOUT = 180.0  # seconds per API call (``--timeout``)


# ---------------------------------------------------------------------------------- rule sets
@dataclass
class RuleSet:
    """Rule files to load, and what they record."""

    name: str
    source: str
    files: List[str]
    records: Dict[str, str] = field(default_factory=dict)  # record name -> expression
    alerts: Dict[str, str] = field(default_factory=dict)
    groups: Dict[str, Optional[str]] = field(default_factory=dict)  # group -> interval
    group_of: Dict[str, str] = field(default_factory=dict)  # record -> group
    rules: List[Tuple[str, str, str]] = field(default_factory=list)  # (group, name, expr)

    def __post_init__(self) -> None:
        for path in self.files:
            with open(path) as f:
                doc = yaml.safe_load(f) or {}
            for g in doc.get("groups", []):
                self.groups[g["name"]] = g.get("interval")
                for r in g["rules"]:
                    if "record" in r:
                        self.records[r["record"]] = r["expr"]
                        self.group_of[r["record"]] = g["name"]
                    else:
                        self.alerts[r["alert"]] = r["expr"]
                    self.rules.append((g["name"], r.get("record") or r["alert"], r["expr"]))

    def range_inputs(self) -> List[str]:
        """Records that some rule reads over a range (``name[1h]``): in a Prometheus that
        has been running they have an hour of history too."""
        text = "\n".join(list(self.records.values()) + list(self.alerts.values()))
        return [n for n in self.records
                if re.search(re.escape(n) + r"(\{[^}]*\})?\[", text)]


def load_rule_set(spec: str, workdir: str) -> RuleSet:
    """``NAME=SOURCE`` (see the module docstring) as a :class:`RuleSet`."""
    name, sep, source = spec.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SystemExit(f"--rules {spec!r}: expected NAME=SOURCE, NAME of letters, digits, "
                         f"'_', '.', '-'")
    outdir = os.path.join(workdir, "rules-" + name)
    os.makedirs(outdir, exist_ok=True)
    if source.startswith("git:"):
        files = []
        for base in ("rules.yml", "alerts.yml"):
            text = subprocess.run(["git", "-C", ROOT, "show", f"{source[4:]}:promql/{base}"],
                                  check=True, capture_output=True, text=True).stdout
            files.append(os.path.join(outdir, base))
            with open(files[-1], "w") as f:
                f.write(text)
    elif source == "generated":
        files = write_rules(RulesConfig(), outdir)
    elif source.startswith("variant:"):
        import rule_variants
        files = rule_variants.write(source[len("variant:"):], outdir)
    elif os.path.isdir(source):
        files = [os.path.join(source, b) for b in ("rules.yml", "alerts.yml")
                 if os.path.exists(os.path.join(source, b))]
    else:
        raise SystemExit(f"--rules {spec!r}: {source!r} is not git:REV, generated, "
                         f"variant:NAME or a directory")
    return RuleSet(name, source, files)


# ---------------------------------------------------------------------------------- the fleet
def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


class Fleet:
    """``models`` numeric models of ``features`` features, ``replicas`` DriftMonitors each,
    one AppServer (scrape target) per model and replica; a categorical model rides along on
    the first model's targets. A context manager: the servers (and the traffic, once
    started) run while it is open."""

    def __init__(self, models: int, features: int, args: argparse.Namespace, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rate, self.invalid = args.rate, args.invalid
        self.models, self.numeric_features = models, models * features
        self.cat_labels = np.array([f"k{i}" for i in range(args.categories)] + ["unseen"])
        shares = 1.0 / np.arange(1, args.categories + 1)  # Zipf-like training shares
        shares /= shares.sum()
        self.cat_live = np.append(shares * 0.99, 0.01)  # plus 1 % never seen in training
        targets: List[List[DriftMonitor]] = []
        for m in range(models):
            train = {f"f{j:04d}": rng.standard_normal(2000) for j in range(features)}
            name = "bench" if models == 1 else f"bench{m:02d}"
            baseline = Baseline.fit(train, model=name, bins=args.bins)
            targets += [[DriftMonitor(baseline, registry=None)] for _ in range(args.replicas)]
        if args.categorical:
            train = {f"c{j:02d}": rng.choice(self.cat_labels[:-1], size=2000, p=shares)
                     for j in range(args.categorical)}
            cat = Baseline.fit(train, model=CAT_MODEL)
            for r in range(args.replicas):
                targets[r].append(DriftMonitor(cat, registry=None))
        self.targets = targets
        self.apps = [AppServer(self._app(ms)) for ms in targets]
        self.rng = np.random.default_rng(seed + 1)
        self.shift = 0.0  # mean shift of the first ``drifted`` numeric features
        self.drifted = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._entered: List[Any] = []

    @staticmethod
    def _app(monitors: Sequence[DriftMonitor]):
        def app(environ, start_response):
            body = "".join(m.render() for m in monitors).encode()
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return app

    @property
    def monitors(self) -> List[DriftMonitor]:
        return [m for ms in self.targets for m in ms]

    def __enter__(self) -> "Fleet":
        try:
            for app in self.apps:
                app.__enter__()
                self._entered.append(app)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_traffic()
        while self._entered:
            self._entered.pop().__exit__(None, None, None)

    # ------------------------------------------------------------------ live traffic
    def start_traffic(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")
        self._thread.start()

    def stop_traffic(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _rows(self, m: DriftMonitor, rows: int) -> np.ndarray:
        if m.model == CAT_MODEL:
            idx = self.rng.choice(len(self.cat_labels), size=(rows, len(m.baseline.features)),
                                  p=self.cat_live)
            return self.cat_labels[idx]
        x = self.rng.standard_normal((rows, len(m.baseline.features)))
        x[:, :self.drifted] += self.shift
        x[self.rng.random(x.shape) < self.invalid] = np.nan
        return x

    def _run(self) -> None:
        tick = 0.25
        rows = max(1, int(self.rate * tick))
        while not self._stop.is_set():
            start = time.monotonic()
            for m in self.monitors:
                m.observe(self._rows(m, rows))
            self._stop.wait(max(0.0, tick - (time.monotonic() - start)))

    # ------------------------------------------------------------------ history
    def advance(self, seconds: float) -> None:
        """Add to every store the counts of ``seconds`` of traffic at the live rate and
        distribution, drawn multinomially (what the traffic thread would have counted)."""
        rows = int(round(self.rate * seconds))
        for m in self.monitors:
            lay, incr = m.layout, np.zeros(m.layout.size)
            if m.model == CAT_MODEL:
                for j, (_, col) in enumerate(lay.categorical):
                    slots = [lay.cat_offsets[j] + lay.cat_index[j].get(str(c), len(col.categories))
                             for c in self.cat_labels]
                    np.add.at(incr, slots, self.rng.multinomial(rows, self.cat_live))
            else:
                p = self._bucket_probs(m)
                fn = len(lay.numeric)
                nan = self.rng.binomial(rows, self.invalid, size=fn)
                counts = self.rng.multinomial(rows - nan, p)  # (fn, width): per bucket
                incr[lay.bucket_base:lay.bucket_base + fn * lay.width].reshape(
                    lay.width, fn)[:] = np.cumsum(counts, axis=1).T
                incr[lay.sum_base:lay.sum_base + fn] = self.rng.normal(0, np.sqrt(rows - nan))
                incr[lay.invalid_base + np.arange(fn) * len(REASONS) + NAN_SLOT] = nan
            m.store.add_batch(incr, rows)

    def _bucket_probs(self, m: DriftMonitor) -> np.ndarray:
        cache = m.__dict__.setdefault("_bench_probs", None)
        if cache is None:
            cdf = _normal_cdf(m.layout.edges)  # (fn, width), +inf padded: 1
            cache = np.diff(cdf, axis=1, prepend=0.0)
            cache[:, -1] = 1.0 - cache[:, :-1].sum(axis=1)
            m.__dict__["_bench_probs"] = cache = np.clip(cache, 0.0, 1.0)
        return cache

    def series(self, job: str) -> List[Dict[str, str]]:
        """Labels of every series the targets expose, as a scrape by ``job`` stores them,
        target by target, monitor by monitor: its live samples, then its baseline ones (the
        order of ``ModelPlan.metrics``)."""
        labels: List[Dict[str, str]] = []
        self._fixed = []
        for app, ms in zip(self.apps, self.targets):
            for m in ms:
                counts = m.store.snapshot()
                n_live, fixed = len(m.plan.live_values(counts)), []
                for _, samples in m.plan.metrics(counts):
                    labels += [{"__name__": n, **lab, "job": job, "instance": app.address}
                               for n, lab, _ in samples]
                    fixed += [v for _, _, v in samples]
                self._fixed.append(np.array(fixed[n_live:], dtype=np.float64))
        return labels

    def values(self) -> np.ndarray:
        """Every exposed value now, in :meth:`series` order."""
        out = []
        for m, fixed in zip(self.monitors, self._fixed):
            out += [m.plan.live_values(m.store.snapshot()), fixed]
        return np.concatenate(out)

    def check_series(self, labels: List[Dict[str, str]]) -> None:
        """The history's series are exactly the series the targets serve."""
        want = set()
        for app in self.apps:
            text = http_get(app.url + "/metrics", timeout=30).decode()
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    name, _, rest = line.partition("{")
                    pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest.rpartition("}")[0])
                    want.add(frozenset([("__name__", name), ("job", labels[0]["job"]),
                                        ("instance", app.address), *pairs]))
        got = {frozenset(lab.items()) for lab in labels}
        if got != want:
            raise RuntimeError(f"history series differ from the exposition: "
                               f"{len(got - want)} extra, {len(want - got)} missing, e.g. "
                               f"{sorted(map(sorted, (got ^ want)))[:2]}")


# ---------------------------------------------------------------------------------- remote write
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def snappy_block(data: bytes) -> bytes:
    """``data`` as a snappy block of one literal (valid snappy, not compressed)."""
    return _varint(len(data)) + bytes([63 << 2]) + (len(data) - 1).to_bytes(4, "little") + data


#: One ``prometheus.Sample`` inside ``TimeSeries.samples``: field tag, length 16, double
#: value (field 1), int64 timestamp in ms (field 2) as a 6-byte varint (2^35 <= t < 2^42).
_SAMPLE = np.dtype([("tag", "u1"), ("len", "u1"), ("vtag", "u1"), ("v", "<f8"),
                    ("ttag", "u1"), ("t", "u1", (6,))])


def write_requests(labels: List[Dict[str, str]], history: np.ndarray, stamps_ms: np.ndarray,
                   per_request: int, steps_per_request: int) -> Iterator[bytes]:
    """Remote-write 1.0 requests (``prometheus.WriteRequest``, snappy) carrying
    ``history[:, i]`` at ``stamps_ms`` for series ``labels[i]``: oldest samples first, so
    that no request reaches back more than an hour behind the newest sample already in the
    head (Prometheus refuses those as out of bounds)."""
    t_all = np.array([list(_varint(int(s))) for s in stamps_ms], dtype=np.uint8)
    if t_all.shape != (len(stamps_ms), 6):
        raise ValueError("timestamps outside 2^35..2^42 ms")
    encoded = [b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode()))
                        for k, v in sorted(lab.items())) for lab in labels]
    for first in range(0, len(stamps_ms), steps_per_request):
        t = t_all[first:first + steps_per_request]
        size = len(t) * _SAMPLE.itemsize
        for start in range(0, len(labels), per_request):
            chunk = np.ascontiguousarray(
                history[first:first + len(t), start:start + per_request].T)
            rec = np.empty(chunk.shape, _SAMPLE)
            rec["tag"], rec["len"], rec["vtag"], rec["ttag"] = 0x12, 16, 0x09, 0x10
            rec["v"], rec["t"] = chunk, t
            blob = memoryview(rec.tobytes())
            parts: List[Any] = []
            for i, lb in enumerate(encoded[start:start + per_request]):
                parts += [_varint(1 << 3 | 2), _varint(len(lb) + size), lb,
                          blob[i * size:(i + 1) * size]]
            yield snappy_block(b"".join(parts))


def remote_write(url: str, body: bytes, timeout: float) -> None:
    req = urllib.request.Request(url + "/api/v1/write", data=body, method="POST", headers={
        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            pass
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"remote write to {url}: HTTP {e.code}: "
                           f"{e.read().decode(errors='replace')[:500]}") from None


def backfill_record(prom: Prometheus, name: str, expr: str, start: float, end: float,
                    step: float, args: argparse.Namespace) -> None:
    """Record ``expr`` as ``name`` from ``start`` to ``end`` every ``step`` seconds, from the
    data already in ``prom`` (a range query), as its rule would have (promtool's
    ``create-blocks-from rules`` does the same from a running server)."""
    result = matrix_range(prom, expr, start, end, step)
    stamps = sorted({float(t) for r in result for t, _ in r["values"]})
    full = [r for r in result if len(r["values"]) == len(stamps)]
    if not full or len(full) != len(result):
        raise RuntimeError(f"backfill of {name}: {len(result) - len(full)} of {len(result)} "
                           f"series lack a step")
    values = np.array([[float(v) for _, v in r["values"]] for r in full]).T
    labels = [{**r["metric"], "__name__": name} for r in full]
    ms = np.round(np.array(stamps) * 1000).astype(np.int64)
    for body in write_requests(labels, values, ms, args.per_request, int(600 // step)):
        remote_write(prom.url, body, args.timeout)


# ---------------------------------------------------------------------------------- Prometheus
def version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0]


def reconfigure(prom: Prometheus, workdir: str, targets: Sequence[str],
                rule_files: Sequence[str], interval: str, timeout: float) -> None:
    """Scrape ``targets`` and evaluate ``rule_files`` from now on (a config reload)."""
    staged = Prometheus(workdir, targets, rule_files, interval=interval)  # writes its config
    shutil.copyfile(staged.config_path, prom.config_path)
    req = urllib.request.Request(prom.url + "/-/reload", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout):
        pass


def own(prom: Prometheus) -> Dict[str, Dict[str, float]]:
    """Prometheus' own metrics: name -> rule group (``""`` for none) -> value."""
    out: Dict[str, Dict[str, float]] = {}
    text = http_get(prom.url + "/metrics", timeout=QUERY_TIMEOUT).decode()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            labels, _, value = line.rpartition(" ")
            name = labels.partition("{")[0]
            m = re.search(r'rule_group="[^"]*;([^"]+)"', labels)
            out.setdefault(name, {})[m.group(1) if m else ""] = float(value)
    return out


def api(prom: Prometheus, path: str, **params: Any) -> Any:
    """A Prometheus API call (POST with parameters, else GET), waiting up to
    ``QUERY_TIMEOUT``: the checks run expressions as costly as the rules on a loaded
    machine."""
    req = urllib.request.Request(f"{prom.url}/api/v1/{path}",
                                 data=urllib.parse.urlencode(params).encode() if params else None)
    with urllib.request.urlopen(req, timeout=QUERY_TIMEOUT) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise ValueError(f"{path} {params}: {body}")
    return body["data"]


def _query(prom: Prometheus, expr: str, at: Optional[float], kind: str) -> List[Dict[str, Any]]:
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    data = api(prom, "query", **params)
    if data["resultType"] != kind:
        raise ValueError(f"{expr}: {data['resultType']} result, expected a {kind}")
    return data["result"]


def query(prom: Prometheus, expr: str, at: Optional[float] = None) -> List[Dict[str, Any]]:
    """Instant query: a list of ``{"metric": {labels}, "value": float}``."""
    return [{"metric": r["metric"], "value": float(r["value"][1])}
            for r in _query(prom, expr, at, "vector")]


def matrix_range(prom: Prometheus, expr: str, start: float, end: float, step: float
                 ) -> List[Dict[str, Any]]:
    """Range query: ``{"metric": ..., "values": [[t, "v"], ...]}`` per series."""
    data = api(prom, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
               step=f"{step:g}")
    return data["result"]


def matrix(prom: Prometheus, expr: str, at: Optional[float] = None) -> List[Dict[str, Any]]:
    """Range-vector query: ``{"metric": ..., "values": [[t, "v"], ...]}`` per series."""
    return _query(prom, expr, at, "matrix")


def duration_seconds(text: Optional[str], default: float) -> float:
    if not text:
        return default
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text))


class Watch:
    """Rule group and rule evaluation times of one Prometheus, sampled while it runs."""

    def __init__(self, prom: Prometheus, rules: RuleSet, interval: float):
        self.prom, self.rules = prom, rules
        self.intervals = {g: duration_seconds(i, interval) for g, i in rules.groups.items()}
        self.durations: Dict[str, List[float]] = {g: [] for g in rules.groups}
        self.rule_times: Dict[Tuple[str, str], List[float]] = {}
        self._seen: Dict[str, float] = {}
        self._rule_seen: Dict[Tuple[str, str], str] = {}
        self.rule_counts: Dict[str, int] = {}

    def begin(self) -> None:
        self.started = time.monotonic()
        self.start_own = own(self.prom)

    def poll(self) -> None:
        self.prom.check_alive()
        metrics = own(self.prom)
        # the interval Prometheus runs each group at (the rule files' ``interval:`` or the
        # global one)
        self.intervals.update({g: v for g, v in metrics.get(
            "prometheus_rule_group_interval_seconds", {}).items() if g in self.intervals})
        done = metrics.get("prometheus_rule_group_last_evaluation_timestamp_seconds", {})
        last = metrics.get("prometheus_rule_group_last_duration_seconds", {})
        new = False
        for group, stamp in done.items():
            if stamp <= 0 or stamp == self._seen.get(group):
                continue
            first = group not in self._seen
            self._seen[group] = stamp
            new = True
            if not first:  # the first evaluation warms caches up
                self.durations.setdefault(group, []).append(last[group])
        if new:
            for g in api(self.prom, "rules")["groups"]:
                self.rule_counts[g["name"]] = len(g["rules"])
                for r in g["rules"]:
                    key = (g["name"], r["name"])
                    stamp = r.get("lastEvaluation", "")
                    if stamp and not stamp.startswith("0001") and self._rule_seen.get(key) != stamp:
                        if key in self._rule_seen:
                            self.rule_times.setdefault(key, []).append(r["evaluationTime"])
                        self._rule_seen[key] = stamp

    def enough(self, evaluations: int) -> bool:
        return all(len(d) >= evaluations for d in self.durations.values())

    def finish(self) -> None:
        self.elapsed = time.monotonic() - self.started
        self.end_own = own(self.prom)

    def cpu_per_minute(self) -> float:
        key = "process_cpu_seconds_total"
        return (self.end_own[key][""] - self.start_own[key][""]) * 60 / self.elapsed

    def missed(self, group: str) -> int:
        key = "prometheus_rule_group_iterations_missed_total"
        return int(self.end_own.get(key, {}).get(group, 0)
                   - self.start_own.get(key, {}).get(group, 0))

    def per_minute(self) -> Dict[str, float]:
        return {g: statistics.median(d) * 60 / self.intervals[g]
                for g, d in self.durations.items() if d}


# ---------------------------------------------------------------------------------- checks
def recorded_series(prom: Prometheus, rules: RuleSet) -> Dict[str, Tuple[int, int]]:
    """Per recording rule: (series, series of numeric models)."""
    names = "|".join(re.escape(n) for n in rules.records)
    out = {n: (0, 0) for n in rules.records}
    total = {r["metric"]["__name__"]: int(r["value"])
             for r in query(prom, f'count by (__name__) ({{__name__=~"{names}"}})')}
    numeric = {r["metric"]["__name__"]: int(r["value"]) for r in query(
        prom, f'count by (__name__) ({{__name__=~"{names}", model!="{CAT_MODEL}"}})')}
    for n in out:
        out[n] = (total.get(n, 0), numeric.get(n, 0))
    return out


def window_checks(prom: Prometheus) -> Dict[str, float]:
    """Is the 1h range full and one series per target? Samples per hour of a counter, counter
    resets within the hour, and series in the hour against series now."""
    sel = 'promdrift_feature_value_count{feature=~"f000."}'
    counts = [r["value"] for r in query(prom, f"count_over_time({sel}[1h])")]
    return {
        "samples_1h_min": min(counts), "samples_1h_max": max(counts),
        "resets_1h": sum(r["value"] for r in query(
            prom, 'sum(resets(promdrift_feature_value_bucket{feature=~"f00.."}[1h]))')),
        "series_now": query(prom, "count(promdrift_feature_value_bucket)")[0]["value"],
        "series_1h": query(
            prom, "count(last_over_time(promdrift_feature_value_bucket[1h]))")[0]["value"],
    }


def _key(metric: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in metric.items() if k != "__name__"))


def _comparable(values: Dict[Tuple[Tuple[str, str], ...], float]
                ) -> Dict[Tuple[Tuple[str, str], ...], float]:
    """``values`` keyed without the version labels (``model_version``, ``baseline``): rule
    sets of releases before statistics per baseline drop them, and this fleet serves one
    baseline per model, so the series are the same without them."""
    out = {tuple(kv for kv in k if kv[0] not in VERSION_LABELS): v for k, v in values.items()}
    if len(out) != len(values):
        raise RuntimeError("several baselines of one model: the rule sets cannot be compared")
    return out


def scrapes(prom: Prometheus) -> List[Tuple[float, float]]:
    """(start, duration) of every scrape of the last 11 minutes."""
    return [(float(t), float(d)) for s in matrix(prom, "scrape_duration_seconds[11m]")
            for t, d in s["values"]]


def in_flight(t: float, windows: List[Tuple[float, float]]) -> bool:
    """Was a scrape running at ``t``? Its samples (stamped with its start) would be invisible
    to a rule evaluated at ``t`` and visible to a later query at ``t``."""
    return any(s <= t <= s + d + 0.5 for s, d in windows)


def eval_times(prom: Prometheus, record: str) -> List[float]:
    """Times of the last 10 minutes at which ``record`` was evaluated, newest first."""
    one = query(prom, f"topk(1, {record})")
    if not one:
        return []
    matchers = ", ".join(f'{k}="{v}"' for k, v in _key(one[0]["metric"]))
    return sorted((float(t) for t, _ in matrix(prom, f"{record}{{{matchers}}}[10m]")[0]["values"]),
                  reverse=True)


#: Recorded per-``le`` increases that a rule set's statistics may read (rule_variants.py).
INCREASE_INPUT = re.compile(r"\b\w+:promdrift_feature_value_(?:bucket|bin):increase\w+")


def reads_rules(rules: RuleSet) -> bool:
    """Does some recording rule read a recording rule (a name with a colon)?"""
    return any(re.search(r"[a-zA-Z_]\w*:[\w:]+", e) for e in rules.records.values())


def compare(prom: Prometheus, recorded: RuleSet, raw: RuleSet, times: int
            ) -> List[Dict[str, Any]]:
    """Every rule both sets record: ``raw``'s expression (which reads only exported series)
    queried in ``recorded``'s Prometheus ``prom`` at times ``recorded``'s rule was evaluated,
    against what ``recorded`` recorded there."""
    out = []
    windows = scrapes(prom)
    for name in [n for n in recorded.records if n in raw.records]:
        row: Dict[str, Any] = {"record": name, "series": 0, "only_recorded": 0, "only_raw": 0,
                               "max_abs": 0.0, "max_rel": 0.0, "ratios": [], "times": 0,
                               "lag": 0.0}
        inputs = set(INCREASE_INPUT.findall(recorded.records[name])) - {name}
        for t in eval_times(prom, name):
            if row["times"] >= times:
                break
            # A rule reading a recorded increase of another group sees the data of that
            # group's last evaluation: the exact statistic to compare with is the one then.
            at = min([query(prom, f"max(timestamp({n}))", at=t)[0]["value"] for n in inputs]
                     or [t])
            if in_flight(t, windows) or in_flight(at, windows):
                continue
            a = {_key(r["metric"]): r["value"] for r in query(prom, name, at=t)}
            b = {_key(r["metric"]): r["value"] for r in query(prom, raw.records[name], at=at)}
            a, b = _comparable(a), _comparable(b)
            row["times"] += 1
            row["lag"] = max(row["lag"], t - at)
            row["only_recorded"] += len(a.keys() - b.keys())
            row["only_raw"] += len(b.keys() - a.keys())
            for k in a.keys() & b.keys():
                x, y = a[k], b[k]
                row["series"] += 1
                if math.isnan(x) and math.isnan(y):
                    continue
                d = abs(x - y)
                row["max_abs"] = max(row["max_abs"], d)
                row["max_rel"] = max(row["max_rel"], d / max(1.0, abs(x), abs(y)))
                if x:
                    row["ratios"].append(y / x)
        out.append(row)
    return out


def comparisons(proms: Dict[str, Prometheus], rule_sets: List[RuleSet], times: int
                ) -> Dict[str, Tuple[str, str, List[Dict[str, Any]]]]:
    """Each rule set against the first: (whose Prometheus and records, whose expressions,
    rows). The expressions are those of the set that reads only exported series."""
    ref, out = rule_sets[0], {}
    for other in rule_sets[1:]:
        if not reads_rules(other):
            out[other.name] = (ref.name, other.name, compare(proms[ref.name], ref, other, times))
        elif not reads_rules(ref):
            out[other.name] = (other.name, ref.name, compare(proms[other.name], other, ref, times))
    return out


def cpu_seconds(prom: Prometheus) -> float:
    """CPU time of the Prometheus process so far, to the nanosecond (the sum over its
    threads of ``/proc/PID/task/TID/schedstat``; ``process_cpu_seconds_total`` counts in
    10 ms ticks)."""
    total = 0
    base = f"/proc/{prom.proc.pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that just ended
            pass
    return total / 1e9


def timed_query(prom: Prometheus, expr: str, at: float) -> Tuple[float, float]:
    """(evaluation seconds from the query's own stats, CPU seconds of the Prometheus process)
    of one instant query at ``at``; the result is counted (``count(...)``) so that encoding
    it costs nothing."""
    before = cpu_seconds(prom)
    data = api(prom, "query", query=f"count(\n{expr}\n)", time=f"{at:.3f}", stats="all")
    return data["stats"]["timings"]["evalTotalTime"], cpu_seconds(prom) - before


def profile(proms: Dict[str, Prometheus], rule_sets: List[RuleSet], at: float, reps: int
            ) -> Dict[str, Dict[Tuple[str, str], Tuple[float, float]]]:
    """Every rule's expression run alone as an instant query at ``at``, ``reps`` times, the
    rule sets interleaved rule by rule (so that the machine's other load hits all alike):
    per rule set, (group, rule) -> (median query seconds, median CPU seconds). The CPU of an
    idle query (``vector(1)``, the own-metrics reads around it) is subtracted."""
    idle = {n: statistics.median(timed_query(p, "vector(1)", at)[1] for _ in range(5))
            for n, p in proms.items()}
    samples: Dict[str, Dict[Tuple[str, str], List[Tuple[float, float]]]] = {
        rs.name: {} for rs in rule_sets}
    for _ in range(reps):
        for i in range(max(len(rs.rules) for rs in rule_sets)):
            for rs in rule_sets:
                if i < len(rs.rules):
                    group, name, expr = rs.rules[i]
                    samples[rs.name].setdefault((group, name), []).append(
                        timed_query(proms[rs.name], expr, at))
    return {n: {k: (statistics.median(v[0] for v in vs),
                    max(0.0, statistics.median(v[1] for v in vs) - idle[n]))
                for k, vs in per.items()} for n, per in samples.items()}


def group_costs(prof: Dict[Tuple[str, str], Tuple[float, float]], intervals: Dict[str, float]
                ) -> Dict[str, Tuple[float, float]]:
    """Per group: (query seconds, CPU seconds) per minute, from a rule set's profile."""
    out: Dict[str, Tuple[float, float]] = {}
    for (g, _), (wall, cpu) in prof.items():
        w, c = out.get(g, (0.0, 0.0))
        out[g] = (w + wall * 60 / intervals[g], c + cpu * 60 / intervals[g])
    return out


# ---------------------------------------------------------------------------------- numpy check
#: Statistics checked against numpy, by the start of their record name.
NUMPY_STATISTICS = ("model_feature:promdrift_ks_statistic:", "model_feature:promdrift_psi:",
                    "model_feature:promdrift_ks_critical:")


def sample_features(features: int, k: int) -> List[str]:
    """``k`` feature names spread over ``f0000`` .. the last one."""
    return [f"f{j:04d}" for j in sorted({round(i * (features - 1) / max(1, k - 1))
                                        for i in range(k)})]


def numpy_statistics(prom: Prometheus, model: str, feature: str, window: str, at: float,
                     tests: int) -> Dict[str, float]:
    """KS, PSI and the KS critical value of one feature over ``window`` at ``at``, computed by
    ``promdrift.instrumentation.binning`` from the per-series ``increase`` of every bucket
    (summed over the replicas here) and the baseline gauges: what the rules compute in PromQL."""
    sel = f'model="{model}", feature="{feature}"'
    live: Dict[float, float] = {}
    for r in query(prom, f"increase(promdrift_feature_value_bucket{{{sel}}}[{window}])", at=at):
        le = float(r["metric"]["le"])
        live[le] = live.get(le, 0.0) + r["value"]
    base = {float(r["metric"]["le"]): r["value"]
            for r in query(prom, f"promdrift_baseline_feature_value_bucket{{{sel}}}", at=at)}
    if set(live) != set(base):
        raise ValueError(f"{model}/{feature}: live and baseline edges differ")
    les = sorted(live)
    live_bins = np.diff([live[le] for le in les], prepend=0.0)
    base_bins = np.diff([base[le] for le in les], prepend=0.0)
    thr = RulesConfig().thresholds
    return {
        "ks_statistic": binning.ks_statistic(live_bins, base_bins),
        "psi": binning.psi(live_bins, base_bins, floor=thr["psi_bin_floor"]),
        "ks_critical": thr.ks_critical(live[les[-1]], base[les[-1]], tests=tests),
    }


def numpy_check(prom: Prometheus, rules: RuleSet, model: str, features: int, sample: int,
                at: float, times: int) -> List[Dict[str, Any]]:
    """Every KS / PSI / critical value rule of ``rules`` (a set whose rules read only
    exported series) for ``sample`` features: its expression queried at ``times`` times a
    minute apart up to ``at`` (after the scrapes stopped, so the query and numpy read the
    same samples), against numpy's (:func:`numpy_statistics`). The critical value only for
    the generated default rules (the old rules had another critical value)."""
    names = [n for n in rules.records if n.startswith(NUMPY_STATISTICS)
             and (rules.source == "generated" or "ks_critical" not in n)]
    out = []
    for name in names:
        stat, window = name.split(":")[1].removeprefix("promdrift_"), name.split(":")[2]
        row: Dict[str, Any] = {"record": name, "times": 0, "values": 0, "max_abs": 0.0,
                               "max_rel": 0.0, "range": [math.inf, -math.inf]}
        wanted = set(sample_features(features, sample))
        for t in at - 60.0 * np.arange(times):
            got = {r["metric"]["feature"]: r["value"]
                   for r in query(prom, rules.records[name], at=t)
                   if r["metric"].get("model") == model and r["metric"]["feature"] in wanted}
            if set(got) != wanted:
                raise ValueError(f"{name} at {t}: no value for {sorted(wanted - set(got))}")
            row["times"] += 1
            for f, x in got.items():
                want = numpy_statistics(prom, model, f, window, t, features)[stat]
                d = abs(x - want)
                row["values"] += 1
                row["max_abs"] = max(row["max_abs"], d)
                row["max_rel"] = max(row["max_rel"], d / max(1.0, abs(want)))
                row["range"] = [min(row["range"][0], want), max(row["range"][1], want)]
        out.append(row)
    return out


#: Parts of the numeric statistics (``promdrift.promql.Expressions``), timed alone by
#: ``--fragments``: where a rule's time goes. (name, window-free, builder)
FRAGMENTS: List[Tuple[str, bool, Callable[[Expressions, str], str]]] = [
    ("numeric_count (n)", False, lambda e, w: e.numeric_count(FEATURE, w)),
    ("numeric_cumulative (increase of every bucket)", False,
     lambda e, w: e.numeric_cumulative(FEATURE, w)),
    ("live_cdf", False, lambda e, w: e.live_cdf(FEATURE, w)),
    ("baseline_cdf", True, lambda e, w: e.baseline_cdf(FEATURE)),
    ("bin_edge_signs", True, lambda e, w: e.bin_edge_signs(FEATURE)),
    ("live_bin_ratio (p of PSI)", False, lambda e, w: e.live_bin_ratio(FEATURE, w)),
    ("baseline_bin_ratio (q of PSI)", True, lambda e, w: e.baseline_bin_ratio(FEATURE)),
    ("ks", False, lambda e, w: e.ks(FEATURE, w)),
    ("ks_critical", False, lambda e, w: e.ks_critical(FEATURE, w)),
    ("psi", False, lambda e, w: e.psi(FEATURE, w)),
]


def fragments(prom: Prometheus, at: float, reps: int) -> List[Tuple[str, str, float, float]]:
    """(fragment, window, median query seconds, median CPU seconds) of every
    :data:`FRAGMENTS` part over every window of the default configuration (a window-free
    part once), at ``at``."""
    config = RulesConfig()
    e = Expressions(config)
    idle = statistics.median(timed_query(prom, "vector(1)", at)[1] for _ in range(5))
    out = []
    for i, w in enumerate(config.windows):
        for name, fixed, build in FRAGMENTS:
            if fixed and i:
                continue
            runs = [timed_query(prom, build(e, w), at) for _ in range(reps)]
            out.append((name, "-" if fixed else w, statistics.median(r[0] for r in runs),
                        max(0.0, statistics.median(r[1] for r in runs) - idle)))
    return out


# ---------------------------------------------------------------------------------- phase 1
@dataclass
class Result:
    fleet: str
    load: Tuple[str, str]
    gap: float
    watches: Dict[str, Watch]
    series: Dict[str, Dict[str, Tuple[int, int]]]
    head: Dict[str, float]
    windows: Dict[str, Dict[str, float]]
    alerts: Dict[str, Dict[Tuple[str, str], int]]
    comparisons: Dict[str, Tuple[str, str, List[Dict[str, Any]]]]
    numeric_features: int
    push_seconds: float
    errors: List[str]
    profile: Dict[str, Dict[Tuple[str, str], Tuple[float, float]]]
    load_profile: str
    numpy: Dict[str, List[Dict[str, Any]]]
    fragments: Dict[str, List[Tuple[str, str, float, float]]]


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


@dataclass
class Loaded:
    """A fleet whose history is in every Prometheus, live scrapes and rules running."""

    fleet: Fleet
    proms: Dict[str, Prometheus]
    gap: float  # seconds from the last historical sample to the first live scrape
    push_seconds: float


@contextlib.contextmanager
def loaded(workdir: str, fleet_spec: str, rule_sets: List[RuleSet],
           args: argparse.Namespace) -> Iterator[Loaded]:
    """Start the fleet and one Prometheus per rule set, send them the history, then let
    them scrape the targets and evaluate the rules (traffic running) until the block ends."""
    models, features = (int(x) for x in fleet_spec.lower().split("x"))
    interval = duration_seconds(args.interval, 15)
    steps = int(duration_seconds(args.history, 3600) // interval)
    proms: Dict[str, Prometheus] = {}
    with Fleet(models, features, args) as fleet:
        try:
            for rs in rule_sets:
                proms[rs.name] = Prometheus(
                    os.path.join(workdir, "prom-" + rs.name), [], [], interval=args.interval,
                    extra_args=["--web.enable-remote-write-receiver", "--web.enable-lifecycle"])
                proms[rs.name].__enter__()
            with open(next(iter(proms.values())).config_path) as f:
                job = json.load(f)["scrape_configs"][0]["job_name"]
            labels = fleet.series(job)
            print(f"[{fleet_spec}] {len(labels)} series x {steps} steps of history",
                  file=sys.stderr, flush=True)
            history = np.empty((steps, len(labels)))
            for i in range(steps):
                fleet.advance(interval)
                history[i] = fleet.values()
            fleet.check_series(labels)

            # The history ends when the live scrapes may start: ``--history-lead`` after now.
            t0 = time.time()
            end = t0 + duration_seconds(args.history_lead, 60)
            stamps = np.round((end - interval * np.arange(steps)[::-1]) * 1000).astype(np.int64)
            with concurrent.futures.ThreadPoolExecutor(len(proms)) as pool:
                for body in write_requests(labels, history, stamps, args.per_request,
                                           int(600 // interval)):
                    list(pool.map(lambda p: remote_write(p.url, body, args.timeout),
                                  proms.values()))
            del history
            for rs in rule_sets:  # recorded series that rules read over a range
                for name in rs.range_inputs():
                    step = duration_seconds(rs.groups[rs.group_of[name]], interval)
                    # (the head refuses samples an hour older than its newest one)
                    start = max(stamps[0] / 1000, end - 3600) + step
                    backfill_record(proms[rs.name], name, rs.records[name], start, end, step,
                                    args)
            push_seconds = time.time() - t0
            print(f"[{fleet_spec}] history sent in {push_seconds:.0f} s", file=sys.stderr,
                  flush=True)
            time.sleep(max(0.0, end - time.time()) + 0.5)
            fleet.start_traffic()
            for rs in rule_sets:
                reconfigure(proms[rs.name], os.path.join(workdir, "staged-" + rs.name),
                            [a.address for a in fleet.apps], rs.files, args.interval,
                            args.timeout)
            for p in proms.values():
                p.wait_up(len(fleet.apps), timeout=args.timeout)
            gap = min(r["value"] for p in proms.values()
                      for r in query(p, "min_over_time(timestamp(up)[5m:1s])")) - end
            yield Loaded(fleet, proms, gap, push_seconds)
        finally:
            for p in proms.values():
                p.__exit__(None, None, None)


def phase_rule_evaluation(workdir: str, fleet_spec: str, rule_sets: List[RuleSet],
                          args: argparse.Namespace) -> Result:
    interval = duration_seconds(args.interval, 15)
    load_start = loadavg()
    with loaded(workdir, fleet_spec, rule_sets, args) as run:
        proms, fleet = run.proms, run.fleet
        watches = {rs.name: Watch(proms[rs.name], rs, interval) for rs in rule_sets}
        for w in watches.values():
            w.begin()

        def enough() -> bool:
            for w in watches.values():
                w.poll()
            return all(w.enough(args.evaluations) for w in watches.values())
        try:
            wait_until(enough, timeout=args.measure_timeout, interval=1.0,
                       what="rule evaluations")
        except TimeoutError as e:  # report what was measured, and say so
            print(f"[{fleet_spec}] {e}; reporting the evaluations so far", file=sys.stderr)
        for w in watches.values():
            w.finish()
        profile_at = time.time() - 1
        load_end = loadavg()
        fleet.stop_traffic()
        run_s = max(w.elapsed for w in watches.values()) + 60
        errors: List[str] = []

        def attempt(what: str, fn: Callable[[], Any], default: Any) -> Any:
            try:
                return fn()
            except Exception as e:  # reported, and the run fails (a check that could not run)
                errors.append(f"{what}: {type(e).__name__}: {e}")
                return default
        series = {n: attempt(f"recorded series of {n}", lambda: recorded_series(
            p, rule_sets_by(rule_sets, n)), {}) for n, p in proms.items()}
        head = {n: own(p)["prometheus_tsdb_head_series"][""] for n, p in proms.items()}
        alerts = {n: attempt(f"alerts of {n}", lambda: {
            (r["metric"]["alertname"], r["metric"]["alertstate"]): int(r["value"])
            for r in query(p, f"count by (alertname, alertstate) "
                              f"(last_over_time(ALERTS[{run_s:.0f}s]))")}, {})
            for n, p in proms.items()}
        windows = {n: attempt(f"window checks of {n}", lambda: window_checks(p), {})
                   for n, p in proms.items()}
        # The value checks query the past: stop scraping and evaluating first (the queries
        # are as costly as the rules).
        for rs in rule_sets:
            reconfigure(proms[rs.name], os.path.join(workdir, "idle-" + rs.name), [], [],
                        args.interval, args.timeout)
        load_profile = loadavg()
        prof = attempt("profile", lambda: profile(proms, rule_sets, profile_at,
                                                   args.profile_reps), {})
        parts = {rs.name: attempt(f"fragments of {rs.name}", lambda: fragments(
            proms[rs.name], profile_at, args.profile_reps), []) for rs in rule_sets
            if args.fragments and rs.source == "generated"}
        load_profile += " / " + loadavg()
        checks = attempt("value checks", lambda: comparisons(proms, rule_sets,
                                                               args.check_times), {})
        features = fleet.numeric_features // fleet.models
        model = "bench" if fleet.models == 1 else "bench00"
        against_numpy = {rs.name: attempt(f"numpy check of {rs.name}", lambda: numpy_check(
            proms[rs.name], rs, model, features, args.numpy_features, profile_at,
            args.check_times), []) for rs in rule_sets if not reads_rules(rs)}
    return Result(fleet_spec, (load_start, load_end), run.gap, watches, series, head, windows,
                  alerts, checks, fleet.numeric_features, run.push_seconds, errors, prof,
                  load_profile, against_numpy, parts)


def rule_sets_by(rule_sets: List[RuleSet], name: str) -> RuleSet:
    return next(rs for rs in rule_sets if rs.name == name)


def report(result: Result, rule_sets: List[RuleSet], args: argparse.Namespace) -> List[str]:
    names = [rs.name for rs in rule_sets]
    ref = names[0]
    w = result.watches
    per_min = {n: w[n].per_minute() for n in names}
    totals = {n: sum(per_min[n].values()) for n in names}
    nf = result.numeric_features
    rec = {n: sum(s[0] for s in result.series[n].values()) for n in names}
    rec_num = {n: sum(s[1] for s in result.series[n].values()) for n in names}

    def ratio(n: str, values: Dict[str, float]) -> str:
        return f"{values[n] / values[ref]:.3f}" if values[ref] else "-"

    lines = [
        f"Fleet {result.fleet}: {nf} numeric features x {args.bins} bins x {args.replicas} "
        f"replicas ({args.categorical} categorical features in model {CAT_MODEL}); load "
        f"average {result.load[0]} at the start, {result.load[1]} at the end; history sent "
        f"in {result.push_seconds:.0f} s, first live scrape {result.gap:.0f} s after its "
        f"last sample; load average during the profile {result.load_profile}.",
        "",
        "| measure | " + " | ".join(names) + " | " + " | ".join(f"{n} / {ref}" for n in names[1:])
        + " |",
        "|---" * (1 + 2 * len(names) - 1) + "|",
    ]

    def row(label: str, values: Dict[str, float], fmt: str) -> str:
        return (f"| {label} | " + " | ".join(format(values[n], fmt) for n in names) + " | "
                + " | ".join(ratio(n, values) for n in names[1:]) + " |")
    costs = {n: group_costs(result.profile.get(n, {}), w[n].intervals) for n in names}
    missed = {n: sum(w[n].missed(g) for g in w[n].durations) for n in names}
    lines += [
        row("recorded series, numeric models, per numeric feature",
            {n: rec_num[n] / nf for n in names}, ".1f"),
        row("recorded series (all)", rec, ",.0f"),
        row("head series", result.head, ",.0f"),
        row("live: rule evaluation, s per minute (all groups)", totals, ".2f"),
        row("live: missed group iterations", missed, ".0f"),
        row("live: Prometheus CPU, s per minute (scrapes, rules, all)",
            {n: w[n].cpu_per_minute() for n in names}, ".1f"),
        row("profile: rule CPU, s per minute (all groups)",
            {n: sum(c[1] for c in costs[n].values()) for n in names}, ".2f"),
        row("profile: rule query time, s per minute (all groups)",
            {n: sum(c[0] for c in costs[n].values()) for n in names}, ".2f"),
    ]
    lines += ["", "| rule set | group | interval | rules | live evaluations | live median | "
              "live s/min | missed | profile query s/min | profile CPU s/min |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        for g, d in w[n].durations.items():
            live = (f"{statistics.median(d):.3f} s | {per_min[n][g]:.2f}" if d else " | ")
            q, c = costs[n].get(g, (float("nan"), float("nan")))
            lines.append(f"| {n} | {g} | {w[n].intervals[g]:.0f} s | "
                         f"{w[n].rule_counts.get(g, '?')} | {len(d)} | {live} | "
                         f"{w[n].missed(g)} | {q:.2f} | {c:.2f} |")
        lines.append(f"| {n} | all groups | | | | | {totals[n]:.2f} | {missed[n]} | "
                     f"{sum(c[0] for c in costs[n].values()):.2f} | "
                     f"{sum(c[1] for c in costs[n].values()):.2f} |")
    for n in names:
        slow = sorted(((cpu * 60 / w[n].intervals[g], cpu, wall, g, r)
                       for (g, r), (wall, cpu) in result.profile.get(n, {}).items()),
                      reverse=True)
        lines += ["", f"Costliest rules of {n} (profile; CPU s per evaluation, query s, CPU s "
                  f"per minute): " + "; ".join(
                      f"`{r}` ({g}) {c:.3f}, {q:.3f}, {pm:.2f}"
                      for pm, c, q, g, r in slow[:args.top_rules])]
        top = sorted(result.series[n].items(), key=lambda kv: -kv[1][1])
        lines.append(f"Recorded series per numeric feature of {n}: " + ", ".join(
            f"`{r}` {s[1] / nf:.1f}" for r, s in top if s[1] >= nf / 2) + ".")
    lines.append("")
    for n in names:
        c = result.windows[n]
        if not c:
            continue
        alerts = ", ".join(f"{a} {s}: {k}" for (a, s), k in sorted(result.alerts[n].items()))
        lines.append(
            f"{n}: 1h range of a counter holds {c['samples_1h_min']:.0f}-"
            f"{c['samples_1h_max']:.0f} samples; counter resets in the hour: "
            f"{c['resets_1h']:.0f}; bucket series in the hour {c['series_1h']:.0f}, now "
            f"{c['series_now']:.0f}; alerts pending or firing during the run: "
            f"{alerts or 'none'}.")
    for recorded, raw, rows in result.comparisons.values():
        lines += ["", f"Values: the `{raw}` expressions queried in the `{recorded}` Prometheus "
                  f"at times its rules evaluated (no scrape in flight), against what `{recorded}` "
                  f"recorded there (tolerance {TOLERANCE:g}, relative above 1):", "",
                  "| recording rule | times | series compared | only recorded / only queried "
                  "| input lag | max abs diff | verdict |", "|---|---|---|---|---|---|---|"]
        empty = []
        for r in rows:
            if not r["times"]:
                empty.append(r["record"])
                continue
            if not r["series"]:
                verdict = "NOT COMPARED (no series in common)"
            elif r["max_rel"] <= TOLERANCE:
                verdict = "equal"
            elif r["ratios"] and (max(r["ratios"]) - min(r["ratios"])) <= TOLERANCE * max(
                    map(abs, r["ratios"])):
                verdict = f"differs by the constant factor {r['ratios'][0]:.6f}"
            else:
                verdict = f"DIFFERENT (max relative {r['max_rel']:.3g})"
            lines.append(f"| `{r['record']}` | {r['times']} | {r['series']} | "
                         f"{r['only_recorded']} / {r['only_raw']} | {r['lag']:.0f} s | "
                         f"{r['max_abs']:.3g} | "
                         f"{verdict} |")
        if empty:
            lines += ["", f"Not compared: {len(empty)} rules without series (prediction "
                      f"outputs, quality, bias, attributions: this fleet has none) or without "
                      f"an evaluation time free of scrapes: " + ", ".join(
                          f"`{n}`" for n in empty if not re.match(
                              r"model_(output|facet)|.*(quality|attribution)", n)) + "."]
    for n, rows in result.numpy.items():
        if not rows:
            continue
        lines += ["", f"Against numpy: `{n}`'s statistics of {args.numpy_features} features "
                  f"(spread over the model), its expressions queried at {args.check_times} "
                  f"times a minute apart during the run, against "
                  f"`promdrift.instrumentation.binning` on the per-series `increase` of every "
                  f"bucket summed over the replicas and the baseline gauges at the same times "
                  f"(tolerance {TOLERANCE:g}, relative above 1):", "",
                  "| recording rule | times | values | numpy's values | max abs diff | "
                  "verdict |", "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| `{r['record']}` | {r['times']} | {r['values']} | "
                         f"{r['range'][0]:.4g} to {r['range'][1]:.4g} | {r['max_abs']:.3g} | "
                         f"{numpy_verdict(r)} |")
    for n, parts in result.fragments.items():
        lines += ["", f"Parts of `{n}`'s numeric statistics, each run alone as an instant query "
                  f"(`promdrift.promql.Expressions`; median of {args.profile_reps}, CPU of the "
                  f"Prometheus process):", "", "| part | window | query s | CPU s |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {w} | {q:.3f} | {c:.3f} |" for name, w, q, c in parts]
    lines += [f"Check failed: {e}" for e in result.errors]
    return lines


def numpy_verdict(row: Dict[str, Any]) -> str:
    if not row["values"]:
        return "NOT CHECKED"
    if row["max_rel"] <= TOLERANCE:
        return "equal"
    return f"DIFFERENT (max relative {row['max_rel']:.3g})"


def failures(result: Result) -> List[str]:
    """What makes the run fail: a statistic that differs from numpy or went unchecked, or a
    check that could not run."""
    out = [f"{n}: `{r['record']}` {numpy_verdict(r)}" for n, rows in result.numpy.items()
           for r in rows if numpy_verdict(r) != "equal"]
    out += [f"{n}: no statistic checked against numpy" for n, rows in result.numpy.items()
            if not rows]
    return out + [f"check failed: {e}" for e in result.errors]


def as_json(result: Result) -> Dict[str, Any]:
    """A run's measurements as plain data."""
    return {
        "fleet": result.fleet, "load": result.load, "load_profile": result.load_profile,
        "numeric_features": result.numeric_features, "head_series": result.head,
        "errors": result.errors, "numpy": result.numpy, "fragments": result.fragments,
        "rule_sets": {n: {
            "intervals": w.intervals, "live_durations": w.durations,
            "missed": {g: w.missed(g) for g in w.durations},
            "cpu_per_minute": w.cpu_per_minute(),
            "series": {r: list(c) for r, c in result.series.get(n, {}).items()},
            "profile": [{"group": g, "rule": r, "query_s": q, "cpu_s": c}
                        for (g, r), (q, c) in result.profile.get(n, {}).items()],
        } for n, w in result.watches.items()},
    }


def summary(results: List[Result], rule_sets: List[RuleSet]) -> List[str]:
    """Spread over repeated runs, per fleet: live evaluation s/min and profile CPU s/min of
    every rule set, and their ratios to the first."""
    names = [rs.name for rs in rule_sets]
    ref = names[0]

    def span(vals: List[float], fmt: str) -> str:
        return (format(vals[0], fmt) if len(vals) == 1 else
                f"{format(statistics.median(vals), fmt)} ({format(min(vals), fmt)}-"
                f"{format(max(vals), fmt)})")
    lines = ["| fleet | measure | runs | " + " | ".join(names) + " | "
             + " | ".join(f"{n} / {ref}" for n in names[1:]) + " |",
             "|---" * (3 + 2 * len(names) - 1) + "|"]
    for fleet in dict.fromkeys(r.fleet for r in results):
        rs = [r for r in results if r.fleet == fleet]
        measures = {
            "live eval s/min": [{n: sum(r.watches[n].per_minute().values()) for n in names}
                                for r in rs],
            "profile CPU s/min": [{n: sum(c[1] for c in group_costs(
                r.profile.get(n, {}), r.watches[n].intervals).values()) for n in names}
                for r in rs]}
        for label, tot in measures.items():
            lines.append(
                f"| {fleet} | {label} | {len(rs)} | "
                + " | ".join(span([t[n] for t in tot], ".2f") for n in names) + " | "
                + " | ".join(span([t[n] / t[ref] if t[ref] else float("nan") for t in tot],
                                  ".3f") for n in names[1:]) + " |")
    return lines


# ---------------------------------------------------------------------------------- phase 2
def phase_drift_to_webhook(workdir: str, args: argparse.Namespace) -> List[str]:
    fast = write_rules(fast_config(ranges={"5m": args.fast_window, "1h": args.fast_window},
                                   pending={"*": args.pending}),
                       os.path.join(workdir, "fast-rules"))
    drifted = {f"f{j:04d}" for j in range(args.drift_features)}
    with Fleet(1, args.latency_features, argparse.Namespace(
            **{**vars(args), "categorical": 0})) as fleet, WebhookReceiver() as hook, \
            Alertmanager(os.path.join(workdir, "am"), hook.url) as am, \
            Prometheus(os.path.join(workdir, "fast"), [a.address for a in fleet.apps], fast,
                       alertmanager=am.address, interval="1s") as prom:
        fleet.start_traffic()
        prom.wait_up(len(fleet.apps), timeout=args.timeout)
        window_s = duration_seconds(args.fast_window, 30)
        time.sleep(window_s + 2)  # the window holds only undrifted traffic now
        before = [a for a in hook.alerts() if a["labels"]["alertname"] == "PromdriftFeatureDrift"]
        injected = time.monotonic()
        fleet.shift, fleet.drifted = args.shift, args.drift_features

        def arrived() -> Optional[List[float]]:
            times = {}
            for a in hook.alerts():
                f = a["labels"].get("feature")
                if a["labels"]["alertname"] == "PromdriftFeatureDrift" and f in drifted:
                    times.setdefault(f, a["received_at"] - injected)
            return sorted(times.values()) if len(times) == len(drifted) else None
        delays = wait_until(arrived, timeout=args.timeout, interval=0.2, what="drift alerts")
        n_eval = query(prom, "model_feature:promdrift_feature_value_count:increase1h")
        false_alerts = [a for a in hook.alerts() if a["labels"]["alertname"] ==
                        "PromdriftFeatureDrift" and a["labels"].get("feature") not in drifted]
        slowest = max(own(prom)["prometheus_rule_group_last_duration_seconds"].values())
    n_window = statistics.median(s["value"] for s in n_eval) if n_eval else 0
    return [
        f"Drift to webhook: {args.drift_features} of {args.latency_features} features shift "
        f"by {args.shift} sd (all replicas); generated rules over windows of "
        f"{args.fast_window}, every for: {args.pending}; 1 s scrape and evaluation; "
        f"{version(Alertmanager.default_binary)} (group_wait 1s); ~{n_window:.0f} values per feature "
        f"in the window.",
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


# ---------------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prometheus", default=DEFAULT_PROMETHEUS, help="Prometheus binary")
    p.add_argument("--alertmanager", default=None,
                   help="Alertmanager binary (default: prometheus-alertmanager next to "
                        "--prometheus, else the one on PATH)")
    p.add_argument("--rules", action="append", default=None, metavar="NAME=SOURCE",
                   help="a rule set (repeatable; the first is the reference of the ratios "
                        "and the value check); default old=git:a58adf6 generated=generated")
    p.add_argument("--fleet", action="append", default=None, metavar="MODELSxFEATURES",
                   help="numeric models x numeric features each (repeatable; default 1x1000)")
    p.add_argument("--features", type=int, default=None, metavar="N",
                   help="one model of N numeric features (--fleet 1xN), e.g. 100 for a quick run")
    p.add_argument("--numpy-features", type=int, default=5,
                   help="features whose KS, PSI and critical value are checked against numpy")
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--categorical", type=int, default=10,
                   help="categorical features of the extra model " + CAT_MODEL)
    p.add_argument("--categories", type=int, default=10)
    p.add_argument("--rate", type=int, default=200, help="rows per second per replica")
    p.add_argument("--invalid", type=float, default=0.001, help="share of NaN feature values")
    p.add_argument("--interval", default="15s", help="scrape and global evaluation interval")
    p.add_argument("--history", default="70m", help="past scrapes loaded before the live ones")
    p.add_argument("--history-lead", default="3m",
                   help="the history ends this long after its upload starts")
    p.add_argument("--per-request", type=int, default=2000, help="series per remote write")
    p.add_argument("--evaluations", type=int, default=5,
                   help="evaluations of every group after its first")
    p.add_argument("--check-times", type=int, default=2,
                   help="evaluation times at which the rule sets' values are compared")
    p.add_argument("--profile-reps", type=int, default=3,
                   help="runs of every rule's expression in the sequential profile")
    p.add_argument("--repeat", type=int, default=1, help="runs of phase 1 (spread reported)")
    p.add_argument("--latency-features", type=int, default=100)
    p.add_argument("--fast-window", default="30s")
    p.add_argument("--pending", default="3s")
    p.add_argument("--drift-features", type=int, default=10)
    p.add_argument("--shift", type=float, default=1.0)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds, per wait")
    p.add_argument("--measure-timeout", type=float, default=900.0,
                   help="seconds, longest evaluation phase")
    p.add_argument("--skip-drift", action="store_true", help="skip phase 2")
    p.add_argument("--skip-eval", action="store_true", help="skip phase 1")
    p.add_argument("--top-rules", type=int, default=6, help="list the N slowest rules")
    p.add_argument("--fragments", action="store_true",
                   help="also time the parts of the generated rules' KS and PSI alone")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write every measurement of phase 1 to PATH (JSON)")
    args = p.parse_args(argv)
    if not os.access(args.prometheus, os.X_OK):
        p.error(f"--prometheus {args.prometheus}: not an executable (fetch Prometheus 3.5 "
                f"into .cache/engines, or pass the path of a binary)")
    Prometheus.default_binary = args.prometheus  # every Prometheus started here
    global QUERY_TIMEOUT
    QUERY_TIMEOUT = args.timeout
    am = args.alertmanager or os.path.join(os.path.dirname(args.prometheus),
                                           "prometheus-alertmanager")
    if os.access(am, os.X_OK):
        Alertmanager.default_binary = am

    out = [f"{version(args.prometheus)}; global scrape and evaluation interval {args.interval}."]
    results: List[Result] = []
    with tempfile.TemporaryDirectory(prefix="promdrift-bench-") as workdir:
        if not args.skip_eval:
            rule_sets = [load_rule_set(s, workdir) for s in
                         (args.rules or ["old=git:a58adf6", "generated=generated"])]
            out.append("Rule sets: " + "; ".join(
                f"{rs.name} = {rs.source} (groups: " + ", ".join(
                    f"{g} {i or args.interval}" for g, i in rs.groups.items()) + ")"
                for rs in rule_sets) + ".")
            fleets = (args.fleet or []) + ([f"1x{args.features}"] if args.features else [])
            for run in range(args.repeat):
                for fleet in fleets or ["1x1000"]:
                    results.append(phase_rule_evaluation(
                        os.path.join(workdir, f"run{run}-{fleet}"), fleet, rule_sets, args))
                    out += [""] + report(results[-1], rule_sets, args)
                    print("\n".join(out), flush=True)
                    out = []
            if args.repeat > 1:
                out += ["", "Spread over the runs (median, min-max):", ""]
                out += summary(results, rule_sets)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump([as_json(r) for r in results], f, indent=1)
        if not args.skip_drift:
            out += [""] + phase_drift_to_webhook(workdir, args)
    failed = [f"[{r.fleet}] {f}" for r in results for f in failures(r)]
    out += ["", "FAILED: " + "; ".join(failed) if failed else
            "Checks passed: every KS, PSI and critical value checked equals numpy's."]
    print("\n".join(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
