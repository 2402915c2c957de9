"""What happens after a prediction: ground-truth labels (model quality), per-group
predictions (bias) and feature attributions, for one ``DriftMonitor``.

Switch them on with the monitor's builder methods, then pass ``inference_id`` /
``attributions`` to ``observe`` and labels to ``record_label``::

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> b = Baseline.fit({"g": ["a", "b", "a", "b"], "y": ["n", "p", "n", "p"]},
    ...                  model="m", predictions="y")
    >>> monitor = (DriftMonitor(b, registry=CollectorRegistry())
    ...            .track_labels(":memory:").track_facets("g"))
    >>> monitor.observe({"g": "a"}, "p", inference_id="req-1")
    >>> monitor.record_label("req-1", "n")
    'matched'
    >>> monitor.record_label("req-1", "n")
    'duplicate'
    >>> monitor.sample("promdrift_quality_confusion_total", output="y", actual="n", predicted="p")
    1.0
    >>> monitor.close()

The exporter service accepts labels over HTTP with :func:`labels_handler`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from prometheus_client.metrics_core import Metric

from .attribution import AttributionCounters
from .baseline import BaselineError, CategoricalColumn, NumericColumn, category_key
from .bias import BiasCounters
from .quality import Family, Labels, LabelStore, QualityCounters, default_store_path

__all__ = ["Outcomes", "labels_handler", "render_outcomes", "outcome_metrics",
           "outcome_samples", "check_references", "MAX_LABELS_PER_REQUEST"]

log = logging.getLogger("promdrift")

#: Labels accepted in one ``labels_handler`` request.
MAX_LABELS_PER_REQUEST = 10_000


def _ident(value: Any) -> str:
    """An inference id as stored: a non-empty string (ints are accepted and formatted)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise ValueError(f"inference id must be a non-empty string or an integer, got {value!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Outcomes:
    """Labels, facets and attributions of one monitor (built by its ``track_*`` methods)."""

    def __init__(self, monitor: Any, clock: Callable[[], float] = time.time):
        self.monitor = monitor
        self.baseline = monitor.baseline
        self.model = monitor.model
        base: Labels = (("model", self.model),)
        if monitor.model_version:
            base += (("model_version", str(monitor.model_version)),)
        self.base = base
        self.clock = clock
        #: predictions waiting to be written to the store (see :meth:`flush`)
        self._queue: List[Tuple[str, str, float]] = []
        self._queue_lock = threading.Lock()
        self.flush_rows = 256
        self.flush_seconds = 1.0
        self.quality: Optional[QualityCounters] = None
        self.store: Optional[LabelStore] = None
        self._own_store: Optional[str] = None
        self.bias: Optional[BiasCounters] = None
        self.attribution: Optional[AttributionCounters] = None
        self._fpos = {n: i for i, n in enumerate(self.baseline.feature_names)}
        self._outputs = self.baseline.prediction_names

    # --------------------------------------------------------------------------- setup
    def enable_quality(self, store: Any = None, **limits: Any) -> None:
        if self.quality is not None:
            raise ValueError(f"model {self.model!r} already tracks labels")
        quality = QualityCounters(self.baseline)
        if isinstance(store, LabelStore):
            if limits:
                raise ValueError("give the limits to the LabelStore, not with it")
        else:
            path = store
            if path is None:
                path = default_store_path(self.model)
                if os.path.exists(path):
                    os.unlink(path)
                self._own_store = path
            store = LabelStore(os.fspath(path), **limits)
        self.quality, self.store = quality, store

    def enable_bias(self, facets: Sequence[str]) -> None:
        names = list(facets) or sorted(self.baseline.bias)
        if not names:
            raise ValueError("name the facets (categorical features), or set them in the "
                             "baseline with Baseline.with_bias")
        self.bias = BiasCounters(self.baseline, names)

    def enable_attribution(self, **window: Any) -> None:
        features = self.baseline.feature_names
        self.attribution = AttributionCounters(features, self.baseline.attribution,
                                               clock=window.pop("clock", self.clock), **window)

    # --------------------------------------------------------------------------- rows
    def _batch(self, features: Any) -> Optional[bool]:
        if isinstance(features, Mapping):
            return False
        if isinstance(features, np.ndarray):
            return features.ndim == 2
        if isinstance(features, (list, tuple)):
            return bool(features) and isinstance(features[0], (Mapping, list, tuple, np.ndarray))
        return None

    def _outputs_of(self, prediction: Any) -> Dict[str, Any]:
        prow = self.monitor._prediction_row(prediction)
        if prow is None:
            return {}
        if isinstance(prow, Mapping):
            return {o: prow[o] for o in self._outputs if o in prow}
        return dict(zip(self._outputs, prow))

    def _groups(self, row: Any) -> Dict[str, Any]:
        out = {}
        for f in self.bias.facets if self.bias else ():
            if isinstance(row, Mapping):
                v = row.get(f)
            else:
                v = row[self._fpos[f]]
            out[f] = v if type(v) is str else category_key(v)
        return out

    def observe(self, features: Any, prediction: Any, inference_id: Any,
                attributions: Any) -> None:
        """The outcome side of ``DriftMonitor.observe`` (never raises)."""
        try:
            batch = self._batch(features)
            if batch is None:
                return  # observe counts the error
            rows = list(features) if batch else [features]
            n = len(rows)
            if not n:
                return
            if attributions is not None and self.attribution is not None:
                attrs = list(attributions) if batch else [attributions]
                if len(attrs) != n:
                    raise ValueError(f"{len(attrs)} attribution rows for {n} rows")
                self.attribution.add(attrs)
            if prediction is None or (self.bias is None and (self.quality is None
                                                             or inference_id is None)):
                return
            preds = list(prediction) if batch else [prediction]
            if len(preds) != n:
                raise ValueError(f"{len(preds)} predictions for {n} rows")
            outs = [self._outputs_of(p) for p in preds]
            groups = [self._groups(r) for r in rows] if self.bias else [{}] * n
            if self.bias is not None:
                for g, o in zip(groups, outs):
                    self.bias.count_predictions(g, o)
            if self.quality is not None and inference_id is not None:
                ids = list(inference_id) if batch else [inference_id]
                if len(ids) != n:
                    raise ValueError(f"{len(ids)} inference ids for {n} rows")
                q = self.quality
                now = self.clock()
                items = []
                for ident, o, g in zip(ids, outs, groups):
                    payload = {"p": {k: q.encode(k, v) for k, v in o.items()}}
                    if g:
                        payload["g"] = g
                    items.append((_ident(ident), json.dumps(payload), now))
                with self._queue_lock:
                    self._queue.extend(items)
                    due = (len(self._queue) >= self.flush_rows
                           or not now - self._queue[0][2] < self.flush_seconds)
                if due:
                    self.flush()
        except Exception:
            self.monitor._count_error()

    def flush(self) -> None:
        """Write the predictions queued by ``observe`` to the label store. ``observe``
        queues them (at most ``flush_rows`` rows or ``flush_seconds`` seconds) so that one
        SQLite transaction carries many; ``record_label``, a scrape and ``close`` flush
        first. A label that still overtakes its prediction is held, then joined."""
        if self.store is None:
            return
        with self._queue_lock:
            items, self._queue = self._queue, []
        if not items:
            return
        q = self.quality
        for _, payload, label, pred_at, label_at in self.store.put_predictions(
                self.model, items, self.clock()):
            if payload is None:
                with q.lock:
                    q.duplicate_predictions += 1
            else:
                self._join(payload, json.loads(label), 0.0)

    def record_label(self, inference_id: Any, label: Any) -> str:
        """See ``DriftMonitor.record_label``."""
        if self.quality is None:
            self.monitor._warn_once("labels", "promdrift: model %r does not track labels "
                                    "(call track_labels); labels are ignored", self.model)
            return "disabled"
        try:
            try:
                ident = _ident(inference_id)
                text = json.dumps(_jsonable(label))
            except (ValueError, TypeError):
                with self.quality.lock:
                    self.quality.invalid += 1
                return "invalid"
            self.flush()
            result = self.store.put_label(self.model, ident, text, self.clock())
            if result[0] == "matched":
                self._join(result[1], json.loads(text), self.clock() - result[2])
            elif result[0] == "duplicate":
                with self.quality.lock:
                    self.quality.duplicate_labels += 1
            return result[0]
        except Exception:
            self.monitor._count_error()
            return "error"

    def _join(self, payload: str, label: Any, delay: float) -> None:
        p = json.loads(payload)
        classes = self.quality.count_join(p.get("p", {}), label, delay)
        if self.bias is not None and classes:
            self.bias.count_labels(p.get("g", {}), classes)

    # --------------------------------------------------------------------------- scrape
    def families(self) -> List[Family]:
        out: List[Family] = []
        if self.quality is not None:
            try:
                self.flush()
            except Exception:  # counted; the scrape goes on with what the store holds
                self.monitor._count_error()
            out += self.quality.families(self.base, self.store, self.model, self.baseline,
                                         self.clock())
        if self.bias is not None:
            out += self.bias.families(self.base, self.baseline)
        if self.attribution is not None:
            out += self.attribution.families(self.base)
        return out

    def close(self) -> None:
        if self.store is not None:
            try:
                self.flush()
            except Exception:
                self.monitor._count_error()
        if self.store is not None and self._own_store is not None:
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self._own_store + suffix)
                except OSError:
                    pass


# ------------------------------------------------------------------------------ exposition
def _merged(monitors: Sequence[Any]) -> Dict[str, Tuple[str, str, List[Tuple[str, Labels, float]]]]:
    merged: Dict[str, Tuple[str, str, List[Tuple[str, Labels, float]]]] = {}
    for m in monitors:
        outcomes = getattr(m, "outcomes", None)
        if outcomes is None:
            continue
        for name, mtype, doc, samples in outcomes.families():
            merged.setdefault(name, (mtype, doc, []))[2].extend(samples)
    return merged


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(v: float) -> str:
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 2 ** 53 else repr(v)


def render_outcomes(monitors: Sequence[Any]) -> str:
    """Text exposition of the outcome families of ``monitors`` (each family once)."""
    out = []
    for name, (mtype, doc, samples) in _merged(monitors).items():
        exposed = name + "_total" if mtype == "counter" else name
        out.append(f"# HELP {exposed} {doc}\n# TYPE {exposed} {mtype}\n")
        for sname, labels, value in samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(f"{sname}{{{inner}}} {_value(value)}\n")
    return "".join(out)


def outcome_metrics(monitors: Sequence[Any]) -> Iterator[Metric]:
    """The same families as prometheus_client ``Metric`` objects (the collector protocol)."""
    for name, (mtype, doc, samples) in _merged(monitors).items():
        metric = Metric(name, doc, mtype)
        for sname, labels, value in samples:
            metric.add_sample(sname, dict(labels), value)
        yield metric


def outcome_samples(monitor: Any) -> Iterator[Tuple[str, Dict[str, str], float]]:
    """Every outcome sample of one monitor as ``(name, labels, value)``."""
    for _, _, _, samples in (monitor.outcomes.families() if monitor.outcomes else ()):
        for name, labels, value in samples:
            yield name, dict(labels), value


# ------------------------------------------------------------------------------ HTTP
def _parse_labels(body: Any, content_type: Optional[str]) -> List[Any]:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("body is not UTF-8") from None
    if isinstance(body, str):
        ndjson = content_type is not None and "ndjson" in content_type.lower()
        text = body.strip()
        if not text:
            raise ValueError("empty body")
        if ndjson:
            items = []
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        items.append(json.loads(line))
                    except ValueError as e:
                        raise ValueError(f"line {i}: not JSON ({e})") from None
            return items
        try:
            body = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not JSON ({e}); send a JSON object or array, or NDJSON with "
                             f"Content-Type: application/x-ndjson") from None
    if isinstance(body, Mapping) and "labels" in body:
        body = body["labels"]
        if not isinstance(body, list):
            raise ValueError('"labels" must be an array')
    return body if isinstance(body, list) else [body]


def labels_handler(monitor: Any, body: Any, content_type: Optional[str] = None
                   ) -> Tuple[int, Dict[str, Any]]:
    """Validate and record a labels request for ``monitor``; returns ``(HTTP status, JSON
    body)``. Framework free: the exporter's ``POST /v1/models/<model>/labels`` calls it.

    ``body``: bytes / text (JSON, or NDJSON when ``content_type`` says ``ndjson``) or parsed
    JSON. Accepted shapes: one object ``{"inference_id": ..., "label": ...}``, an array of
    them, or ``{"labels": [...]}``; ``label`` is the value of the only output or an
    ``{output: value}`` object. Nothing is recorded unless every item is well formed (400
    otherwise, naming the first bad item); more than ``MAX_LABELS_PER_REQUEST`` items is 413.

        >>> from promdrift.instrumentation import Baseline, DriftMonitor
        >>> b = Baseline.fit({"x": [1.0, 2.0], "y": [0.5, 1.5]}, predictions="y")
        >>> m = DriftMonitor(b, registry=None).track_labels(":memory:")
        >>> m.observe({"x": 1.0}, 0.7, inference_id="r1")
        >>> labels_handler(m, b'{"inference_id": "r1", "label": 0.5}')
        (200, {'received': 1, 'matched': 1, 'held': 0, 'duplicate': 0, 'invalid': 0})
        >>> labels_handler(m, b'[{"label": 1}]')
        (400, {'error': 'item 0: needs "inference_id" and "label"'})
    """
    if getattr(monitor, "outcomes", None) is None or monitor.outcomes.quality is None:
        return 409, {"error": f"model {monitor.model!r} does not track labels"}
    try:
        items = _parse_labels(body, content_type)
    except ValueError as e:
        return 400, {"error": str(e)}
    if len(items) > MAX_LABELS_PER_REQUEST:
        return 413, {"error": f"{len(items)} labels in one request; at most "
                              f"{MAX_LABELS_PER_REQUEST}"}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "inference_id" not in item or "label" not in item:
            return 400, {"error": f'item {i}: needs "inference_id" and "label"'}
        try:
            _ident(item["inference_id"])
        except ValueError as e:
            return 400, {"error": f"item {i}: {e}"}
    counts = {"received": len(items), "matched": 0, "held": 0, "duplicate": 0, "invalid": 0}
    for item in items:
        status = monitor.record_label(item["inference_id"], item["label"])
        if status in counts:
            counts[status] += 1
    return 200, counts


# ------------------------------------------------------------------------------ baseline
def check_references(d: Mapping[str, Any], feats: Sequence[Any], preds: Sequence[Any],
                     source: str) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, float]]:
    """The optional ``quality``, ``bias`` and ``attribution`` sections of a baseline file,
    validated (``BaselineError`` naming what is wrong). Absent sections are empty."""
    outputs = {c.name: c for c in preds}
    features = {c.name: c for c in feats}

    def num(v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BaselineError(f"{source}: {where} must be a finite number, got {v!r}")
        return float(v)

    quality: Dict[str, Any] = {}
    for out, values in (d.get("quality") or {}).items():
        col = outputs.get(out)
        if col is None or not isinstance(values, Mapping):
            raise BaselineError(f"{source}: quality of unknown output {out!r}")
        want = ({"accuracy", "macro_f1"} if isinstance(col, CategoricalColumn)
                else {"mae", "rmse"})
        if not want <= set(values):
            raise BaselineError(f"{source}: quality of {out!r} needs {sorted(want)}")
        quality[out] = {k: num(v, f"quality.{out}.{k}") for k, v in values.items()}
    bias: Dict[str, Any] = {}
    for facet, entry in (d.get("bias") or {}).items():
        if not isinstance(features.get(facet), CategoricalColumn) or not isinstance(entry, Mapping) \
                or not isinstance(outputs.get(entry.get("output")), CategoricalColumn):
            raise BaselineError(f"{source}: bias of {facet!r} needs a categorical feature and "
                                f"a categorical output")
        clean: Dict[str, Any] = {"output": entry["output"]}
        for metric in ("dppl", "recall_difference"):
            if metric in entry:
                clean[metric] = {str(g): {str(c): num(v, f"bias.{facet}.{metric}")
                                          for c, v in row.items()}
                                 for g, row in entry[metric].items()}
        bias[facet] = clean
    attribution = {}
    for f, v in (d.get("attribution") or {}).items():
        if f not in features:
            raise BaselineError(f"{source}: attribution of unknown feature {f!r}")
        attribution[f] = num(v, f"attribution.{f}")
    return quality, bias, attribution

