"""Metric families of the public contract (docs/metrics.md), built from counts snapshots:
the one renderer of every promdrift family.

Each model's layout, and each of its blocks (outcomes, capture), gets a precomputed *plan*:
the text prefix of every sample line (``name{labels} ``) and where its value comes from in
the counts array. A scrape then costs one numpy gather and one string join per plan, about
20x less than building prometheus_client ``Metric`` objects and letting ``generate_latest``
format them, while the collector protocol (``collect``) is still there for registries
rendered the usual way. Both paths produce the same samples::

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> reg = CollectorRegistry()
    >>> m = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0]}, bins=2, model="m"), registry=reg)
    >>> m.observe({"x": 2.5})
    >>> reg.get_sample_value("promdrift_feature_value_bucket",
    ...                      {**dict(m.plan_labels), "feature": "x", "le": "+Inf"})
    1.0
    >>> m.plan_labels   # every series starts with these: model, model_version, baseline
    (('model', 'm'), ('baseline', '...'))
"""

from __future__ import annotations

import math
import operator
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from ..training.columns import NumericColumn
from ..values import REQUEST_REASONS
from .multiprocess import MultiprocessCounterStore
from .store import FEATURE, PREDICTION, REASONS, Block, Labels, Layout

__all__ = ["Plan", "ModelPlan", "model_labels", "BlockPlan", "PromdriftCollector", "collector_for",
           "metrics_text", "FAMILIES", "CONTENT_TYPE", "Sample", "make_wsgi_app",
           "make_asgi_app", "start_http_server", "PER_PROCESS_FAMILIES"]

#: What ``/metrics`` serves: the Prometheus text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: A sample computed at scrape (a gauge of the label store, the nDCG of a window):
#: (family, sample name, labels, value).
Sample = Tuple[str, str, Labels, float]

#: name -> (type, help), in exposition order. Counter names without ``_total``.
FAMILIES: Dict[str, Tuple[str, str]] = {
    "promdrift_feature_value": (
        "histogram", "Valid values of a numeric feature; buckets are the baseline's edges."),
    "promdrift_feature_category": (
        "counter", "Valid values of a categorical feature by category (top-K + __other__)."),
    "promdrift_feature_invalid": (
        "counter", "Feature values that were not binned, by reason."),
    "promdrift_feature_coerced": (
        "counter", "Numeric feature values sent as a string and read as the number it spells."),
    "promdrift_prediction_value": (
        "histogram", "Numeric prediction outputs; buckets are the baseline's edges."),
    "promdrift_prediction_class": (
        "counter", "Categorical prediction outputs by class (top-K + __other__)."),
    "promdrift_prediction_invalid": (
        "counter", "Prediction values that were not binned, by reason."),
    "promdrift_prediction_coerced": (
        "counter", "Numeric prediction values sent as a string and read as the number it "
                   "spells."),
    "promdrift_inferences": ("counter", "Rows observed (one per inference)."),
    "promdrift_requests": (
        "counter", "Requests handed to the monitor (tracked requests, exporter ingest "
                   "requests, observe calls), read or not."),
    "promdrift_requests_invalid": (
        "counter", "Requests whose features could not be read (a client error), by reason; "
                   "none of their values were counted."),
    "promdrift_instrumentation_errors": (
        "counter", "promdrift's own errors inside observe or track (never a client's: see "
                   "promdrift_requests_invalid_total); the request was not affected."),
    "promdrift_baseline_feature_value": (
        "histogram", "Training counts of a numeric feature at the live buckets' le (constant)."),
    "promdrift_baseline_feature_bin": (
        "gauge", "Training count of a numeric feature in the bin (lower, upper]."),
    "promdrift_baseline_feature_category": (
        "gauge", "Training count of a categorical feature per category."),
    "promdrift_baseline_feature_invalid": (
        "gauge", "Training values of a feature that were missing or invalid."),
    "promdrift_baseline_prediction_value": (
        "histogram", "Training counts of a numeric prediction output at the live buckets' le."),
    "promdrift_baseline_prediction_bin": (
        "gauge", "Training count of a numeric prediction output in the bin (lower, upper]."),
    "promdrift_baseline_prediction_class": (
        "gauge", "Training count of a categorical prediction output per class."),
    "promdrift_baseline_info": (
        "gauge", "The baseline a process serves (always 1)."),
    # Data capture (promdrift.instrumentation.capture.writer)
    "promdrift_capture_rows": ("counter", "Sampled rows written to data capture files."),
    "promdrift_capture_dropped": (
        "counter", "Sampled rows not written to data capture files, by reason."),
    # Outcomes: labels (promdrift.instrumentation.outcomes.quality)
    "promdrift_quality_confusion": (
        "counter", "Labelled predictions of a categorical output by actual and predicted class."),
    "promdrift_quality_error": (
        "histogram", "Absolute error |prediction - label| of a numeric output."),
    "promdrift_quality_squared_error_sum": (
        "counter", "Sum of squared errors (prediction - label)^2 of a numeric output."),
    "promdrift_quality_labels": ("counter", "Labels joined to their prediction."),
    "promdrift_quality_labels_unmatched": (
        "counter", "Labels not joined: no prediction with that id (reason unknown) or an "
                   "unusable label or prediction value (reason invalid)."),
    "promdrift_quality_labels_duplicate": (
        "counter", "Second and later labels for an inference id (ignored)."),
    "promdrift_quality_predictions_duplicate": (
        "counter", "Second and later predictions with an inference id already stored "
                   "(ignored)."),
    "promdrift_quality_predictions_evicted": (
        "counter", "Predictions dropped from the label store before their label arrived, by "
                   "reason."),
    "promdrift_quality_pending": (
        "gauge", "Rows of the label store waiting for their other half, by what they hold."),
    "promdrift_quality_label_delay_seconds": (
        "histogram", "Seconds from a prediction to its label (0 for labels that arrived "
                     "first)."),
    "promdrift_baseline_quality": (
        "gauge", "Validation-set quality of an output (metric: accuracy, macro_f1, mae, rmse)."),
    "promdrift_baseline_quality_labels": (
        "gauge", "Validation-set (label, prediction) pairs behind promdrift_baseline_quality."),
    # Outcomes: bias (promdrift.instrumentation.outcomes.bias)
    "promdrift_bias_predictions": (
        "counter", "Predictions per facet group and predicted class."),
    "promdrift_bias_labels": ("counter", "Joined labels per facet group and actual class."),
    "promdrift_bias_true_positives": (
        "counter", "Joined labels whose predicted class is the actual class, per facet group "
                   "and class."),
    "promdrift_baseline_bias": (
        "gauge", "Validation-set group-minus-rest difference of a class's prediction share "
                 "(metric dppl) or recall (metric recall_difference)."),
    # Outcomes: attributions (promdrift.instrumentation.outcomes.attribution)
    "promdrift_attribution_abs_sum": (
        "counter", "Sum of |attribution| of a feature over the inferences that passed one."),
    "promdrift_attribution_values": (
        "counter", "Attribution values counted per feature (finite numbers only)."),
    "promdrift_attribution_rows": (
        "counter", "Inferences that passed attributions (invalid: not readable at all)."),
    "promdrift_attribution_window_rows": (
        "gauge", "Inferences with attributions in this process's nDCG window."),
    "promdrift_attribution_ndcg": (
        "gauge", "nDCG of the live feature ranking by mean |attribution| over the window "
                 "against the baseline ranking (1 = same ranking); absent without live "
                 "attributions or a baseline ranking."),
    "promdrift_baseline_attribution": ("gauge", "Baseline mean |attribution| of a feature."),
    # The standalone exporter's own (promdrift.exporter.service.metrics)
    "promdrift_exporter_requests": (
        "counter", "Requests the exporter answered, by route and status code."),
    "promdrift_exporter_rejected": (
        "counter", "Ingest requests refused whole (none of their rows counted), by reason."),
    "promdrift_exporter_rows": (
        "counter", "Rows of accepted ingest requests (observations, labels), by model."),
    "promdrift_exporter_request_duration_seconds": (
        "histogram", "Seconds from a complete request to its answer, by route."),
    "promdrift_exporter_request_body_bytes": (
        "histogram", "Body sizes of ingest requests in bytes, by route."),
}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help_line(name: str, mtype: str, text: str) -> str:
    exposed = name + "_total" if mtype == "counter" else name
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {exposed} {text}\n# TYPE {exposed} {mtype}\n"


def _value(v: float) -> str:
    """One sample value: an integer without a decimal point, else the shortest float."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2 ** 53 else repr(float(v))


def _format_values(values: np.ndarray, float_positions: np.ndarray) -> List[str]:
    ints = values.copy()
    ints[float_positions] = 0.0  # sums: formatted as floats below, may not fit an int64
    out = list(map(str, ints.astype(np.int64).tolist()))
    for i in float_positions.tolist():
        v = float(values[i])
        out[i] = repr(v) if math.isfinite(v) else ("NaN" if v != v else ("+Inf" if v > 0 else "-Inf"))
    return out


@dataclass
class _Section:
    """The samples of one family contributed by one model."""
    family: str
    names: List[str] = field(default_factory=list)
    labels: List[Labels] = field(default_factory=list)
    source: List[int] = field(default_factory=list)  # live: gather index; baseline: unused
    values: List[float] = field(default_factory=list)  # baseline only
    floats: List[int] = field(default_factory=list)  # positions holding non-integral values

    def add(self, suffix: str, labels: Labels, source: int = -1, value: float = 0.0,
            is_float: bool = False) -> None:
        if is_float:
            self.floats.append(len(self.names))
        self.names.append(self.family + suffix)
        self.labels.append(labels)
        self.source.append(source)
        self.values.append(value)

    def prefixes(self) -> List[str]:
        out = []
        for name, labels in zip(self.names, self.labels):
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{name}{{{inner}}} ")
        return out


class Plan:
    """Precomputed exposition of one counts array: ``live`` sections read their values from a
    counts snapshot (one gather), ``fixed`` sections hold constants, formatted once."""

    def __init__(self, live: Dict[str, _Section], fixed: Dict[str, _Section]):
        order = list(FAMILIES)
        unknown = sorted((set(live) | set(fixed)) - set(order))
        if unknown:
            raise ValueError(f"families missing from exposition.FAMILIES: {unknown}")
        self.live = {k: live[k] for k in order if k in live}
        self.fixed = {k: fixed[k] for k in order if k in fixed}
        # Live: one gather from the counts array, then a slice per family.
        self._gather = np.array([s for sec in self.live.values() for s in sec.source],
                                dtype=np.intp)
        self._floats = np.array([off + f for off, sec in zip(self._offsets(self.live),
                                                               self.live.values())
                                 for f in sec.floats], dtype=np.intp)
        self._live_prefixes = {k: sec.prefixes() for k, sec in self.live.items()}
        self._fixed_text = {k: "".join(p + v + "\n" for p, v in zip(
            sec.prefixes(), _format_values(np.array(sec.values, dtype=np.float64),
                                           np.array(sec.floats, dtype=np.intp))))
            for k, sec in self.fixed.items()}

    @staticmethod
    def _offsets(sections: Dict[str, _Section]) -> List[int]:
        out, pos = [], 0
        for sec in sections.values():
            out.append(pos)
            pos += len(sec.names)
        return out

    def live_values(self, counts: np.ndarray) -> np.ndarray:
        """Values of every live sample, in plan order, from a counts snapshot."""
        return counts[self._gather]

    def live_text(self, counts: np.ndarray) -> Dict[str, str]:
        """Exposition lines of each live family (no HELP/TYPE header)."""
        strs = _format_values(self.live_values(counts), self._floats)
        out, pos = {}, 0
        for k, prefixes in self._live_prefixes.items():
            end = pos + len(prefixes)
            out[k] = "\n".join(map(operator.add, prefixes, strs[pos:end])) + "\n"
            pos = end
        return out

    def fixed_text(self) -> Dict[str, str]:
        return self._fixed_text

    def metrics(self, counts: np.ndarray) -> Iterator[Tuple[str, List[Tuple[str, Dict[str, str], float]]]]:
        """(family, samples) for the collector protocol, live then baseline."""
        values = self.live_values(counts).tolist()
        pos = 0
        for k, sec in self.live.items():
            yield k, [(n, dict(l), v) for n, l, v in zip(sec.names, sec.labels,
                                                       values[pos:pos + len(sec.names)])]
            pos += len(sec.names)
        for k, sec in self.fixed.items():
            yield k, [(n, dict(l), float(v)) for n, l, v in zip(sec.names, sec.labels, sec.values)]


def model_labels(model: str, digest: str, model_version: Optional[str] = None) -> Labels:
    """The labels every series of a model starts with, in exposition order::

        >>> model_labels("churn", "7f6c461120b0", "3")
        (('model', 'churn'), ('model_version', '3'), ('baseline', '7f6c461120b0'))
        >>> model_labels("churn", "7f6c461120b0")
        (('model', 'churn'), ('baseline', '7f6c461120b0'))
    """
    version = (("model_version", str(model_version)),) if model_version else ()
    return (("model", model),) + version + (("baseline", digest),)


class ModelPlan(Plan):
    """Precomputed exposition of one model's live and baseline drift families."""

    def __init__(self, layout: Layout, model_version: Optional[str] = None):
        self.layout = layout
        baseline = layout.baseline
        #: the labels every sample of this model starts with: ``model``, ``model_version``
        #: when given, and ``baseline``, the digest of the baseline the counts are counted
        #: against (the rules compare each baseline's live counts with that baseline only)
        self.labels: Labels = model_labels(baseline.model, baseline.digest, model_version)
        base = self.labels
        live_secs: Dict[str, _Section] = {}
        fixed_secs: Dict[str, _Section] = {}

        def live(name: str) -> _Section:
            return live_secs.setdefault(name, _Section(name))

        def fixed(name: str) -> _Section:
            return fixed_secs.setdefault(name, _Section(name))

        key = {FEATURE: "feature", PREDICTION: "output"}
        for i, (role, col) in enumerate(layout.numeric):
            fam = "promdrift_feature_value" if role == FEATURE else "promdrift_prediction_value"
            lab = base + ((key[role], col.name),)
            les = col.labels
            sec = live(fam)
            for b, le in enumerate(les):
                sec.add("_bucket", lab + (("le", le),), source=layout.bucket_slot(i, b))
            sec.add("_count", lab, source=layout.bucket_slot(i, len(col.edges)))
            sec.add("_sum", lab, source=layout.sum_base + i, is_float=True)
            self._baseline_numeric(fixed, role, lab, col)
        for j, (role, col) in enumerate(layout.categorical):
            fam, cat_key = (("promdrift_feature_category", "category") if role == FEATURE
                            else ("promdrift_prediction_class", "class"))
            lab = base + ((key[role], col.name),)
            sec = live(fam)
            for t, cat in enumerate(col.labels):
                sec.add("_total", lab + ((cat_key, cat),), source=layout.cat_offsets[j] + t)
            gfam = ("promdrift_baseline_feature_category" if role == FEATURE
                    else "promdrift_baseline_prediction_class")
            gsec = fixed(gfam)
            for cat, n in zip(col.labels, col.counts):
                gsec.add("", lab + ((cat_key, cat),), value=n)
            if role == FEATURE:
                fixed("promdrift_baseline_feature_invalid").add("", lab, value=col.invalid)
        columns = layout.numeric + layout.categorical
        for c, (role, col) in enumerate(columns):
            fam = ("promdrift_feature_invalid" if role == FEATURE
                   else "promdrift_prediction_invalid")
            lab = base + ((key[role], col.name),)
            for r, reason in enumerate(REASONS):
                live(fam).add("_total", lab + (("reason", reason),),
                              source=layout.invalid_slot(c, r))
        nd = layout.derived.count if layout.derived is not None else 0
        derived = range(layout.n_numeric_features - nd, layout.n_numeric_features)
        for i, (role, col) in enumerate(layout.numeric):
            if i in derived:  # computed by promdrift, never sent
                continue
            fam = ("promdrift_feature_coerced" if role == FEATURE
                   else "promdrift_prediction_coerced")
            live(fam).add("_total", base + ((key[role], col.name),),
                          source=layout.coerced_slot(i))
        live("promdrift_inferences").add("_total", base, source=Layout.INFERENCES)
        live("promdrift_requests").add("_total", base, source=Layout.REQUESTS)
        for reason in REQUEST_REASONS:
            live("promdrift_requests_invalid").add("_total", base + (("reason", reason),),
                                                   source=layout.request_slot(reason))
        live("promdrift_instrumentation_errors").add("_total", base, source=Layout.ERRORS)
        fixed("promdrift_baseline_info").add(
            "", base + (("created", baseline.created),
                        ("schema_version", str(baseline.schema_version))), value=1)
        super().__init__(live_secs, fixed_secs)

    @staticmethod
    def _baseline_numeric(fixed, role: str, lab: Labels, col: NumericColumn) -> None:
        pre = "promdrift_baseline_feature" if role == FEATURE else "promdrift_baseline_prediction"
        hist = fixed(pre + "_value")
        les = col.labels
        for le, n in zip(les, col.cumulative()):
            hist.add("_bucket", lab + (("le", le),), value=n)
        hist.add("_count", lab, value=col.count)
        hist.add("_sum", lab, value=col.sum, is_float=True)
        bins = fixed(pre + "_bin")
        lowers = ["-Inf"] + les[:-1]
        for upper, lower, n in zip(les, lowers, col.counts):
            bins.add("", lab + (("upper", upper), ("lower", lower)), value=n)
        if role == FEATURE:
            fixed("promdrift_baseline_feature_invalid").add("", lab, value=col.invalid)


class BlockPlan(Plan):
    """Precomputed exposition of a :class:`~promdrift.instrumentation.counting.store.Block`."""

    def __init__(self, block: Block):
        live: Dict[str, _Section] = {}
        fixed: Dict[str, _Section] = {}
        for family, suffix, labels, slot, is_float in block.series:
            live.setdefault(family, _Section(family)).add(suffix, labels, source=slot,
                                                          is_float=is_float)
        for family, suffix, labels, value in block.constants:
            fixed.setdefault(family, _Section(family)).add(
                suffix, labels, value=value, is_float=not float(value).is_integer())
        super().__init__(live, fixed)


class PromdriftCollector:
    """The collector of every ``DriftMonitor`` sharing one registry.

    One collector per registry, so several models expose each family once (a second
    ``# TYPE`` line for a name would make Prometheus reject the scrape). Use
    :func:`collector_for` rather than building one.
    """

    def __init__(self, monitors: Sequence = ()) -> None:
        self._monitors: "List" = list(monitors)
        self._lock = threading.Lock()
        self._local = threading.local()

    def add(self, monitor) -> None:
        """Expose ``monitor``'s model. A model is exposed by one monitor per registry: a
        second monitor of the same model, baseline and ``model_version`` (a notebook cell
        run again, a module imported twice, as ``uvicorn.run("app:app", reload=True)`` from
        ``app.py`` does) replaces the first, with a warning; one of another baseline or
        version is refused, and the error says how to replace the first."""
        with self._lock:
            old = next((m for m in self._monitors if m.model == monitor.model), None)
            if old is not None:
                digest = monitor.baseline.digest
                if old.baseline.digest != digest or old.model_version != monitor.model_version:
                    raise ValueError(
                        f"model {monitor.model!r} is already monitored in this registry by "
                        f"another DriftMonitor (baseline {old.baseline.digest}, model_version "
                        f"{old.model_version!r}; this one: baseline {digest}, model_version "
                        f"{monitor.model_version!r}). To replace it, call close() on the "
                        f"first monitor before creating this one; to monitor both, give this "
                        f"one another model name (DriftMonitor(..., model='...')) or a "
                        f"registry of its own (registry=CollectorRegistry())")
                warnings.warn(
                    f"model {monitor.model!r} was already monitored in this registry by a "
                    f"DriftMonitor of the same baseline ({digest}): the new monitor replaces "
                    f"it in /metrics and the landing page, and the first one's counts are "
                    f"no longer exposed (a notebook cell run again, or a module imported "
                    f"twice). Create the monitor once, or call close() on the first one "
                    f"before creating another", RuntimeWarning, stacklevel=3)
            self._monitors = [m for m in self._monitors if m is not old] + [monitor]

    def remove(self, monitor) -> None:
        with self._lock:
            self._monitors = [m for m in self._monitors if m is not monitor]

    @property
    def monitors(self) -> List:
        return list(self._monitors)

    def describe(self) -> List[Metric]:
        return [Metric(name, doc, mtype) for name, (mtype, doc) in FAMILIES.items()]

    def _parts(self) -> Iterator[Tuple[Plan, np.ndarray]]:
        for m in self._monitors:
            for plan, store in m.exposed():
                yield plan, store.snapshot()

    def _dynamic(self) -> List[Sample]:
        out: List[Sample] = []
        for m in self._monitors:
            out.extend(m.scrape_samples())
        return out

    def collect(self) -> Iterator[Metric]:
        if getattr(self._local, "suppressed", False):
            return
        merged: Dict[str, Metric] = {}
        dynamic = self._dynamic()  # first: plugins write what they queued
        for plan, counts in list(self._parts()):
            for fam, samples in plan.metrics(counts):
                mtype, doc = FAMILIES[fam]
                metric = merged.setdefault(fam, Metric(fam, doc, mtype))
                for name, labels, value in samples:
                    metric.add_sample(name, labels, value)
        for fam, name, labels, value in dynamic:
            mtype, doc = FAMILIES[fam]
            merged.setdefault(fam, Metric(fam, doc, mtype)).add_sample(name, dict(labels),
                                                                        value)
        for fam in FAMILIES:
            if fam in merged:
                yield merged[fam]

    def render(self) -> str:
        """Text exposition (format 0.0.4) of every family of every monitor."""
        parts: Dict[str, List[str]] = {}
        dynamic = self._dynamic()  # first: plugins write what they queued
        for plan, counts in list(self._parts()):
            for k, text in plan.live_text(counts).items():
                parts.setdefault(k, []).append(text)
            for k, text in plan.fixed_text().items():
                parts.setdefault(k, []).append(text)
        for fam, name, labels, value in dynamic:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            parts.setdefault(fam, []).append(f"{name}{{{inner}}} {_value(value)}\n")
        out = []
        for fam, (mtype, doc) in FAMILIES.items():
            if fam in parts:
                out.append(_help_line(fam, mtype, doc))
                out.extend(parts[fam])
        return "".join(out)

    def suppressed(self) -> "_Suppress":
        """Context manager: ``collect`` yields nothing in this thread while it is active."""
        return _Suppress(self._local)


class _Suppress:
    def __init__(self, local: threading.local):
        self.local = local

    def __enter__(self) -> None:
        self.local.suppressed = True

    def __exit__(self, *exc) -> None:
        self.local.suppressed = False


_collectors: "weakref.WeakKeyDictionary[CollectorRegistry, PromdriftCollector]" = \
    weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def collector_for(registry: CollectorRegistry, create: bool = True) -> Optional[PromdriftCollector]:
    """The promdrift collector registered in ``registry`` (created and registered once)."""
    with _collectors_lock:
        coll = _collectors.get(registry)
        if coll is None and create:
            coll = PromdriftCollector()
            registry.register(coll)
            _collectors[registry] = coll
        return coll


#: The families of prometheus_client's default collectors (``ProcessCollector``,
#: ``GCCollector``, ``PlatformCollector``, registered in its ``REGISTRY``): they describe the
#: one process that answers a scrape.
PER_PROCESS_FAMILIES = frozenset({
    "process_virtual_memory_bytes", "process_resident_memory_bytes",
    "process_start_time_seconds", "process_cpu_seconds", "process_open_fds",
    "process_max_fds", "python_gc_objects_collected", "python_gc_objects_uncollectable",
    "python_gc_collections", "python_info"})


class _WithoutPerProcess:
    """A registry's families but :data:`PER_PROCESS_FAMILIES`, for ``generate_latest``."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            if metric.name not in PER_PROCESS_FAMILIES:
                yield metric


def metrics_text(registry: CollectorRegistry) -> bytes:
    """Everything in ``registry`` as text exposition, promdrift's families by the fast path.

    When the registry's monitors count across worker processes (``PROMDRIFT_MULTIPROC_DIR``),
    the families of prometheus_client's default process, GC and platform collectors
    (:data:`PER_PROCESS_FAMILIES`) are left out: they would describe whichever worker answers
    each scrape, and their sums over workers are no totals either (docs/multiprocess.md)."""
    coll = collector_for(registry, create=False)
    if coll is None:
        return generate_latest(registry)
    merged = any(isinstance(m.store, MultiprocessCounterStore) for m in coll.monitors)
    with coll.suppressed():
        other = generate_latest(_WithoutPerProcess(registry) if merged else registry)
    return other + coll.render().encode("utf-8")


# ------------------------------------------------------------------------------ drop-ins
def make_wsgi_app(registry: CollectorRegistry = REGISTRY, disable_compression: bool = True
                  ) -> Callable[..., Any]:
    """A WSGI app serving ``registry`` as text format 0.0.4, promdrift's families by the fast
    path: the drop-in for prometheus_client's ``make_wsgi_app`` (whose ``generate_latest``
    takes about 40 ms for 100 features x 20 bins, this about 1 ms)::

        >>> from prometheus_client import CollectorRegistry
        >>> app = make_wsgi_app(CollectorRegistry())
        >>> app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda *a: None)
        [b'']

    Every path answers with the metrics (as prometheus_client's does); no compression, no
    OpenMetrics negotiation, no ``name[]`` filter.
    """
    def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        body = metrics_text(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
    return app


def make_asgi_app(registry: CollectorRegistry = REGISTRY, disable_compression: bool = True
                  ) -> Callable[..., Any]:
    """An ASGI app serving ``registry`` like :func:`make_wsgi_app` (the drop-in for
    prometheus_client's ``make_asgi_app``, e.g. ``app.mount("/metrics",
    make_asgi_app())``); the text is rendered in a worker thread, never in the event loop.
    """
    async def app(scope: Dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":  # served alone: nothing to start or stop
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        try:
            import anyio.to_thread
            body = await anyio.to_thread.run_sync(metrics_text, registry)
        except ImportError:
            import asyncio
            body = await asyncio.get_running_loop().run_in_executor(None, metrics_text,
                                                                    registry)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body",
                    "body": b"" if scope.get("method") == "HEAD" else body})
    return app


def start_http_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY
                      ) -> Tuple[Any, threading.Thread]:
    """Serve ``registry`` on ``addr:port`` from a daemon thread, like prometheus_client's
    ``start_http_server`` (same arguments, TLS aside, same ``(server, thread)`` result), by
    promdrift's fast path. Stop it with ``server.shutdown(); server.server_close()``."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = make_server(addr, port, make_wsgi_app(registry), Server, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="promdrift-metrics",
                              daemon=True)
    thread.start()
    return httpd, thread
