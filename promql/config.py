"""The options of the rule generator, checked, with today's values as defaults.

    >>> from promdrift.promql.config import RulesConfig
    >>> cfg = RulesConfig(keep_labels=["cluster"], selector='job="model"')
    >>> cfg.by("model", "feature")
    'model, model_version, baseline, feature, cluster'
    >>> cfg.range("1h"), RulesConfig(time_scale=60).range("1h")
    ('1h', '1m')
    >>> RulesConfig(windows=["5m", "1h", "1d"]).windows
    ('5m', '1h', '1d')
    >>> RulesConfig(keep_labels=["cluster", "model_version"]).keep_labels  # always kept
    ('cluster',)
    >>> RulesConfig(keep_labels=["feature"])
    Traceback (most recent call last):
    ...
    ValueError: keep_labels: 'feature' is one of promdrift's own labels
    >>> RulesConfig.from_mapping({"windows": ["5m", "1hour"]})
    Traceback (most recent call last):
    ...
    ValueError: windows: '1hour' is not a Prometheus duration (like 30s, 5m, 1h, 1d, 1h30m)

Every option, its default and its meaning are listed in :data:`OPTIONS` (and in
docs/metrics.md, "Generating rules and dashboards"). A configuration file is a YAML or
JSON mapping of these options; an unknown key, a label name Prometheus would refuse, a
window that does not parse or a negative threshold is refused with an error naming it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from promdrift.extras import require
from promdrift.instrumentation.spec import Thresholds

__all__ = ["RulesConfig", "OPTIONS", "ALERT_NAMES", "parse_duration", "format_duration",
           "DEFAULT_RUNBOOK_URL", "RESERVED_LABELS", "VERSION_LABELS"]

#: Every alert the generator writes, with its default pending duration (``for:``).
ALERT_NAMES: Dict[str, str] = {
    "PromdriftFeatureDrift": "15m",
    "PromdriftPredictionDrift": "15m",
    "PromdriftPredictionClassDrift": "15m",
    "PromdriftFeaturePSIHigh": "15m",
    "PromdriftCategoricalDrift": "15m",
    "PromdriftUnseenCategoryShareHigh": "15m",
    "PromdriftInvalidValuesHigh": "10m",
    "PromdriftBaselineMissing": "15m",
    "PromdriftInstrumentationErrors": "15m",
    "PromdriftExporterRejectionsHigh": "10m",
    "PromdriftBaselineInconsistent": "30m",
    "PromdriftModelQualityDegraded": "15m",
    "PromdriftBiasDrift": "15m",
    "PromdriftAttributionDrift": "15m",
    "PromdriftInvalidRequestsHigh": "10m",
}

DEFAULT_RUNBOOK_URL = "https://github.com/promdrift/promdrift/blob/main/docs/runbook.md#{anchor}"

#: The labels that tell a model's baselines apart: every statistic of a model is computed per
#: value of them (each baseline's live counts against that baseline only, summed over the
#: replicas serving it), so rolling updates, canaries and refits never mix two baselines.
#: ``baseline`` is the baseline's digest, on every series; ``model_version`` is there when
#: the model server sets it (``DriftMonitor(..., model_version=...)``).
VERSION_LABELS: Tuple[str, ...] = ("model_version", "baseline")

#: Labels of promdrift's own series: a kept label may not reuse them.
RESERVED_LABELS = frozenset({
    "model", "model_version", "baseline", "feature", "output", "le", "category", "class",
    "reason", "upper", "lower", "actual", "predicted", "facet", "group", "metric", "created",
    "schema_version", "status", "kind", "alertname", "severity", "route", "code",
})

#: option -> (default, meaning), in documentation order.
OPTIONS: Dict[str, Tuple[Any, str]] = {
    "windows": (("5m", "1h"), "the windows statistics are recorded for; each gets its own "
                "rule groups (promdrift-<window>, promdrift-quality-<window>)"),
    "alert_window": ("1h", "the window the distribution, quality, bias alerts read"),
    "fast_window": ("5m", "the window the invalid-value, invalid-request, instrumentation-"
                    "error and exporter-rejection alerts read"),
    "keep_labels": ((), "target labels kept besides model / model_version / baseline / "
                    "feature (e.g. cluster, namespace, env): statistics are computed per "
                    "value of them instead of pooling every target serving a baseline"),
    "selector": ("", "label matchers added to every selector of promdrift's series, e.g. "
                 "'job=\"model-server\", env!=\"dev\"'"),
    "thresholds": ({}, "threshold overrides (promdrift.instrumentation.spec.SETTINGS)"),
    "for": ({}, "pending duration per alert name ('*' for every alert)"),
    "intervals": ({}, "evaluation interval per window's groups (null: the global "
                  "evaluation_interval); by default every 1m, windows of 1d or more every "
                  "5m"),
    "runbook_url": (DEFAULT_RUNBOOK_URL, "runbook link of every alert; {alert} is the alert "
                    "name, {anchor} its lower-cased name"),
    "time_scale": (1.0, "divide every duration (window ranges, for:, intervals) by this, to "
                   "try alerts in minutes; rule names keep the window names"),
    "ranges": ({}, "explicit range per window name, overriding time_scale (tests)"),
    "manifest": ({"name": "promdrift", "namespace": None, "labels": {}},
                 "metadata of the PrometheusRule manifest"),
}

_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_duration(text: Any, option: str = "duration") -> float:
    """Seconds of a Prometheus duration (``90s``, ``5m``, ``1h30m``, ``1d``, ``500ms``)."""
    s = str(text).strip()
    m = _DURATION.match(s)
    if not s or m is None or not any(m.groups()):
        raise ValueError(f"{option}: {text!r} is not a Prometheus duration "
                         f"(like 30s, 5m, 1h, 1d, 1h30m)")
    values = [int(g or 0) for g in m.groups()]
    seconds = sum(v * mult for v, (_, mult) in zip(values, _UNITS)) + values[-1] / 1000
    if seconds <= 0:
        raise ValueError(f"{option}: {text!r} must be longer than 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration of ``seconds`` (rounded to milliseconds).

        >>> format_duration(3600), format_duration(90), format_duration(0.25), format_duration(86400)
        ('1h', '1m30s', '250ms', '1d')
    """
    ms = int(round(seconds * 1000))
    if ms <= 0:
        raise ValueError(f"duration {seconds!r} s rounds to 0 ms")
    out, rest = [], ms // 1000
    for unit, mult in _UNITS:
        if unit in ("y", "w"):
            continue
        if rest >= mult:
            out.append(f"{rest // mult}{unit}")
            rest %= mult
    if ms % 1000:
        out.append(f"{ms % 1000}ms")
    return "".join(out)


def _label_name(name: Any, option: str) -> str:
    if not isinstance(name, str) or not _LABEL.match(name) or name.startswith("__"):
        raise ValueError(f"{option}: {name!r} is not a valid Prometheus label name")
    return name


def parse_selector(text: str) -> List[str]:
    """The matchers of ``text`` (``a="x", b!~"y.*"``), each as ``name op "value"``."""
    s = text.strip().strip("{}").strip()
    if not s:
        return []
    out, pos = [], 0
    while pos < len(s):
        m = _MATCHER.match(s, pos)
        if m is None:
            raise ValueError(f"selector: cannot read {s[pos:]!r}: expected label matchers "
                             f'like job="model", env!="dev" (double-quoted values)')
        name, op, value = m.groups()
        if name == "__name__":
            raise ValueError("selector: __name__ cannot be matched (it selects promdrift's series)")
        if op in ("=~", "!~"):
            try:
                re.compile(json.loads(f'"{value}"'))
            except (re.error, ValueError) as e:
                raise ValueError(f"selector: {name}{op}\"{value}\" is not a valid regular "
                                 f"expression: {e}") from None
        out.append(f'{name}{op}"{value}"')
        pos = m.end()
    return out


@dataclass(frozen=True)
class RulesConfig:
    """Options of ``promdrift rules``; every field has today's behaviour as its default."""

    windows: Tuple[str, ...] = ("5m", "1h")
    alert_window: str = "1h"
    fast_window: str = "5m"
    keep_labels: Tuple[str, ...] = ()
    selector: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    pending: Mapping[str, str] = field(default_factory=dict)  # "for" in files and flags
    intervals: Mapping[str, Optional[str]] = field(default_factory=dict)
    runbook_url: str = DEFAULT_RUNBOOK_URL
    time_scale: float = 1.0
    ranges: Mapping[str, str] = field(default_factory=dict)
    manifest: Mapping[str, Any] = field(
        default_factory=lambda: {"name": "promdrift", "namespace": None, "labels": {}})

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if isinstance(self.windows, str):
            raise ValueError("windows: give a list of durations, e.g. [5m, 1h]")
        windows = tuple(str(w).strip() for w in self.windows)
        if not windows:
            raise ValueError("windows: at least one window is needed")
        seen = set()
        for w in windows:
            secs = parse_duration(w, "windows")
            if format_duration(secs) != w:
                raise ValueError(f"windows: write {w!r} as {format_duration(secs)!r} (window "
                                 f"names become rule names, so each has one spelling)")
            if w in seen:
                raise ValueError(f"windows: {w!r} is listed twice")
            seen.add(w)
        set_("windows", windows)
        for name in ("alert_window", "fast_window"):
            if getattr(self, name) not in windows:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of the windows "
                                 f"{list(windows)}")
        if isinstance(self.keep_labels, str):
            raise ValueError("keep_labels: give a list of label names, e.g. [cluster, env]")
        keep = tuple(_label_name(k, "keep_labels") for k in self.keep_labels)
        if len(set(keep)) != len(keep):
            raise ValueError(f"keep_labels: a label is listed twice in {list(keep)}")
        for k in keep:
            if k in RESERVED_LABELS and k not in VERSION_LABELS:
                raise ValueError(f"keep_labels: {k!r} is one of promdrift's own labels")
        # model_version and baseline are always kept: listing them changes nothing
        set_("keep_labels", tuple(k for k in keep if k not in VERSION_LABELS))
        if not isinstance(self.selector, str):
            raise ValueError(f"selector: expected a string of label matchers, got {self.selector!r}")
        set_("selector", ", ".join(parse_selector(self.selector)))
        if isinstance(self.thresholds, Mapping) and not isinstance(self.thresholds, Thresholds):
            try:
                set_("thresholds", Thresholds(**dict(self.thresholds)))
            except ValueError as e:
                raise ValueError(f"thresholds: {e}") from None
        pending = dict(self.pending)
        for alert, dur in pending.items():
            if alert != "*" and alert not in ALERT_NAMES:
                raise ValueError(f"for: unknown alert {alert!r} (known: {', '.join(ALERT_NAMES)}, or '*')")
            parse_duration(dur, f"for: {alert}")
        set_("pending", pending)
        intervals = dict(self.intervals)
        for w, dur in intervals.items():
            if w not in windows:
                raise ValueError(f"intervals: {w!r} is not one of the windows {list(windows)}")
            if dur is not None:
                parse_duration(dur, f"intervals: {w}")
        set_("intervals", intervals)
        try:
            scale = float(self.time_scale)
        except (TypeError, ValueError):
            raise ValueError(f"time_scale: expected a number, got {self.time_scale!r}") from None
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"time_scale: must be a positive number, got {self.time_scale!r}")
        set_("time_scale", scale)
        ranges = dict(self.ranges)
        for w, dur in ranges.items():
            if w not in windows:
                raise ValueError(f"ranges: {w!r} is not one of the windows {list(windows)}")
            parse_duration(dur, f"ranges: {w}")
        set_("ranges", ranges)
        if not isinstance(self.runbook_url, str) or not self.runbook_url:
            raise ValueError("runbook_url: expected a URL pattern")
        try:
            self.runbook_url.format(alert="A", anchor="a")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"runbook_url: only {{alert}} and {{anchor}} may be used: "
                             f"{self.runbook_url!r} ({e})") from None
        manifest = {"name": "promdrift", "namespace": None, "labels": {}, **dict(self.manifest)}
        unknown = set(manifest) - {"name", "namespace", "labels"}
        if unknown:
            raise ValueError(f"manifest: unknown key(s) {sorted(unknown)} (known: name, "
                             f"namespace, labels)")
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", str(manifest["name"])):
            raise ValueError(f"manifest: name {manifest['name']!r} is not a Kubernetes name")
        if not isinstance(manifest["labels"], Mapping):
            raise ValueError("manifest: labels must be a mapping")
        set_("manifest", manifest)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "RulesConfig":
        """From a parsed configuration file: the keys of :data:`OPTIONS`."""
        if not isinstance(data, Mapping):
            raise ValueError("a rules configuration is a mapping of options")
        unknown = [k for k in data if k not in OPTIONS]
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} (known: {', '.join(OPTIONS)})")
        kwargs = {("pending" if k == "for" else k): v for k, v in data.items()}
        for key in ("windows", "keep_labels"):
            if key in kwargs and kwargs[key] is None:
                kwargs[key] = ()
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str) -> "RulesConfig":
        """From a YAML or JSON file."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if not path.endswith(".json"):
            require("rules", "yaml", "PyYAML")
        try:
            if path.endswith(".json"):
                data = json.loads(text)
            else:
                import yaml
                data = yaml.safe_load(text)
        except Exception as e:  # noqa: BLE001 (any parse error, named with the file)
            raise ValueError(f"{path}: cannot parse: {e}") from None
        try:
            return cls.from_mapping(data or {})
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def replace(self, **changes: Any) -> "RulesConfig":
        return replace(self, **changes)

    def changed(self) -> Dict[str, Any]:
        """The options that differ from the defaults, as a configuration mapping."""
        default = RulesConfig()
        out: Dict[str, Any] = {}
        for f in fields(self):
            value, base = getattr(self, f.name), getattr(default, f.name)
            key = "for" if f.name == "pending" else f.name
            if f.name == "thresholds":
                if value.changed():
                    out[key] = value.changed()
            elif value != base:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    # ------------------------------------------------------------------ use
    def by(self, *labels: str, per_baseline: bool = True) -> str:
        """``labels`` plus the kept labels, as a ``by (...)`` / ``on (...)`` list; after
        ``model``, the :data:`VERSION_LABELS` (a model's statistics are per baseline) unless
        ``per_baseline`` is false."""
        out: Tuple[str, ...] = ()
        for label in labels:
            extra = VERSION_LABELS if label == "model" and per_baseline else ()
            out += (label,) + extra
        return ", ".join(out + self.keep_labels)

    def seconds(self, duration: str) -> float:
        return parse_duration(duration) / self.time_scale

    def range(self, window: str) -> str:
        """The range selector of ``window`` (its name, scaled by ``time_scale``)."""
        if window in self.ranges:
            return self.ranges[window]
        return format_duration(self.seconds(window))

    def pending_for(self, alert: str) -> str:
        if alert in self.pending:
            return self.pending[alert]
        if "*" in self.pending:
            return self.pending["*"]
        return format_duration(self.seconds(ALERT_NAMES[alert]))

    def interval(self, window: Optional[str]) -> Optional[str]:
        """The evaluation interval of ``window``'s groups (None: the global one)."""
        if window is None:
            return None
        if window in self.intervals:
            dur = self.intervals[window]
        else:
            secs = parse_duration(window)
            # every minute, whatever the engine's global interval: a 5m window evaluated every
            # 15 s costs four times as much for alerts that wait minutes anyway
            # (benchmarks/README.md, "Rule evaluation")
            dur = "5m" if secs >= 86400 else "1m"
        return None if dur is None else format_duration(self.seconds(dur))

    def runbook(self, alert: str) -> str:
        return self.runbook_url.format(alert=alert, anchor=alert.lower())


def config_from_args(base: RulesConfig, *, windows: Sequence[str] = (),
                     keep_labels: Sequence[str] = (), settings: Sequence[str] = (),
                     pending: Sequence[str] = (), intervals: Sequence[str] = (),
                     ranges: Sequence[str] = (), **simple: Any) -> RulesConfig:
    """``base`` with command-line overrides (``NAME=VALUE`` strings for the mappings)."""
    def pairs(items: Iterable[str], option: str) -> Dict[str, str]:
        out = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"{option}: expected NAME=VALUE, got {item!r}")
            out[key.strip()] = value.strip()
        return out

    changes: Dict[str, Any] = {k: v for k, v in simple.items() if v is not None}
    if windows:
        changes["windows"] = tuple(windows)
    if keep_labels:
        changes["keep_labels"] = tuple(keep_labels)
    if settings:
        try:
            changes["thresholds"] = base.thresholds.replace(**pairs(settings, "--set"))
        except ValueError as e:
            raise ValueError(f"--set: {e}") from None
    if pending:
        changes["pending"] = {**base.pending, **pairs(pending, "--for")}
    if intervals:
        changes["intervals"] = {**base.intervals, **{
            k: (None if v.lower() in ("", "none", "null", "global") else v)
            for k, v in pairs(intervals, "--interval").items()}}
    if ranges:
        changes["ranges"] = {**base.ranges, **pairs(ranges, "--range")}
    return base.replace(**changes)

