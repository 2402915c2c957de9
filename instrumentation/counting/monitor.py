"""The serving side: ``DriftMonitor`` counts every inference against its baseline."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import operator
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry

from ..training.baseline import Baseline
from ..values import (ABSENT as _ABSENT, BAD_SHAPE, INF, NAN, NUMBER_TYPES as _NUMBER_TYPES,
                      REASONS, REQUEST_REASONS, VALID, WRONG_TYPE, category, is_batch, number)
from .exposition import ModelPlan, PromdriftCollector, Sample, collector_for, metrics_text
from .multiprocess import default_store
from .plugins import Call, Plugin
from .store import FEATURE, PREDICTION, CounterStore, Labels, Layout, cumulative_counts

__all__ = ["DriftMonitor", "shutdown_all"]

log = logging.getLogger("promdrift")
#: every monitor of this process, for :func:`shutdown_all`
_live: "weakref.WeakSet[DriftMonitor]" = weakref.WeakSet()


@atexit.register
def shutdown_all() -> None:
    """:meth:`DriftMonitor.shutdown` for every monitor of this process: what each plugin
    queued is written (predictions to the label store, captured rows to their file). Runs
    at interpreter exit, in the gunicorn configuration's ``worker_exit`` hook and in the
    ASGI lifespan's shutdown."""
    for monitor in list(_live):
        monitor.shutdown()

_SKIP = object()  # an output not given at all: neither binned nor counted


class _BadShape(ValueError):
    """Features or a prediction of a shape no row or batch has: the caller's error, counted
    as a refused request (``bad_shape``), never as an instrumentation error."""


def _numbers(values: List[Any], coerce: bool = True
             ) -> Tuple[np.ndarray, List[Tuple[int, int]], List[int]]:
    """Float array of ``values`` (NaN where not a number), (position, reason) of the entries
    that are not numbers at all (reason -1: not observed), and the positions of strings read
    as numbers (``coerce``: the value rules' ``number``). NaN and infinities are numbers
    here, also when a string spells them."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            return np.array(values, dtype=np.float64), [], []
        except OverflowError:  # an int beyond float range
            pass
    out = np.empty(len(values), dtype=np.float64)
    bad: List[Tuple[int, int]] = []
    coerced: List[int] = []
    for i, v in enumerate(values):
        if v is _SKIP:
            out[i] = np.nan
            bad.append((i, -1))
            continue
        reason, x = number(v, coerce)
        if reason == VALID:
            out[i] = x
            if isinstance(v, str):
                coerced.append(i)
        elif reason in (NAN, INF) and isinstance(v, (float, np.floating)):
            out[i] = float(v)  # counted as NaN / inf from the array by the caller
        elif reason in (NAN, INF) and isinstance(v, str):
            out[i] = math.nan if reason == NAN else math.inf  # "nan", "inf": as the numbers
            coerced.append(i)
        else:
            out[i] = np.nan
            bad.append((i, reason))
    return out, bad, coerced


class DriftMonitor:
    """Counts features and predictions of every inference into histograms that match the
    baseline, exposed as Prometheus metrics (see docs/metrics.md).

        >>> from prometheus_client import CollectorRegistry
        >>> from promdrift.instrumentation import Baseline, DriftMonitor
        >>> baseline = Baseline.fit({"age": [23, 35, 41, 58], "plan": ["a", "b", "a", "c"]},
        ...                         model="churn", bins=2)
        >>> monitor = DriftMonitor(baseline, registry=CollectorRegistry())
        >>> monitor.observe({"age": 40, "plan": "z"})       # one row
        >>> monitor.observe([{"age": 70, "plan": "a"}, {"age": None, "plan": "b"}])  # a batch
        >>> monitor.sample("promdrift_feature_category_total", feature="plan", category="__other__")
        1.0
        >>> monitor.sample("promdrift_feature_invalid_total", feature="age", reason="null")
        1.0

    ``baseline`` is a :class:`Baseline` or the path of a baseline JSON file. ``model``
    overrides the baseline's model name, ``model_version`` adds a label to every series.
    ``registry`` is where the metrics are registered (prometheus_client's default registry
    unless told otherwise; ``None`` for none: :meth:`render` still works). ``store`` holds
    the counts: in process memory by default, or, when ``PROMDRIFT_MULTIPROC_DIR`` is set, a
    per-process file summed with the other workers' files at scrape (docs/multiprocess.md).

    ``coerce_numbers``: read a string that spells a number as that number for a numeric
    column (a feature, an output; labels and attributions too), as pydantic's lax mode and
    so a FastAPI model serve it, counted in ``promdrift_feature_coerced_total`` /
    ``promdrift_prediction_coerced_total`` (``False``: every string is ``wrong_type``). See
    ``promdrift.instrumentation.values``.

    :meth:`observe` never raises. Features or a prediction of a shape no row or batch has
    (a string, a row of the wrong length) are the caller's error: the call is counted as a
    refused request (``promdrift_requests_invalid_total{reason="bad_shape"}``, see
    :meth:`invalid_request`) and none of its values is counted (data capture still records
    it as sent, for the offline report to flag). An internal error is counted in
    ``promdrift_instrumentation_errors_total`` and logged once. It counts the drift families
    first (a row of finite numbers by the fast path, ``_defer``; every other shape
    by ``_observe_row`` / ``_observe_batch``), then hands the call to each plugin
    (:meth:`use`: data capture, labels, facets, attributions), whose counters live in stores
    of the same kind as :attr:`store`. :meth:`instrument` and :meth:`track` serve Flask and
    ASGI apps (FastAPI, Starlette).
    """

    def __init__(self, baseline: Union[Baseline, str, "os.PathLike[str]"], *,
                 model: Optional[str] = None, model_version: Optional[str] = None,
                 registry: Optional[CollectorRegistry] = REGISTRY,
                 store: Optional[CounterStore] = None, capture: Optional[Any] = None,
                 coerce_numbers: bool = True):
        if not isinstance(baseline, Baseline):
            baseline = Baseline.load(os.fspath(baseline))
        if model is not None:
            if not isinstance(model, str) or not model:
                raise ValueError("model must be a non-empty string")
            baseline = dataclasses.replace(baseline, model=model)
        self.baseline = baseline
        self.model = baseline.model
        self.model_version = model_version
        self.layout = lay = Layout(baseline)
        self.store = store if store is not None else default_store(lay)
        if self.store.layout.size != lay.size:
            raise ValueError("store was built for another baseline")
        self.plan = ModelPlan(lay, model_version=model_version)
        #: the labels every sample of this model starts with (``model``, ``model_version``
        #: when given, ``baseline``: the digest; see ``exposition.model_labels``)
        self.plan_labels: Labels = self.plan.labels
        self.registry = registry
        #: strings spelling a number count as that number (``promdrift...values.number``)
        self.coerce_numbers = bool(coerce_numbers)
        self._error_logged = False
        self._warned: set = set()
        # refused requests not yet logged, by reason, and when the last line came
        self._refused_lock = threading.Lock()
        self._refused: dict = {}
        self._refused_logged = -math.inf
        #: what plugs into this monitor (``use``): data capture, labels, facets, attributions
        self.plugins: List[Plugin] = []
        #: the plugins of ``track_labels``, ``track_facets``, ``track_attributions`` and
        #: ``capture_to``; None until switched on
        self.labels: Optional[Any] = None
        self.facets: Optional[Any] = None
        self.attributions: Optional[Any] = None
        self.capture: Optional[Any] = None

        # Column positions for rows given as sequences in baseline order.
        fnames = baseline.feature_names
        pos = {n: i for i, n in enumerate(fnames)}
        ppos = {n: i for i, n in enumerate(baseline.prediction_names)}
        self._n_features = len(fnames)
        self._n_outputs = len(ppos)
        #: derived features (multivariate, embedding): computed, not read from the row; they
        #: sit in the numeric block after the user's numeric features (docs/multivariate.md)
        self._derived = lay.derived
        self._emb = baseline.embedding
        self._nd = lay.derived.count if lay.derived is not None else 0
        self._nu = lay.n_numeric_features - self._nd  # the user's numeric features
        # (role, name, position in the row or prediction, column of the numeric block)
        user = [(i, r, c) for i, (r, c) in enumerate(lay.numeric)
                if not self._nu <= i < self._nu + self._nd]
        self._num = [(r, c.name, pos[c.name] if r == FEATURE else ppos[c.name], i)
                     for i, r, c in user]
        self._cat = [(r, c.name, pos[c.name] if r == FEATURE else ppos[c.name])
                     for r, c in lay.categorical]
        self._num_feat_names = [n for r, n, _, _ in self._num if r == FEATURE]
        self._num_feat_pos = np.array([p for r, _, p, _ in self._num if r == FEATURE],
                                      dtype=np.intp)
        self._num_feat_pos_list = self._num_feat_pos.tolist()
        self._num_identity = self._num_feat_pos_list == list(range(self._n_features))
        names = self._num_feat_names
        self._num_getter = (operator.itemgetter(*names) if len(names) > 1 else
                            (lambda r: (r[names[0]],)) if names else (lambda r: ()))
        self._num_pred = [(n, p) for r, n, p, _ in self._num if r == PREDICTION]
        # The fast path of a dict row with numeric outputs only: every numeric column (the
        # store computes the derived features of deferred rows in bulk, an embedding's
        # values travel with its row).
        self._all_numeric = not self._cat and len(self._num_pred) == self._n_outputs
        # Rows given as a list, tuple or 1-D array take the fast path too when the model has
        # derived features (their per-row numpy path costs about 15 µs more than deferring).
        self._seq_fast = (self._all_numeric and self._derived is not None
                          and self._num_identity)
        self._emb_dim = self._emb.dim if self._emb is not None else 0
        self._pred_names = baseline.prediction_names
        self._one_output = self._pred_names[0] if self._n_outputs == 1 else None
        self._edges_t = lay.edges_t
        if registry is not None:
            collector_for(registry).add(self)
        _live.add(self)
        if capture is not None:
            self.capture_to(capture)

    # ------------------------------------------------------------------ plugins
    def use(self, plugin: Plugin) -> Plugin:
        """Plug ``plugin`` (a :class:`~promdrift.instrumentation.counting.plugins.Plugin`) into this
        monitor: it sees every :meth:`observe` call and its counters are rendered with this
        model's (in a store of this monitor's kind). Returns the plugin."""
        if any(p.name == plugin.name for p in self.plugins):
            raise ValueError(f"model {self.model!r} already has a {plugin.name!r} plugin")
        plugin.bind(self)
        self.plugins = self.plugins + [plugin]
        return plugin

    def capture_to(self, capture: Any) -> "DriftMonitor":
        """Also write a sample of the observed rows to ``capture``, a
        :class:`~promdrift.instrumentation.capture.writer.DataCapture` (see docs/capture.md); its
        counters for this model are exposed with this monitor's. Returns ``self``."""
        from ..capture.writer import CaptureTracker
        self.use(CaptureTracker(capture))
        self.capture = capture
        return self

    # ------------------------------------------------------------------ observe
    def observe(self, features: Any, prediction: Any = None, *, inference_id: Any = None,
                attributions: Any = None, embedding: Any = _ABSENT) -> None:
        """Count one inference or a batch.

        ``features``: one row (a dict, or a sequence / 1-D array in baseline feature order)
        or a batch (a list of dicts or sequences, a 2-D array). ``prediction``: for one row,
        the output value (a dict ``{output: value}`` or a sequence when the baseline has
        several outputs); for a batch, a sequence of those (or a 1-D / 2-D array).

        ``embedding``: for a baseline fitted with ``embeddings=``, the row's input vector
        (a 1-D array or list of the training dimension), or for a batch one per row (a 2-D
        array or a sequence of vectors). A vector of the wrong length, with NaN or not of
        numbers counts as invalid by reason (never raises; a wrong dimension is also logged
        once); none given counts as ``missing``. ``features`` may be ``None`` for a model
        with no other features. See docs/multivariate.md.

        ``inference_id`` (a string or int; a sequence of them for a batch) keeps the
        prediction until :meth:`record_label` brings its label (see :meth:`track_labels`),
        and is written by data capture. ``attributions`` (``{feature: value}`` or a sequence
        in baseline feature order; one per row for a batch) are counted when
        :meth:`track_attributions` is on.
        """
        if embedding is not _ABSENT:
            if self._emb is None:
                self._warn_once("embedding", "promdrift: model %r has no embedding baseline; "
                                "embeddings are not counted", self.model)
                embedding = _ABSENT
            elif features is None and self._n_features == 0:
                features = [{}] * len(embedding) if is_batch(embedding) else {}
        try:
            if type(features) is dict and self._all_numeric and self._defer(
                    self._num_getter, features, prediction, embedding):
                pass
            elif self._seq_fast and self._sequence_fast(features, prediction, embedding):
                pass
            elif isinstance(features, Mapping):
                self._observe_row(features, prediction, True, embedding)
            elif isinstance(features, np.ndarray):
                if features.ndim == 2:
                    self._observe_batch(features, prediction, embedding)
                elif features.ndim == 1:
                    self._observe_row(features, prediction, False, embedding)
                else:
                    raise _BadShape(f"a {features.ndim}-D array is no row or batch")
            elif isinstance(features, (list, tuple)):
                if is_batch(features):
                    self._observe_batch(features, prediction, embedding)
                elif features or self._n_features == 0:
                    self._observe_row(features, prediction, False, embedding)
                else:
                    self.store.add_request()  # an empty batch: a request of no rows
            else:
                raise _BadShape(f"features must be a dict, a sequence or an array, "
                                f"not {type(features).__name__}")
        except _BadShape:
            self.invalid_request(BAD_SHAPE)
            if self.plugins:  # data capture records it as sent (the report flags it)
                self._observe_plugins(features, prediction, inference_id, attributions,
                                      malformed=True)
            return
        except Exception:
            self._count_error()
        if self.plugins:
            self._observe_plugins(features, prediction, inference_id, attributions)
        elif attributions is not None or inference_id is not None:
            self._warn_once("outcomes", "promdrift: model %r: inference_id / attributions "
                            "given but not tracked (see track_labels, track_attributions, "
                            "capture_to)", self.model)

    def observe_rows(self, features: Sequence[Any], predictions: Sequence[Any],
                     inference_ids: Sequence[Any], embeddings: Optional[Sequence[Any]] = None
                     ) -> None:
        """Count the rows of one request that each carry their own ``inference_id`` (the
        exporter's ingest): the drift families count them as one batch (one request, as
        :meth:`observe` of the batch does), each plugin sees them one by one, with their
        id. ``predictions``, ``inference_ids`` and ``embeddings``: one per row (``None`` /
        ``values.ABSENT``: not given). Never raises."""
        given = any(p is not None for p in predictions)
        vectors: Any = _ABSENT
        if embeddings is not None and any(e is not _ABSENT for e in embeddings):
            vectors = list(embeddings)
        if self._emb is None and vectors is not _ABSENT:
            self._warn_once("embedding", "promdrift: model %r has no embedding baseline; "
                            "embeddings are not counted", self.model)
            vectors = _ABSENT
        try:
            if not isinstance(features, (list, tuple)) or not all(
                    isinstance(f, Mapping) for f in features):
                raise _BadShape("observe_rows takes a list of feature dicts")
            self._observe_batch(features, list(predictions) if given else None, vectors)
        except _BadShape:
            self.invalid_request(BAD_SHAPE)
            return
        except Exception:
            self._count_error()
        if self.plugins:
            for f, p, i in zip(features, predictions, inference_ids):
                self._observe_plugins(f, p, i, None)

    #: Seconds at least between two log lines about refused requests of one monitor.
    REFUSED_LOG_INTERVAL = 60.0

    def invalid_request(self, reason: str) -> None:
        """Count a request whose features could not be read (the client's error, never an
        instrumentation error) by ``reason``, one of ``values.REQUEST_REASONS``:
        ``not_json``, ``not_object``, ``no_features``, ``bad_shape``. ``track`` and the
        exporter call it for bodies they cannot read, :meth:`observe` for features of the
        wrong shape. Counted in ``promdrift_requests_total`` and
        ``promdrift_requests_invalid_total``; logged as one line without a traceback, at
        most once every :attr:`REFUSED_LOG_INTERVAL` seconds (with the requests refused
        since the previous line). ``ValueError`` for another reason."""
        if reason not in REQUEST_REASONS:
            raise ValueError(f"reason must be one of {', '.join(REQUEST_REASONS)}, "
                             f"got {reason!r}")
        try:
            self.store.add_request(self.layout.request_slot(reason))
            now = time.monotonic()
            with self._refused_lock:
                self._refused[reason] = self._refused.get(reason, 0) + 1
                if now - self._refused_logged < self.REFUSED_LOG_INTERVAL:
                    return
                self._refused_logged = now
                refused, self._refused = self._refused, {}
            log.warning("promdrift: model %r: %d request(s) whose features could not be read "
                        "(%s): a client's error, not promdrift's, counted in "
                        "promdrift_requests_invalid_total (one such line per %g s at most)",
                        self.model, sum(refused.values()),
                        ", ".join(f"{k}: {v}" for k, v in sorted(refused.items())),
                        self.REFUSED_LOG_INTERVAL)
        except Exception:
            self._count_error()

    def _observe_plugins(self, features: Any, prediction: Any, inference_id: Any,
                         attributions: Any, malformed: bool = False) -> None:
        """Hand one observe call to every plugin (an error is counted, never raised; a
        plugin failing on a ``malformed`` call, one of the wrong shape, is the caller's
        error, counted as such already)."""
        call = Call(self, features, prediction, inference_id, attributions)
        for plugin in self.plugins:
            try:
                plugin.observe(call)
            except Exception:
                if not malformed:
                    self._count_error()

    def _sequence_fast(self, row: Any, prediction: Any, embedding: Any) -> bool:
        """:meth:`_defer` for a row given as a list, tuple or 1-D numeric array of every
        feature in baseline order (models with derived features only)."""
        t = type(row)
        if t is np.ndarray:
            if row.ndim != 1 or row.dtype.kind not in "fiu":
                return False
            row = row.tolist()
        elif t is not list and t is not tuple:
            return False
        if len(row) != self._n_features or (row and type(row[0]) in (list, tuple, dict)):
            return False  # a batch, or the wrong length (the general path names it)
        return self._defer(tuple, row, prediction, embedding)

    def _defer(self, read: Any, row: Any, prediction: Any, embedding: Any) -> bool:
        """The common case: a row of finite numbers (``read(row)``: its numeric feature
        values), no prediction or finite numeric outputs only (one number, or ``{output:
        number}``), and for a model with an embedding a valid vector (a list of finite
        numbers or a 1-D float array of the training dimension). The values (then the
        vector's) are handed to the store, which bins such rows in bulk and computes their
        derived features there (``CounterStore.defer``): a few list operations in the
        request instead of several numpy calls, which cost 3x more inside a request than
        in a loop (their code and data are no longer in the CPU's caches). Returns False
        (nothing counted) when the row needs the general path."""
        try:
            values = read(row)
            if prediction is not None:
                if not self._n_outputs:
                    return False
                if self._one_output is not None and type(prediction) in _NUMBER_TYPES:
                    values = values + (prediction,)
                elif type(prediction) is dict:
                    values = values + tuple(prediction[n] for n in self._pred_names)
                else:
                    return False
            # A float start: an int too large for a float raises OverflowError here, rather
            # than cancelling out in the sum and failing the bulk conversion later.
            if not math.isfinite(sum(values, 0.0)):
                return False
            vector = None
            if self._emb_dim:
                vector = self._fast_vector(embedding)
                if vector is None:
                    return False
        except (KeyError, TypeError, OverflowError):
            return False
        self.store.defer(values, vector)
        return True

    def _fast_vector(self, v: Any) -> Any:
        """A copy of a valid embedding (a tuple of a list, a float array of an array), or
        ``None`` for the general path (which judges the vector: absent, the wrong length,
        not finite numbers)."""
        t = type(v)
        if t is np.ndarray:
            if v.ndim != 1 or v.dtype.kind != "f" or len(v) != self._emb_dim \
                    or not math.isfinite(float(np.vdot(v, v))):
                return None
            return v.copy()
        if t is not list or len(v) != self._emb_dim or not math.isfinite(sum(v, 0.0)):
            return None
        return tuple(v)

    def _check_dimension(self, embedding: Any, reasons: Any, batch: bool) -> None:
        """Log once when an embedding was counted ``wrong_type`` (``reasons``: the embedding
        features' reason codes) for its dimension."""
        if self._emb is None or "dimension" in self._warned or embedding is _ABSENT \
                or WRONG_TYPE not in reasons:
            return
        got = self._derived.received_dimension(embedding, batch)
        if got is not None:
            self._warn_once("dimension", "promdrift: model %r: an embedding of %d dimensions, "
                            "the baseline's have %d (counted as wrong_type; logged once)",
                            self.model, got, self._emb.dim)

    def _count_error(self) -> None:
        try:
            self.store.add_error()
        finally:
            if not self._error_logged:
                self._error_logged = True
                log.exception("promdrift: observe failed for model %r (counted in "
                              "promdrift_instrumentation_errors_total; logged once)", self.model)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _prediction_row(self, prediction: Any) -> Any:
        """A mapping or sequence of output values for one row (None: no outputs)."""
        if prediction is None:
            return None
        if self._n_outputs == 0:
            self._warn_once("pred", "promdrift: model %r has no prediction baseline; "
                            "predictions are not counted", self.model)
            return None
        if isinstance(prediction, Mapping):
            return prediction
        if self._n_outputs == 1:
            return (prediction,)
        if isinstance(prediction, (list, tuple, np.ndarray)) and len(prediction) == self._n_outputs:
            return prediction
        raise _BadShape(f"model {self.model!r} has {self._n_outputs} outputs; pass a dict "
                        f"or a sequence of {self._n_outputs} values")

    def _get(self, row: Any, is_map: bool, name: str, pos: int) -> Any:
        if is_map:
            return row.get(name, _ABSENT)
        return row[pos]

    def _observe_row(self, row: Any, prediction: Any, mapping: bool, embedding: Any) -> None:
        lay = self.layout
        if not mapping and len(row) != self._n_features:
            raise _BadShape(f"row has {len(row)} values, the baseline has "
                            f"{self._n_features} features")
        prow = self._prediction_row(prediction)
        pmap = isinstance(prow, Mapping)
        # Numeric block: features, then prediction outputs when a prediction was given.
        try:
            if mapping:
                values = self._num_getter(row)
            elif isinstance(row, np.ndarray) and row.dtype.kind == "f":
                values = row[self._num_feat_pos].tolist()
            else:
                values = [row[p] for p in self._num_feat_pos_list]
            if prow is not None and self._num_pred:
                values = tuple(values) + tuple(self._get(prow, pmap, n, p)
                                               for n, p in self._num_pred)
            fast = math.isfinite(sum(values, 0.0))  # TypeError / OverflowError: not numbers
        except (KeyError, TypeError, OverflowError):
            fast = False
        other: List[int] = []
        derived = self._derived
        if fast and derived is None:
            x = np.fromiter(values, dtype=np.float64, count=len(values))
            below = x <= lay.edges_t[:, :len(x)]
        else:
            if fast:
                x = np.fromiter(values, dtype=np.float64, count=len(values))
                codes = None
            else:
                if mapping:
                    values = [row.get(n, _ABSENT) for n in self._num_feat_names]
                else:
                    values = [row[p] for p in self._num_feat_pos_list]
                if prow is not None:
                    values += [self._get(prow, pmap, n, p) for n, p in self._num_pred]
                x, bad, coerced = _numbers(values, self.coerce_numbers)
                nu, nd = self._nu, self._nd
                # columns of the numeric block: outputs come after the derived ones
                other += [lay.invalid_slot(i if i < nu else i + nd, r) for i, r in bad]
                other += [lay.coerced_slot(i if i < nu else i + nd) for i in coerced]
                nan = np.isnan(x)
                if bad:
                    nan[[i for i, _ in bad]] = False
                other += [lay.invalid_slot(int(i) if i < nu else int(i) + nd, NAN)
                          for i in np.flatnonzero(nan)]
                other += [lay.invalid_slot(int(i) if i < nu else int(i) + nd, INF)
                          for i in np.flatnonzero(np.isinf(x))]
                codes = None
                if derived is not None and bad:
                    codes = [-1] * nu
                    for i, r in bad:
                        if i < nu:
                            codes[i] = r
            if derived is not None:
                nu = self._nu
                d, dbad = derived.row(x, codes, embedding)
                x = np.concatenate((x[:nu], d, x[nu:]))
                if dbad:
                    other += [lay.invalid_slot(c, r) for c, r in dbad]
                    self._check_dimension(embedding, [r for _, r in dbad[-1:]], batch=False)
            finite = np.isfinite(x)
            below = (x <= lay.edges_t[:, :len(x)]) & finite
            x = np.where(finite, x, 0.0)
        # Categorical block.
        base = len(lay.numeric)
        for j, (role, name, p) in enumerate(self._cat):
            if role == FEATURE:
                v = row.get(name, _ABSENT) if mapping else row[p]
            elif prow is None:
                continue
            else:
                v = self._get(prow, pmap, name, p)
            reason, key = category(v)
            if key is None:
                other.append(lay.invalid_slot(base + j, reason))
            else:
                index = lay.cat_index[j]
                other.append(lay.cat_offsets[j] + index.get(key, lay.cat_other[j]))
        self.store.add_row(below, x, other)

    def _observe_batch(self, rows: Any, prediction: Any, embedding: Any) -> None:
        lay = self.layout
        n = len(rows)
        is_array = isinstance(rows, np.ndarray)
        if is_array:
            if rows.shape[1] != self._n_features:
                raise _BadShape(f"batch has {rows.shape[1]} columns, the baseline has "
                                f"{self._n_features} features")
            kinds = None
        else:
            kinds = [isinstance(r, Mapping) for r in rows]
            for r, k in zip(rows, kinds):
                if not k and not (isinstance(r, (list, tuple)) or (
                        isinstance(r, np.ndarray) and r.ndim == 1)):
                    raise _BadShape(f"a batch holds a {type(r).__name__}, which is no row")
                if not k and len(r) != self._n_features:
                    raise _BadShape(f"row has {len(r)} values, the baseline has "
                                    f"{self._n_features} features")
        prows = None
        if prediction is not None:
            if not self._n_outputs:
                self._prediction_row(prediction)  # warns once
            elif not isinstance(prediction, (list, tuple, np.ndarray)) or (
                    isinstance(prediction, np.ndarray) and prediction.ndim == 0) \
                    or len(prediction) != n:
                raise _BadShape(f"a batch of {n} rows needs a sequence of {n} predictions")
            else:
                prows = [self._prediction_row(p) for p in prediction]
        if n == 0:
            self.store.add_request()  # a request of no rows
            return

        def column(role: str, name: str, p: int) -> List[Any]:
            if role == FEATURE:
                if is_array:
                    return rows[:, p].tolist()
                return [r.get(name, _ABSENT) if k else r[p] for r, k in zip(rows, kinds)]
            return [self._get(pr, isinstance(pr, Mapping), name, p) if pr is not None
                    else _SKIP for pr in prows]

        # Numeric block: x is (rows, numeric columns), row-major: the user's numeric
        # features, the derived ones, the numeric outputs when predictions were given.
        fn = len(lay.numeric) if prows is not None else lay.n_numeric_features
        nu, nd = self._nu, self._nd
        premarked = None
        codes = None  # reasons of user numeric values that are not numbers (derived inputs)
        other: List[int] = []
        fast_array = is_array and rows.dtype.kind in "fiub"
        if fast_array and fn == nu and self._num_identity:
            x = np.asarray(rows, dtype=np.float64)
        else:
            x = np.empty((n, fn), dtype=np.float64)
            if fast_array:
                x[:, :nu] = rows[:, self._num_feat_pos]
            for role, name, p, i in self._num[nu if fast_array else 0:]:
                if i >= fn:  # outputs, no predictions given
                    break
                values, bad, coerced = _numbers(column(role, name, p), self.coerce_numbers)
                x[:, i] = values
                if coerced:
                    other += [lay.coerced_slot(i)] * len(coerced)
                if bad:
                    if premarked is None:
                        premarked = np.zeros((n, fn), dtype=bool)
                    if nd and i < nu and codes is None:
                        codes = np.full((n, nu), -1, dtype=np.int64)
                    for row_i, reason in bad:
                        premarked[row_i, i] = True
                        if reason >= 0:
                            other.append(lay.invalid_slot(i, reason))
                            if nd and i < nu:
                                codes[row_i, i] = reason
        incr = np.zeros(lay.size, dtype=np.float64)
        if nd:
            x[:, nu:nu + nd], groups = self._derived.batch(x, codes, embedding)
            invalid = lay.derived_invalid(groups)
            if invalid is not None:
                incr += invalid
                self._check_dimension(embedding, groups[-1][2], batch=True)
        if fn:
            finite = np.isfinite(x)
            if not finite.all():
                nan = np.isnan(x)
                if premarked is not None:
                    nan &= ~premarked
                if nd:
                    nan[:, nu:nu + nd] = False  # counted by reason above
                slots = lay.invalid_base + np.arange(fn) * len(REASONS)
                incr[slots + NAN] += nan.sum(0)
                incr[slots + INF] += np.isinf(x).sum(0)
                incr[lay.sum_base:lay.sum_base + fn] += np.where(finite, x, 0.0).sum(0)
                x = np.where(finite, x, np.nan)  # NaN is below no edge: never binned
            else:
                incr[lay.sum_base:lay.sum_base + fn] += x.sum(0)
            total = len(lay.numeric)
            start = lay.bucket_base
            incr[start:start + total * lay.width].reshape(lay.width, total)[:, :fn] += \
                cumulative_counts(x, lay.edges_t[:, :fn])
        # Categorical block.
        for j, (role, name, p) in enumerate(self._cat):
            if role == PREDICTION and prows is None:
                continue
            index = lay.cat_index[j]
            off, n_cat = lay.cat_offsets[j], lay.cat_other[j]
            inv = len(lay.numeric) + j
            for v in column(role, name, p):
                if v is _SKIP:
                    continue
                reason, key = category(v)
                if key is None:
                    other.append(lay.invalid_slot(inv, reason))
                else:
                    other.append(off + index.get(key, n_cat))
        if other:
            incr += np.bincount(np.asarray(other, dtype=np.intp), minlength=lay.size)
        self.store.add_batch(incr, n)

    # ------------------------------------------------------------------ exposition
    def exposed(self) -> List[Tuple[Any, CounterStore]]:
        """``(plan, store)`` of every counts array this model renders: its drift families,
        then each plugin's blocks."""
        out: List[Tuple[Any, CounterStore]] = [(self.plan, self.store)]
        for plugin in self.plugins:
            out.extend(plugin.exposed())
        return out

    def scrape_samples(self) -> List[Sample]:
        """Samples computed at scrape (the label store's gauges, the nDCG); plugins write
        what they queued first (a failure is counted, the scrape goes on)."""
        out: List[Sample] = []
        for plugin in self.plugins:
            try:
                plugin.flush()
                out.extend(plugin.scrape_samples())
            except Exception:
                self._count_error()
        return out

    def render(self) -> str:
        """This model's metrics as Prometheus text exposition (format 0.0.4)."""
        return PromdriftCollector([self]).render()

    def metrics_text(self) -> bytes:
        """Everything in this monitor's registry as text exposition (what ``/metrics`` serves)."""
        if self.registry is None:
            return self.render().encode("utf-8")
        return metrics_text(self.registry)

    def sample(self, name: str, **labels: str) -> Optional[float]:
        """The current value of one of this model's samples (``None`` if there is none).

        ``model`` (and ``model_version``) are filled in; give the other labels.
        """
        want = {**dict(self.plan_labels), **labels}
        for fam, sname, slabels, value in self.scrape_samples():
            if sname == name and dict(slabels) == want:
                return value
        for plan, store in self.exposed():
            for _, samples in plan.metrics(store.snapshot()):
                for sname, slabels, value in samples:
                    if sname == name and slabels == want:
                        return value
        return None

    def flush(self) -> None:
        """Have every plugin write what it queued (captured rows to their file, predictions
        to the label store)."""
        for plugin in self.plugins:
            try:
                plugin.flush()
            except Exception:
                self._count_error()

    def shutdown(self) -> None:
        """The server stops: every plugin writes what it queued, data capture finalises its
        current file (the ASGI lifespan's shutdown calls this; the monitor keeps working)."""
        for plugin in self.plugins:
            try:
                plugin.shutdown()
            except Exception:
                self._count_error()

    def close(self) -> None:
        """Stop exposing this model (its registry no longer lists it); plugins write what
        they queued (data capture finalises its current file) and a label store the monitor
        created itself is closed and removed."""
        if self.registry is not None:
            coll = collector_for(self.registry, create=False)
            if coll is not None:
                coll.remove(self)
        for plugin in self.plugins:
            try:
                plugin.close()
            except Exception:
                self._count_error()

    # ------------------------------------------------------------------ outcomes
    def track_labels(self, store: Any = None, **limits: Any) -> "DriftMonitor":
        """Keep predictions observed with an ``inference_id`` until :meth:`record_label`
        brings their label; count quality (docs/metrics.md, "Model quality"). Returns self.

        ``store``: a :class:`~promdrift.instrumentation.outcomes.quality.LabelStore`, or the path of
        its SQLite file (``":memory:"`` for none), with ``max_age`` / ``max_rows`` / ``hold``
        as keywords; by default ``quality.default_store_path``: a per-process file under
        the temp directory removed by :meth:`close`, or with ``PROMDRIFT_MULTIPROC_DIR`` one
        file there shared by the server's workers.
        """
        from ..outcomes.quality import LabelTracker
        self.labels = self.use(LabelTracker(store, **limits))
        return self

    def track_facets(self, *facets: str) -> "DriftMonitor":
        """Count predictions (and joined labels) per group of each facet, a categorical
        feature (default: the facets of the baseline's bias section). Returns self."""
        from ..outcomes.bias import FacetTracker
        self.facets = self.use(FacetTracker(*facets))
        return self

    def track_attributions(self, *, window: float = 3600.0, slots: int = 60) -> "DriftMonitor":
        """Count per-feature ``|attribution|`` passed to :meth:`observe` and expose the
        nDCG of the last ``window`` seconds' ranking against the baseline's. Returns self."""
        from ..outcomes.attribution import AttributionTracker
        self.attributions = self.use(AttributionTracker(window=window, slots=slots))
        return self

    def record_label(self, inference_id: Any, label: Any) -> str:
        """The ground truth of an inference observed with ``inference_id``; never raises.

        ``label``: the true value of the only output, or ``{output: value}``. Returns what
        happened: ``"matched"`` (joined and counted), ``"held"`` (no prediction with that
        id yet: kept for the store's ``hold`` seconds, counted unmatched if none comes),
        ``"duplicate"`` (the id already has a label: ignored, counted), ``"invalid"`` (not
        an id), ``"disabled"`` (labels not tracked) or ``"error"`` (counted in
        ``promdrift_instrumentation_errors_total``).
        """
        if self.labels is None:
            self._warn_once("labels", "promdrift: model %r does not track labels "
                            "(call track_labels); labels are ignored", self.model)
            return "disabled"
        return self.labels.record(inference_id, label)

    # ------------------------------------------------------------------ web frameworks
    def instrument(self, app: Any, metrics_path: str = "/metrics",
                   landing_path: Optional[str] = "/") -> Any:
        """Serve ``/metrics`` (this monitor's registry) and a landing page
        (:func:`~promdrift.instrumentation.landing_page`) at ``landing_path`` unless the app
        has its own page there (``None``: no landing page), from a Flask app or an ASGI app
        (FastAPI, Starlette, any ASGI callable: ``promdrift.instrumentation.web.asgi``). Returns
        the app (a FastAPI / Starlette app itself; another ASGI callable wrapped: serve
        what is returned)."""
        if _is_flask(app):
            from ..web.flask import instrument
        else:
            from ..web.asgi import instrument
        return instrument(self, app, metrics_path=metrics_path, landing_path=landing_path)

    def track(self, features: Any, prediction: Any = None, inference_id: Any = None) -> Any:
        """Decorator for a Flask view or a FastAPI / Starlette endpoint (``def`` or
        ``async def``): observe the request's ``features``, the view's ``prediction`` and
        the ``inference_id`` after the view ran. See ``promdrift.instrumentation.web.flask`` and
        ``promdrift.instrumentation.web.asgi``."""
        from ..web.tracking import track
        return track(self, features=features, prediction=prediction, inference_id=inference_id)


def _is_flask(app: Any) -> bool:
    """A Flask (WSGI) app, told apart without importing Flask."""
    return hasattr(app, "add_url_rule") and hasattr(app, "wsgi_app")
