"""Offline drift report over captured rows: exact statistics, constraint violations, HTML.

    >>> import tempfile
    >>> from promdrift.instrumentation import Baseline
    >>> from promdrift.instrumentation.capture import DataCapture
    >>> from promdrift.exporter.report import Thresholds, build_report
    >>> baseline = Baseline.fit({"x": [float(i) for i in range(100)]}, model="m", bins=4)
    >>> directory = tempfile.mkdtemp()
    >>> with DataCapture(directory, registry=None) as capture:
    ...     for i in range(1500):
    ...         _ = capture.record({"x": 50.0 + i / 5, "y": 1}, model="m")
    >>> report = build_report(baseline, directory)
    >>> report.rows, report.features[0].ks_method, round(report.features[0].ks, 3)
    (1500, 'binned', 0.669)
    >>> sorted({v.check for v in report.violations})
    ['baseline_drift_check', 'extra_column_check', 'range_check']

``promdrift report --baseline baseline.json CAPTURE_DIR -o report.html`` runs this and writes
``report.html`` and ``violations.json`` (see docs/capture.md for every statistic and check).

The baseline holds binned counts, not the training rows, so the exact two-sample
Kolmogorov-Smirnov statistic needs the training data (``train=`` / ``--train train.csv``).
Without it the report gives the KS distance of the captured values binned at the baseline's
edges: exactly what the PromQL rule ``model_feature:promdrift_ks_statistic:1h`` computes over
a window, a lower bound of the exact statistic. The report says which one it shows.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from promdrift.instrumentation.training.baseline import OTHER, Baseline, Column, NumericColumn
from promdrift.instrumentation import spec
from promdrift.instrumentation.binning import (bin_counts,
                                               ks_statistic, psi, total_variation,
                                               tvd_noise)
from promdrift.instrumentation.capture.reader import NONFINITE, CaptureFiles, file_time
from promdrift.instrumentation.files import atomic_write
from promdrift.instrumentation.training.multivariate import Multivariate
from promdrift.instrumentation.values import ABSENT as _ABSENT, REASONS, VALID, category, number

__all__ = ["Thresholds", "FeatureReport", "Violation", "Report", "ReportError",
           "build_report", "ks_2samp", "render_html", "violations_json", "write_report",
           "utc_time", "CHECKS"]

#: Every ``constraint_check_type`` this report emits.
CHECKS = ("missing_column_check", "extra_column_check", "data_type_check",
          "completeness_check", "range_check", "categorical_values_check",
          "baseline_drift_check")


class ReportError(ValueError):
    """Unusable input to the report (no capture directory, unreadable training data …)."""


_SPEC = spec.Thresholds()


@dataclass(frozen=True)
class Thresholds:
    """When a check becomes a violation. The drift checks judge like the alerts, with the
    defaults of ``promdrift.instrumentation.spec`` (the one table of thresholds); the data
    quality checks follow SageMaker Model Monitor's ``monitoring_config`` (0.1).

        >>> Thresholds().drift, Thresholds(drift=0.2).drift
        (0.1, 0.2)

    - ``datatype``: share of given (non-null) values of the wrong type (a string that spells
      no number for a numeric feature, a list or object anywhere) above which
      ``data_type_check`` fires.
    - ``completeness``: ``completeness_check`` fires when the share of rows with a valid value
      is more than this below the training share.
    - ``drift``: ``baseline_drift_check`` fires when the KS statistic (numeric) exceeds it
      (the alerts' ``ks_min_effect``) and the two-sample critical value, or the total
      variation distance (categorical) exceeds its no-drift value by more than it (the
      alerts' ``tvd_max``, equal by default).
    - ``ks_alpha``: level of the KS test; family-wise over the model's numeric columns as in
      the alerts (``spec`` ``ks_familywise``): critical value ``c(ks_alpha / F) *
      sqrt(1/n + 1/m)``.
    - ``domain``: ``categorical_values_check`` fires when the share of values outside the
      baseline's categories exceeds the training ``__other__`` share by more than this.
    - ``range_tolerance``, ``range_share``: ``range_check`` fires when more than
      ``range_share`` of the valid values lie outside the training
      ``[min - t * (max - min), max + t * (max - min)]``.
    - ``min_samples``: drift checks need this many valid captured values (the alerts'
      ``min_samples``).
    """

    datatype: float = 0.1
    completeness: float = 0.05
    drift: float = _SPEC.ks_min_effect
    ks_alpha: float = _SPEC.ks_alpha
    domain: float = 0.1
    range_tolerance: float = 0.0
    range_share: float = 0.01
    min_samples: int = _SPEC.min_samples

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not value >= 0 or not math.isfinite(value):
                raise ReportError(f"threshold {name} must be a finite number >= 0, "
                                  f"got {value!r}")
        try:
            spec.Thresholds(ks_alpha=self.ks_alpha)
        except ValueError as e:
            raise ReportError(str(e)) from None

    def ks_critical(self, n: float, m: float, tests: int) -> float:
        """The KS critical value for a model with ``tests`` numeric columns of this role."""
        return _SPEC.replace(ks_alpha=self.ks_alpha).ks_critical(n, m, tests=tests)


@dataclass
class Violation:
    """One failed check, in the shape of SageMaker's ``constraint_violations.json`` entries
    (plus the measured ``value`` and the ``threshold`` it was compared with).

        >>> Violation("age", "range_check", "3% outside", 0.03, 0.01).to_dict()["constraint_check_type"]
        'range_check'
    """

    feature_name: str
    check: str
    description: str
    value: Optional[float] = None
    threshold: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"feature_name": self.feature_name,
                             "constraint_check_type": self.check,
                             "description": self.description}
        if self.value is not None:
            d["value"] = _finite(self.value)
        if self.threshold is not None:
            d["threshold"] = _finite(self.threshold)
        return d


def _finite(x: float) -> Any:
    return x if math.isfinite(x) else str(x)


@dataclass
class FeatureReport:
    """Statistics of one feature (``role="feature"``) or prediction output (``"output"``).

        >>> from promdrift.instrumentation.training.baseline import CategoricalColumn
        >>> col = CategoricalColumn("plan", categories=("a",), counts=(9, 1), invalid=0,
        ...                         distinct=2)
        >>> f = FeatureReport("plan", "feature", col, rows=4, null=1,
        ...                   counts=np.array([1, 2]))
        >>> f.missing_rate, round(f.unseen_rate, 3), f.baseline_other_share
        (0.25, 0.667, 0.1)

    Counts of rows by what they held (``missing`` absent, ``null``, ``nan``, ``inf``,
    ``wrong_type``), ``counts`` of the valid values over the baseline's bins or categories
    (``__other__`` last), and the statistics of docs/capture.md.
    """

    name: str
    role: str
    column: Column
    rows: int = 0
    missing: int = 0
    null: int = 0
    nan: int = 0
    inf: int = 0
    wrong_type: int = 0
    counts: Optional[np.ndarray] = None  # captured counts over the baseline's labels / bins
    values: Optional[np.ndarray] = None  # numeric: the valid captured values
    unseen: Dict[str, int] = field(default_factory=dict)  # categorical: values outside top-K
    ks: Optional[float] = None
    ks_method: str = ""
    ks_critical: Optional[float] = None
    psi: Optional[float] = None
    tvd: Optional[float] = None
    out_of_range: Optional[float] = None
    violations: List[Violation] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.column.kind

    @property
    def valid(self) -> int:
        return int(self.counts.sum()) if self.counts is not None else 0

    @property
    def missing_rate(self) -> float:
        """Share of rows where the value is absent or null."""
        return (self.missing + self.null) / self.rows if self.rows else 0.0

    @property
    def invalid_rate(self) -> float:
        """Share of rows with NaN, an infinity or a value of the wrong type."""
        return (self.nan + self.inf + self.wrong_type) / self.rows if self.rows else 0.0

    @property
    def completeness(self) -> float:
        return self.valid / self.rows if self.rows else 0.0

    @property
    def baseline_completeness(self) -> float:
        c = self.column
        return c.count / (c.count + c.invalid) if c.count + c.invalid else 0.0

    @property
    def unseen_rate(self) -> Optional[float]:
        """Categorical: share of valid values outside the baseline's top-K categories."""
        if self.kind != "categorical" or not self.valid:
            return None
        return float(self.counts[-1]) / self.valid

    @property
    def baseline_other_share(self) -> Optional[float]:
        if self.kind != "categorical":
            return None
        return self.column.counts[-1] / self.column.count

    @property
    def severity(self) -> Tuple[int, float]:
        """Sort key, worst first: violations, then drift relative to its threshold."""
        stat = self.ks if self.kind == "numeric" else self.tvd
        return (len(self.violations), stat or 0.0)


@dataclass
class Report:
    """The result of :func:`build_report`: every feature's statistics and all violations.

        >>> import tempfile
        >>> b = Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="m", bins=2)
        >>> r = build_report(b, tempfile.mkdtemp())
        >>> r.rows, [f.name for f in r.sorted_features], r.violations
        (0, ['x'], [])
    """

    model: str
    baseline: Baseline
    directory: str
    thresholds: Thresholds
    features: List[FeatureReport]
    violations: List[Violation]
    rows: int = 0
    other_models: Dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    extra_columns: Dict[str, int] = field(default_factory=dict)
    files: int = 0
    truncated: int = 0
    bad_lines: int = 0
    ks_method: str = "binned"
    first_time: str = ""
    last_time: str = ""
    #: the time window read (``since`` inclusive, ``until`` exclusive), when one was given
    since: Optional[_dt.datetime] = None
    until: Optional[_dt.datetime] = None
    #: rows of the model outside the window, and rows without a time (skipped in a window)
    outside_window: int = 0
    untimed: int = 0

    @property
    def window(self) -> str:
        """The time window read, in words (empty without one)."""
        if self.since is None and self.until is None:
            return ""

        def fmt(t: _dt.datetime) -> str:
            return t.isoformat().replace("+00:00", "Z")
        return (f"from {fmt(self.since) if self.since else 'the first row'} (inclusive) to "
                f"{fmt(self.until) + ' (exclusive)' if self.until else 'the last row'}")

    @property
    def sorted_features(self) -> List[FeatureReport]:
        return sorted(self.features, key=lambda f: f.severity, reverse=True)


# ---------------------------------------------------------------------- time window
def utc_time(text: str, option: str = "time") -> _dt.datetime:
    """An ISO 8601 time with ``Z`` or an offset, as an aware UTC datetime; ``ReportError``
    for a time without a zone (whose zone would be a guess) or anything else::

        >>> utc_time("2026-11-22T01:50:05Z"), utc_time("2026-11-22T03:50+02:00")
        (datetime.datetime(2026, 11, 22, 1, 50, 5, tzinfo=datetime.timezone.utc), \
datetime.datetime(2026, 11, 22, 1, 50, tzinfo=datetime.timezone.utc))
    """
    text = text.strip()
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{option} {text!r} is not an ISO 8601 time such as "
                          f"2026-11-22T01:50:05Z or 2026-11-22T02:50:05+01:00") from None
    if t.tzinfo is None or t.utcoffset() is None:
        whole = text if "T" in text or " " in text else text + "T00:00:00"
        raise ReportError(f"{option} {text!r} has no time zone: capture times are UTC, so "
                          f"write {whole}Z for UTC, or give the offset of your zone "
                          f"({whole}+02:00)")
    return t.astimezone(_dt.timezone.utc)


def _row_time(rec: Mapping[str, Any], path: Optional[str]) -> Optional[_dt.datetime]:
    """When a captured row was recorded: its ``time`` (UTC), else its file's name time."""
    t = rec.get("time")
    if isinstance(t, str):
        try:
            parsed = _dt.datetime.fromisoformat(t)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=_dt.timezone.utc)  # capture writes UTC
            return parsed.astimezone(_dt.timezone.utc)
    return file_time(path) if path else None


# ---------------------------------------------------------------------- statistics
def ks_2samp(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sample Kolmogorov-Smirnov statistic ``sup |F_a(x) - F_b(x)|`` (numpy only;
    the same number as ``scipy.stats.ks_2samp(a, b).statistic``).

        >>> ks_2samp([1.0, 2.0, 3.0], [2.5, 3.5])
        0.6666666666666666
    """
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples must be non-empty")
    x = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, x, side="right") / a.size
    cdf_b = np.searchsorted(b, x, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _decoded(v: Any) -> Any:
    """A captured value as the monitor saw it: capture files hold non-finite floats as the
    strings "NaN", "Infinity", "-Infinity"."""
    return NONFINITE[v] if type(v) is str and v in NONFINITE else v


def _number(v: Any, coerce: bool = True) -> Tuple[int, float]:
    """(VALID, value) for a finite number, else (reason, nan): the value rules of
    ``promdrift.instrumentation.values``, as ``DriftMonitor`` counts (``coerce``: its
    ``coerce_numbers``)."""
    return number(_decoded(v), coerce)


def _category(v: Any) -> Tuple[int, Optional[str]]:
    return category(_decoded(v))


class _Derived:
    """The multivariate features of the captured rows (docs/multivariate.md), computed by
    the baseline's PCA from the captured values of its columns under the same value rules
    as the monitor. (Embedding features are not in captured rows: no vectors there.)"""

    def __init__(self, pca: Multivariate, coerce: bool = True):
        self.pca = pca
        self.coerce = coerce
        self.values: List[float] = []
        self.codes: List[int] = []

    def add(self, row: Mapping[str, Any]) -> None:
        for c in self.pca.columns:
            reason, x = _number(row.get(c, _ABSENT), self.coerce)
            self.values.append(x)
            self.codes.append(reason)

    def accumulators(self) -> List["_Accumulator"]:
        dim = self.pca.dim
        x = np.array(self.values, dtype=np.float64).reshape(-1, dim)
        values, reasons = self.pca.transform(
            x, np.array(self.codes, dtype=np.int64).reshape(-1, dim))
        ok = reasons < 0
        per_reason = np.bincount(reasons[~ok], minlength=len(REASONS)).tolist()
        out = []
        for j, col in enumerate(self.pca.features):
            acc = _Accumulator(col.name, "derived", col, self.coerce)
            acc.report.rows = len(x)
            acc.numbers = values[ok, j].tolist()
            acc.reasons = list(per_reason)
            out.append(acc)
        return out


class _Accumulator:
    def __init__(self, name: str, role: str, column: Column, coerce: bool = True):
        self.report = FeatureReport(name=name, role=role, column=column)
        self.coerce = coerce
        self.reasons = [0] * len(REASONS)
        self.numbers: List[float] = []
        self.cats: Dict[str, int] = {}
        self.numeric = isinstance(column, NumericColumn)

    def add(self, v: Any) -> None:
        self.report.rows += 1
        if self.numeric:
            reason, x = _number(v, self.coerce)
            if reason == VALID:
                self.numbers.append(x)
                return
        else:
            reason, key = _category(v)
            if reason == VALID:
                self.cats[key] = self.cats.get(key, 0) + 1
                return
        self.reasons[reason] += 1


def _feature_stats(acc: _Accumulator, th: Thresholds, train: Optional[np.ndarray],
                   tests: int = 1) -> FeatureReport:
    r = acc.report
    r.missing, r.null, r.nan, r.inf, r.wrong_type = acc.reasons
    col = r.column
    if isinstance(col, NumericColumn):
        values = np.array(acc.numbers, dtype=np.float64)
        r.values = values
        edges = np.array(col.edges, dtype=np.float64)
        r.counts = bin_counts(edges, values)
        if values.size:
            if train is not None:
                r.ks, r.ks_method = ks_2samp(values, train), "exact"
                m = train.size
            else:
                r.ks, r.ks_method = ks_statistic(r.counts, np.array(col.counts)), "binned"
                m = col.count
            r.ks_critical = th.ks_critical(values.size, m, tests)
            r.psi = psi(r.counts, np.array(col.counts))
            width = col.max - col.min
            lo = col.min - th.range_tolerance * width
            hi = col.max + th.range_tolerance * width
            r.out_of_range = float(np.mean((values < lo) | (values > hi)))
    else:
        counts = np.zeros(len(col.categories) + 1, dtype=np.int64)
        for key, n in acc.cats.items():
            i = col.lookup.get(key)
            if i is None:
                counts[-1] += n
                r.unseen[key] = n
            else:
                counts[i] += n
        r.counts = counts
        if counts.sum():
            base = np.array(col.counts)
            r.tvd = total_variation(counts, base)
            r.psi = psi(counts, base)
    return r


def _check(r: FeatureReport, th: Thresholds, any_rows: bool) -> None:
    name, v = r.name, r.violations
    if r.role == "derived":  # its inputs' own checks name the columns: only drift here
        _drift_check(r, th)
        return
    if r.rows == 0:
        if any_rows:
            v.append(Violation(name, "missing_column_check",
                               f"{r.role} {name!r} is absent from every captured "
                               f"{'row' if r.role == 'feature' else 'prediction'}", 1.0, 0.0))
        return
    if r.missing == r.rows:
        v.append(Violation(name, "missing_column_check",
                           f"{r.role} {name!r} is absent from all {r.rows} captured rows",
                           1.0, 0.0))
        return
    given = r.rows - r.missing - r.null
    if given:
        share = r.wrong_type / given
        if share > th.datatype:
            expected = "numbers" if r.kind == "numeric" else "strings or numbers"
            v.append(Violation(name, "data_type_check",
                               f"{share:.1%} of the given values are not {expected} "
                               f"(threshold {th.datatype:.1%})", share, th.datatype))
    if r.completeness < r.baseline_completeness - th.completeness:
        v.append(Violation(name, "completeness_check",
                           f"completeness {r.completeness:.1%} (valid values per row), "
                           f"training {r.baseline_completeness:.1%}, tolerance "
                           f"{th.completeness:.1%}", r.completeness,
                           r.baseline_completeness - th.completeness))
    if r.kind == "numeric" and r.out_of_range is not None and r.out_of_range > th.range_share:
        col = r.column
        v.append(Violation(name, "range_check",
                           f"{r.out_of_range:.1%} of the values lie outside the training range "
                           f"[{col.min:g}, {col.max:g}] (tolerance {th.range_tolerance:g} of "
                           f"its width, threshold {th.range_share:.1%})",
                           r.out_of_range, th.range_share))
    if r.kind == "categorical" and r.unseen_rate is not None:
        excess = r.unseen_rate - r.baseline_other_share
        if excess > th.domain:
            top = sorted(r.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            v.append(Violation(name, "categorical_values_check",
                               f"{r.unseen_rate:.1%} of the values are outside the baseline's "
                               f"{len(r.column.categories)} categories (training "
                               f"{OTHER} {r.baseline_other_share:.1%}, threshold +"
                               f"{th.domain:.1%}); most frequent: "
                               + ", ".join(f"{k!r} ({n})" for k, n in top),
                               r.unseen_rate, r.baseline_other_share + th.domain))
    _drift_check(r, th)


def _drift_check(r: FeatureReport, th: Thresholds) -> None:
    name, v = r.name, r.violations
    if r.valid >= th.min_samples:
        if r.kind == "numeric" and r.ks is not None:
            limit = max(th.drift, r.ks_critical)
            if r.ks > limit:
                v.append(Violation(name, "baseline_drift_check",
                                   f"KS statistic {r.ks:.4f} ({r.ks_method}) exceeds "
                                   f"{limit:.4f} (threshold {th.drift:g}, critical value "
                                   f"{r.ks_critical:.4f} at n={r.valid}); PSI {r.psi:.3f}",
                                   r.ks, limit))
        elif r.kind == "categorical" and r.tvd is not None:
            # As the alerts do: the distance above what sampling noise alone gives.
            noise = tvd_noise(np.array(r.column.counts), r.valid)
            if r.tvd - noise > th.drift:
                v.append(Violation(name, "baseline_drift_check",
                                   f"total variation distance {r.tvd:.4f} exceeds its no-drift "
                                   f"value {noise:.4f} by more than {th.drift:g}; "
                                   f"PSI {r.psi:.3f}", r.tvd - noise, th.drift))


def _train_columns(path: str, baseline: Baseline) -> Dict[str, np.ndarray]:
    from promdrift.instrumentation.training.tabular import DataError, numeric_column, read_csv
    try:
        cols = read_csv(path)
    except DataError as e:
        raise ReportError(str(e)) from None
    out = {}
    for c in list(baseline.features) + list(baseline.predictions):
        if isinstance(c, NumericColumn) and c.name in cols:
            num = numeric_column(cols[c.name])
            if num is not None:
                finite = num[np.isfinite(num)]
                if finite.size:
                    out[c.name] = finite
    return out


def build_report(baseline: Baseline, directory: str, *, thresholds: Thresholds = Thresholds(),
                 train: Any = None, model: Optional[str] = None, partial: bool = True,
                 progress: Any = None, since: Optional[_dt.datetime] = None,
                 until: Optional[_dt.datetime] = None, coerce_numbers: bool = True) -> Report:
    """Read every captured row of ``baseline``'s model (or ``model``) under ``directory`` and
    compute the statistics and violations.

    ``train``: the training data for the exact KS statistic, a CSV path or a mapping of
    column name to values (numeric baseline columns missing from it fall back to the binned
    statistic). ``partial``: also read ``.part`` files (a running or crashed writer).
    ``progress(total_bytes)`` builds a progress line for large directories.
    ``since`` / ``until`` (aware datetimes, see :func:`utc_time`): only the rows recorded
    at or after ``since`` and before ``until`` (a row's ``time``; a row without one has its
    file's name time); files last modified before ``since`` are not read.
    ``coerce_numbers``: a captured string spelling a number counts as that number for a
    numeric column, as the monitor (``DriftMonitor(coerce_numbers=)``) counted it.
    """
    model = model or baseline.model
    for name, t in (("since", since), ("until", until)):
        if t is not None and (not isinstance(t, _dt.datetime) or t.utcoffset() is None):
            raise ReportError(f"{name} must be a datetime with a time zone, got {t!r}")
    if since is not None and until is not None and since >= until:
        raise ReportError(f"since ({since.isoformat()}) must be before until "
                          f"({until.isoformat()})")
    if not os.path.isdir(directory):
        raise ReportError(f"capture directory {directory} does not exist")
    if isinstance(train, (str, os.PathLike)):
        train_cols = _train_columns(os.fspath(train), baseline)
    elif train is not None:
        train_cols = {k: np.asarray(v, dtype=np.float64)[np.isfinite(np.asarray(v, dtype=np.float64))]
                      for k, v in dict(train).items()}
    else:
        train_cols = {}
    coerce = coerce_numbers
    feats = {c.name: _Accumulator(c.name, "feature", c, coerce) for c in baseline.features}
    derived = (_Derived(baseline.multivariate, coerce) if baseline.multivariate is not None
               else None)
    outs = {c.name: _Accumulator(c.name, "output", c, coerce) for c in baseline.predictions}
    known = set(feats)
    files = CaptureFiles(directory, partial=partial, progress=progress,
                         modified_since=since.timestamp() if since is not None else None)
    report = Report(model=model, baseline=baseline, directory=directory,
                    thresholds=thresholds, features=[], violations=[], since=since,
                    until=until)
    window = since is not None or until is not None
    extra: Dict[str, int] = {}
    predicted = 0
    for rec in files:
        rec_model = rec.get("model") or model
        if rec_model != model:
            report.other_models[rec_model] = report.other_models.get(rec_model, 0) + 1
            continue
        if window:
            when = _row_time(rec, files.current)
            if when is None:
                report.untimed += 1
                continue
            if (since is not None and when < since) or (until is not None and when >= until):
                report.outside_window += 1
                continue
        row = rec.get("features")
        if not isinstance(row, Mapping):
            report.malformed += 1
            continue
        report.rows += 1
        t = rec.get("time")
        if isinstance(t, str):
            if not report.first_time or t < report.first_time:
                report.first_time = t
            if t > report.last_time:
                report.last_time = t
        for name, acc in feats.items():
            acc.add(row.get(name, _ABSENT))
        if derived is not None:
            derived.add(row)
        for k in row:
            if k not in known:
                extra[k] = extra.get(k, 0) + 1
        if outs and "prediction" in rec and rec["prediction"] is not None:
            pred = rec["prediction"]
            predicted += 1
            if not isinstance(pred, Mapping):
                pred = {next(iter(outs)): pred} if len(outs) == 1 else {}
            for name, acc in outs.items():
                acc.add(pred.get(name, _ABSENT))
    report.files, report.truncated, report.bad_lines = len(files.paths), files.truncated, files.bad
    report.extra_columns = extra
    # F of the family-wise KS test: the numeric columns of the role, derived features (also
    # those of an embedding, which captures do not hold) counted with the features, as the
    # rules count them
    numeric = {role: sum(1 for c in cols if isinstance(c, NumericColumn))
               for role, cols in (("feature", baseline.features + baseline.derived),
                                  ("output", baseline.predictions))}
    accs = list(feats.values()) + (derived.accumulators() if derived is not None else []) \
        + list(outs.values())
    for acc in accs:
        r = _feature_stats(acc, thresholds, train_cols.get(acc.report.name),
                           tests=numeric["output" if acc.report.role == "output" else "feature"])
        _check(r, thresholds, any_rows=report.rows > 0 if r.role != "output" else predicted > 0)
        report.features.append(r)
    if any(f.ks_method == "exact" for f in report.features):
        report.ks_method = "exact" if all(f.ks_method in ("exact", "") for f in report.features
                                          if f.kind == "numeric") else "mixed"
    for name, n in sorted(extra.items()):
        report.violations.append(Violation(
            name, "extra_column_check", f"column {name!r} is not in the baseline; present in "
            f"{n} of {report.rows} captured rows", n / report.rows, 0.0))
    for f in report.sorted_features:
        report.violations.extend(f.violations)
    return report


# ---------------------------------------------------------------------- output
def violations_json(report: Report) -> Dict[str, Any]:
    """``{"violations": [{"feature_name", "constraint_check_type", "description", "value",
    "threshold"}]}``, SageMaker's ``constraint_violations.json`` shape."""
    return {"violations": [v.to_dict() for v in report.violations]}


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x: Optional[float], digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _bars_svg(labels: Sequence[str], base: np.ndarray, live: Optional[np.ndarray],
              title: str) -> str:
    """Grouped bars, training (grey) and captured (blue) share per bin / category."""
    n = len(labels)
    width, height, left, bottom, top = 640, 170, 40, 42, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    base_p = base / base.sum() if base.sum() else base
    live_p = live / live.sum() if live is not None and live.sum() else None
    peak = max(float(base_p.max()) if n else 0.0,
               float(live_p.max()) if live_p is not None and n else 0.0, 1e-9)
    slot = plot_w / max(n, 1)
    bar = max(slot * 0.4, 0.5)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">']
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
               f'stroke="#888"/>')
    out.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="ax">'
               f'{100 * peak:.0f}%</text>')
    every = max(1, math.ceil(n / 12))
    for i, label in enumerate(labels):
        x = left + i * slot
        for j, (p, cls) in enumerate(((base_p, "b"), (live_p, "l"))):
            if p is None:
                continue
            h = plot_h * float(p[i]) / peak
            out.append(f'<rect class="{cls}" x="{x + slot * 0.1 + j * bar:.1f}" '
                       f'y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                       f'<title>{_e(label)}: {"training" if cls == "b" else "captured"} '
                       f'{100 * float(p[i]):.2f}%</title></rect>')
        if i % every == 0:
            short = label if len(label) <= 10 else label[:9] + "…"
            out.append(f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 14}" '
                       f'text-anchor="end" class="ax" transform="rotate(-30 {x + slot / 2:.1f} '
                       f'{top + plot_h + 14})">{_e(short)}</text>')
    out.append("</svg>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1em;margin:1.5em 0 .3em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th{background:#f4f4f4}td.n,th.n{text-align:left}
tr.bad td{background:#fdecea}.ok{color:#1a7f37}.warn{color:#b3261e;font-weight:600}
.note{color:#555;font-size:.9em}.b{fill:#9e9e9e}.l{fill:#1f6feb}.ax{font-size:10px;fill:#555}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}
code{background:#f4f4f4;padding:0 .2em}
"""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    th = report.thresholds
    b = report.baseline
    ks_note = {
        "exact": "KS is the exact two-sample statistic between the captured values and the "
                 "training data.",
        "mixed": "KS is exact (two-sample, against the training data) for the features found "
                 "in the training file, binned at the baseline's edges for the others.",
        "binned": "KS is computed on the captured values binned at the baseline's edges (the "
                  "baseline stores bin counts, not training rows): exactly what the PromQL "
                  "rule computes, a lower bound of the exact two-sample statistic. Pass "
                  "<code>--train train.csv</code> for the exact statistic.",
    }[report.ks_method]
    p = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
         f"<title>promdrift report: {_e(report.model)}</title><style>{_CSS}</style></head><body>",
         f"<h1>Drift report: model <code>{_e(report.model)}</code></h1>",
         f"<p>Baseline digest <code>{_e(b.digest)}</code>, {b.rows} training rows, created "
         f"{_e(b.created or 'unknown')}. Captured rows: <b>{report.rows}</b> from "
         f"{report.files} files in <code>{_e(report.directory)}</code>"
         + (f", {_e(report.first_time)} to {_e(report.last_time)}" if report.first_time else "")
         + ".</p>"]
    if report.window:
        p.append(f"<p>Time window: {_e(report.window)}; {report.outside_window} rows "
                 f"of the model outside it skipped"
                 + (f", {report.untimed} without a time" if report.untimed else "") + ".</p>")
    notes = []
    if report.other_models:
        notes.append("rows of other models skipped: " + ", ".join(
            f"{_e(k)} ({n})" for k, n in sorted(report.other_models.items())))
    if report.malformed:
        notes.append(f"{report.malformed} records whose <code>features</code> is not an object")
    if report.truncated or report.bad_lines:
        notes.append(f"{report.truncated} truncated last lines (a write cut short) and "
                     f"{report.bad_lines} unreadable lines skipped")
    if notes:
        p.append("<p class='note'>" + "; ".join(notes) + ".</p>")
    p.append(f"<p class='note'>{ks_note} PSI uses the baseline's bins with a probability floor "
             f"of 1e-4, as the PromQL rules.</p>")

    p.append(f"<h2>Violations ({len(report.violations)})</h2>")
    if report.violations:
        p.append("<table><tr><th class='n'>feature</th><th class='n'>check</th>"
                 "<th class='n'>description</th></tr>")
        for v in report.violations:
            p.append(f"<tr class='bad'><td class='n'>{_e(v.feature_name)}</td>"
                     f"<td class='n'>{_e(v.check)}</td><td class='n'>{_e(v.description)}</td></tr>")
        p.append("</table>")
    else:
        p.append("<p class='ok'>No violations.</p>")
    p.append("<p class='note'>Thresholds: " + ", ".join(
        f"{k} {_e(getattr(th, k))}" for k in Thresholds.__dataclass_fields__) + ".</p>")

    p.append("<h2>Summary, worst first</h2><table><tr><th class='n'>name</th><th class='n'>"
             "role</th><th class='n'>kind</th><th>rows</th><th>valid</th><th>missing</th>"
             "<th>invalid</th><th>unseen</th><th>KS</th><th>KS critical</th><th>PSI</th>"
             "<th>TVD</th><th>violations</th></tr>")
    for f in report.sorted_features:
        cls = " class='bad'" if f.violations else ""
        p.append(f"<tr{cls}><td class='n'><a href='#f-{_e(f.role)}-{_e(f.name)}'>{_e(f.name)}"
                 f"</a></td><td class='n'>{f.role}</td><td class='n'>{f.kind}</td>"
                 f"<td>{f.rows}</td><td>{f.valid}</td><td>{_pct(f.missing_rate)}</td>"
                 f"<td>{_pct(f.invalid_rate)}</td><td>{_pct(f.unseen_rate)}</td>"
                 f"<td>{_num(f.ks)}</td><td>{_num(f.ks_critical)}</td><td>{_num(f.psi, 3)}</td>"
                 f"<td>{_num(f.tvd)}</td><td>{len(f.violations)}</td></tr>")
    p.append("</table>")

    p.append("<h2>Distributions</h2><p class='legend'><span class='b' style='background:#9e9e9e'>"
             "</span>training<span style='background:#1f6feb'></span>captured</p>")
    for f in report.sorted_features:
        col = f.column
        base = np.array(col.counts, dtype=np.float64)
        live = f.counts.astype(np.float64) if f.counts is not None and f.valid else None
        if isinstance(col, NumericColumn):
            labels = [f"≤{e:g}" for e in col.edges] + [f">{col.edges[-1]:g}" if col.edges
                                                        else "all"]
            stats = (f"KS {_num(f.ks)} ({f.ks_method or 'no values'}), critical "
                     f"{_num(f.ks_critical)}, PSI {_num(f.psi, 3)}, outside training range "
                     f"{_pct(f.out_of_range)}; training min {col.min:g} max {col.max:g} mean "
                     f"{col.mean:g}"
                     + (f"; captured mean {float(f.values.mean()):g}" if f.valid else ""))
        else:
            labels = list(col.labels)
            stats = (f"TVD {_num(f.tvd)}, PSI {_num(f.psi, 3)}, unseen {_pct(f.unseen_rate)} "
                     f"(training {OTHER} {_pct(f.baseline_other_share)})")
            if f.unseen:
                top = sorted(f.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
                stats += "; most frequent unseen: " + ", ".join(f"{k} ({n})" for k, n in top)
        p.append(f"<h3 id='f-{_e(f.role)}-{_e(f.name)}'>{_e(f.role)} <code>{_e(f.name)}</code>"
                 f" <span class='note'>({f.kind})</span></h3>")
        p.append(f"<p class='note'>{_e(stats)}; missing {_pct(f.missing_rate)}, invalid "
                 f"{_pct(f.invalid_rate)} (nan {f.nan}, inf {f.inf}, wrong type "
                 f"{f.wrong_type}).</p>")
        p.append(_bars_svg(labels, base, live, f"{f.name}: training vs captured"))
        for v in f.violations:
            p.append(f"<p class='warn'>{_e(v.check)}: {_e(v.description)}</p>")
    p.append("<p class='note'>Generated by promdrift report.</p></body></html>\n")
    return "".join(p)


def write_report(report: Report, html_path: str, violations_path: str) -> None:
    """Write the HTML page and ``violations.json`` (each atomically)."""
    # a report is for sharing: the mode of a plain open(), not mkstemp's owner-only one
    atomic_write(html_path, render_html(report), shared=True)
    atomic_write(violations_path, json.dumps(violations_json(report), indent=1,
                                             ensure_ascii=False, allow_nan=False) + "\n",
                 shared=True)
