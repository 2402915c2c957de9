"""Model quality from delayed labels: a bounded SQLite store of predictions awaiting their
label (``LabelStore``), the join on inference id, and the counters the join feeds
(``QualityCounters``: a confusion matrix per categorical output, absolute and squared error
per numeric output, label delay).

    >>> store = LabelStore(":memory:", max_rows=2)
    >>> store.put_predictions("m", [("a", '{"p": 1}'), ("b", '{"p": 2}')], now=100.0)
    []
    >>> store.put_label("m", "a", "1", now=160.0)
    ('matched', '{"p": 1}', 100.0)
    >>> store.put_label("m", "a", "1", now=170.0)[0]
    'duplicate'
    >>> store.put_predictions("m", [("c", '{"p": 3}')], now=180.0)  # evicts "a", the oldest
    []
    >>> store.pending("m")
    (2, 0)
    >>> store.close()

Metric names and the rules built on them are in docs/metrics.md ("Outcomes").
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .baseline import OTHER, BaselineError, CategoricalColumn, Column, NumericColumn, category_key
from .binning import format_le

__all__ = ["LabelStore", "QualityCounters", "quality_reference", "confusion_matrix",
           "classification_metrics", "default_store_path", "DELAY_BUCKETS"]

#: Label delay histogram buckets in seconds: 1 s ... 7 days.
DELAY_BUCKETS: Tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
                                    604800.0)
#: Absolute error buckets of a numeric output, in units of the baseline output's std.
ERROR_BUCKETS_STD: Tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def default_store_path(model: str) -> str:
    """Where a monitor keeps its label store unless told otherwise:
    ``$TMPDIR/promdrift/labels-<model>-<pid>.sqlite3`` (one file per process, removed by
    ``DriftMonitor.close``). Processes that should join each other's predictions and labels
    (gunicorn workers) must share one explicit path instead."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    directory = os.path.join(tempfile.gettempdir(), "promdrift")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"labels-{safe}-{os.getpid()}.sqlite3")


class LabelStore:
    """Predictions awaiting their label (and labels that arrived before their prediction),
    one SQLite table, bounded by age and by row count; thread-safe.

        >>> s = LabelStore(":memory:", max_age=60, hold=5)
        >>> s.put_label("m", "early", "0", now=0.0)          # no prediction yet: held
        ('held',)
        >>> s.put_predictions("m", [("early", '{"p": 0}')], now=2.0)   # joined on arrival
        [('early', '{"p": 0}', '0', 2.0, 0.0)]
        >>> s.put_label("m", "ghost", "1", now=3.0)
        ('held',)
        >>> s.purge(now=10.0); s.evicted("m")   # (by age, by count, held labels expired)
        (0, 0, 1)

    ``path``: a file (created, in WAL mode) or ``":memory:"``; several models may share a
    file (rows are keyed by model and inference id). ``max_age``: seconds a prediction
    waits for its label; ``max_rows``: rows kept per file (the oldest go first); ``hold``:
    seconds a label that arrived before its prediction waits for it. Rows already labelled
    stay (until age or count evicts them) so that a second label for an id is recognised as a
    duplicate.
    """

    def __init__(self, path: str = ":memory:", *, max_age: float = 7 * 86400.0,
                 max_rows: int = 200_000, hold: float = 300.0):
        for name, v in (("max_age", max_age), ("hold", hold)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
        self.path = os.fspath(path)
        self.max_age = float(max_age)
        self.max_rows = max_rows
        self.hold = float(hold)
        self._lock = threading.Lock()
        self._last_purge = -math.inf
        self._stats: Dict[str, List[int]] = {}
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False,
                                       isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS outcomes (
                    seq INTEGER PRIMARY KEY,
                    model TEXT NOT NULL,
                    id TEXT NOT NULL,
                    predicted_at REAL,
                    prediction TEXT,
                    labelled_at REAL,
                    label TEXT,
                    UNIQUE (model, id)
                );
                CREATE INDEX IF NOT EXISTS outcomes_predicted_at ON outcomes (predicted_at);
                CREATE INDEX IF NOT EXISTS outcomes_held ON outcomes (labelled_at)
                    WHERE prediction IS NULL;
            """)
        except sqlite3.Error as e:
            raise ValueError(f"cannot open label store {self.path}: {e}") from None

    # --------------------------------------------------------------------------- writes
    def put_predictions(self, model: str, items: Sequence[Tuple[Any, ...]], now: float
                        ) -> List[Tuple[str, Optional[str], Optional[str], float, float]]:
        """Store predictions ``(inference_id, payload)`` or ``(inference_id, payload,
        predicted_at)`` (default ``now``). Returns, for each id that was already in the
        store, ``(id, prediction, label, predicted_at, labelled_at)``: a join with a label
        that arrived first, or ``(id, None, None, predicted_at, predicted_at)`` for a
        duplicate prediction id (ignored: the first prediction is kept)."""
        out: List[Tuple[str, Optional[str], Optional[str], float, float]] = []
        with self._transaction(model, now) as db:
            for item in items:
                ident, payload = item[0], item[1]
                at = float(item[2]) if len(item) > 2 else now
                cur = db.execute(
                    "INSERT INTO outcomes (model, id, predicted_at, prediction) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (model, id) DO NOTHING",
                    (model, ident, at, payload))
                if cur.rowcount:
                    continue
                row = db.execute(
                    "UPDATE outcomes SET predicted_at = ?, prediction = ? "
                    "WHERE model = ? AND id = ? AND prediction IS NULL "
                    "RETURNING label, labelled_at", (at, payload, model, ident)).fetchone()
                if row is not None:
                    out.append((ident, payload, row[0], at, float(row[1])))
                else:
                    out.append((ident, None, None, at, at))
        return out

    def put_label(self, model: str, ident: str, label: str, now: float) -> Tuple[Any, ...]:
        """Record a label: ``("matched", prediction, predicted_at)`` when its prediction is
        stored and not yet labelled, ``("duplicate",)`` when the id already has a label,
        ``("held",)`` when no prediction has that id yet (kept for ``hold`` seconds)."""
        with self._transaction(model, now) as db:
            row = db.execute(
                "SELECT prediction, predicted_at, labelled_at FROM outcomes "
                "WHERE model = ? AND id = ?", (model, ident)).fetchone()
            if row is None:
                db.execute("INSERT INTO outcomes (model, id, labelled_at, label) "
                           "VALUES (?, ?, ?, ?)", (model, ident, now, label))
                return ("held",)
            if row[2] is not None:
                return ("duplicate",)
            db.execute("UPDATE outcomes SET labelled_at = ?, label = ? "
                       "WHERE model = ? AND id = ?", (now, label, model, ident))
            return ("matched", row[0], float(row[1]))

    def purge(self, now: float) -> None:
        """Drop what is past its time (``max_age``, ``hold``) or beyond ``max_rows``; the
        write methods do this themselves (the age pass at most once a second)."""
        self._last_purge = -math.inf
        with self._transaction(None, now):
            pass

    @contextlib.contextmanager
    def _transaction(self, model: Optional[str], now: float) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                if now - self._last_purge >= 1.0 or now < self._last_purge:
                    self._last_purge = now
                    self._purge_age(db, now)
                self._purge_count(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _count(self, db: sqlite3.Connection, where: str, args: Tuple[Any, ...],
               slot: int) -> None:
        """Add the never-joined rows matching ``where`` to the eviction counts: predictions
        to ``slot``, held labels to "expired"."""
        for model, held, n in db.execute(
                "SELECT model, prediction IS NULL, COUNT(*) FROM outcomes WHERE (" + where
                + ") AND (labelled_at IS NULL OR prediction IS NULL) GROUP BY 1, 2", args):
            stats = self._stats.setdefault(model, [0, 0, 0])
            stats[2 if held else slot] += n

    def _purge_age(self, db: sqlite3.Connection, now: float) -> None:
        where = "predicted_at < ? OR (prediction IS NULL AND labelled_at < ?)"
        args = (now - self.max_age, now - self.hold)
        self._count(db, where, args, 0)
        db.execute("DELETE FROM outcomes WHERE " + where, args)

    def _purge_count(self, db: sqlite3.Connection) -> None:
        # A new row's seq is one above the largest in the table (plain rowid: an insert
        # ignored on conflict takes none), so the rows kept are those of the max_rows
        # highest seq values: at most max_rows rows, one range delete on the primary key.
        top = db.execute("SELECT MAX(seq) FROM outcomes").fetchone()[0]
        if top is None or top <= self.max_rows:
            return
        args = (top - self.max_rows,)
        if db.execute("SELECT 1 FROM outcomes WHERE seq <= ? LIMIT 1", args).fetchone():
            self._count(db, "seq <= ?", args, 1)
            db.execute("DELETE FROM outcomes WHERE seq <= ?", args)

    # --------------------------------------------------------------------------- reads
    def evicted(self, model: str) -> Tuple[int, int, int]:
        """What this store object dropped of a model without a join, since it was opened:
        ``(predictions by age, predictions by count, held labels expired)``."""
        with self._lock:
            return tuple(self._stats.get(model, (0, 0, 0)))  # type: ignore[return-value]

    def pending(self, model: str) -> Tuple[int, int]:
        """``(predictions awaiting a label, labels awaiting their prediction)`` of a model."""
        with self._lock:
            row = self._db.execute(
                "SELECT SUM(labelled_at IS NULL), SUM(prediction IS NULL) FROM outcomes "
                "WHERE model = ?", (model,)).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def rows(self) -> int:
        """Rows in the store (all models, labelled ones included)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------------------------ references
def class_index(col: CategoricalColumn, value: Any) -> Optional[int]:
    """Index of a class among the column's top-K (``len(categories)`` for ``__other__``),
    ``None`` when the value is not a valid category (None, NaN, a container ...)."""
    key = value if type(value) is str else category_key(value)
    if key is None:
        return None
    try:
        return col.categories.index(key)
    except ValueError:
        return len(col.categories)


def number(value: Any) -> Optional[float]:
    """A finite float, or ``None`` (None, NaN, infinities, strings, bools are not numbers)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def confusion_matrix(col: CategoricalColumn, y_true: Iterable[Any], y_pred: Iterable[Any]
                     ) -> np.ndarray:
    """``(K + 1, K + 1)`` counts, rows = actual class, columns = predicted class, over the
    column's top-K classes and ``__other__``; pairs with an invalid side are skipped."""
    k = len(col.categories) + 1
    out = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        a, b = class_index(col, t), class_index(col, p)
        if a is not None and b is not None:
            out[a, b] += 1
    return out


def classification_metrics(cm: np.ndarray) -> Dict[str, float]:
    """Accuracy and macro F1 of a confusion matrix (F1 of a class = 2TP / (2TP + FP + FN),
    averaged over the classes that occur as actual or predicted; as the recording rules do)."""
    n = cm.sum()
    if n == 0:
        raise BaselineError("no valid (label, prediction) pairs")
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)  # 2TP + FP + FN
    present = denom > 0
    f1 = 2 * tp[present] / denom[present]
    return {"accuracy": float(tp.sum() / n), "macro_f1": float(f1.mean()), "count": int(n)}


def regression_metrics(y_true: Iterable[Any], y_pred: Iterable[Any]) -> Dict[str, float]:
    """MAE and RMSE over the pairs where both sides are finite numbers."""
    pairs = [(number(t), number(p)) for t, p in zip(y_true, y_pred)]
    err = np.array([p - t for t, p in pairs if t is not None and p is not None], dtype=float)
    if err.size == 0:
        raise BaselineError("no valid (label, prediction) pairs")
    return {"mae": float(np.abs(err).mean()), "rmse": float(math.sqrt((err ** 2).mean())),
            "count": int(err.size)}


def quality_reference(col: Column, y_true: Any, y_pred: Any) -> Dict[str, float]:
    """Validation-set quality of one output (what ``Baseline.with_quality`` stores)."""
    y_true, y_pred = list(_values(y_true)), list(_values(y_pred))
    if len(y_true) != len(y_pred):
        raise BaselineError(f"{len(y_true)} labels for {len(y_pred)} predictions")
    if isinstance(col, CategoricalColumn):
        return classification_metrics(confusion_matrix(col, y_true, y_pred))
    return regression_metrics(y_true, y_pred)


def _values(v: Any) -> Iterable[Any]:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "tolist") and not isinstance(v, (list, tuple)):
        return v.tolist()  # pandas Series
    return v


def error_edges(col: NumericColumn) -> Tuple[float, ...]:
    """Absolute error buckets of a numeric output: ``ERROR_BUCKETS_STD`` times the baseline
    output's standard deviation (1 when it is 0), 3 significant digits."""
    scale = col.std if col.std > 0 else 1.0
    edges = sorted({float(f"{m * scale:.3g}") for m in ERROR_BUCKETS_STD})
    return tuple(edges)


# ------------------------------------------------------------------------------ counters
Labels = Tuple[Tuple[str, str], ...]
Sample = Tuple[str, Labels, float]
Family = Tuple[str, str, str, List[Sample]]  # name (counters without _total), type, help, samples


def _histogram(name: str, labels: Labels, les: Sequence[str], cumulative: Sequence[float],
               total: float) -> List[Sample]:
    out = [(name + "_bucket", labels + (("le", le),), float(c))
           for le, c in zip(les, cumulative)]
    out.append((name + "_count", labels, float(cumulative[-1])))
    out.append((name + "_sum", labels, float(total)))
    return out


class QualityCounters:
    """The counters the label join feeds, for every prediction output of a baseline.

        >>> from promdrift.instrumentation import Baseline
        >>> b = Baseline.fit({"x": [1, 2, 3, 4], "y": ["a", "b", "a", "b"]}, predictions="y")
        >>> q = QualityCounters(b)
        >>> q.count_join({"y": "a"}, "b", delay=30.0)   # (actual, predicted) class indices
        {'y': (1, 0)}
        >>> q.confusion["y"].tolist()   # rows actual a, b, __other__; columns predicted
        [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    """

    def __init__(self, baseline: Any):
        self.outputs: Dict[str, Column] = {c.name: c for c in baseline.predictions}
        if not self.outputs:
            raise ValueError(f"model {baseline.model!r}: the baseline has no prediction "
                             f"outputs, so labels have nothing to be compared with")
        self.lock = threading.Lock()
        self.confusion: Dict[str, np.ndarray] = {}
        self.edges: Dict[str, Tuple[float, ...]] = {}
        self.errors: Dict[str, np.ndarray] = {}  # cumulative buckets
        self.error_sums: Dict[str, np.ndarray] = {}  # abs sum, squared sum
        for name, col in self.outputs.items():
            if isinstance(col, CategoricalColumn):
                k = len(col.categories) + 1
                self.confusion[name] = np.zeros((k, k), dtype=np.int64)
            else:
                self.edges[name] = error_edges(col)
                self.errors[name] = np.zeros(len(self.edges[name]) + 1, dtype=np.int64)
                self.error_sums[name] = np.zeros(2, dtype=np.float64)
        self.delay = np.zeros(len(DELAY_BUCKETS) + 1, dtype=np.int64)
        self.delay_sum = 0.0
        self.joined = 0
        self.invalid = 0
        self.duplicate_labels = 0
        self.duplicate_predictions = 0
        self._store_counts: Tuple[int, int, int] = (0, 0, 0)

    def encode(self, output: str, value: Any) -> Any:
        """What the store keeps of a predicted (or actual) value: the class string, the
        float, or ``None`` when it is not valid for the output."""
        col = self.outputs[output]
        if isinstance(col, CategoricalColumn):
            return value if type(value) is str else category_key(value)
        return number(value)

    def count_join(self, prediction: Dict[str, Any], label: Any, delay: float
                   ) -> Dict[str, Tuple[int, int]]:
        """Count one joined (prediction, label). ``prediction``: ``{output: encoded}``;
        ``label``: the value of the only output, or ``{output: value}``. Returns
        ``{output: (actual class, predicted class)}`` of the categorical outputs joined."""
        if isinstance(label, dict):
            pairs = [(o, v) for o, v in label.items()]
        elif len(self.outputs) == 1:
            pairs = [(next(iter(self.outputs)), label)]
        else:
            pairs = [(None, label)]
        classes: Dict[str, Tuple[int, int]] = {}
        with self.lock:
            self.joined += 1
            self.delay[np.searchsorted(DELAY_BUCKETS, max(delay, 0.0)):] += 1
            self.delay_sum += max(delay, 0.0)
            for output, value in pairs:
                col = self.outputs.get(output) if output is not None else None
                pred = prediction.get(output) if col is not None else None
                if col is None or pred is None:
                    self.invalid += 1
                    continue
                if isinstance(col, CategoricalColumn):
                    a, p = class_index(col, value), class_index(col, pred)
                    if a is None or p is None:
                        self.invalid += 1
                        continue
                    self.confusion[output][a, p] += 1
                    classes[output] = (a, p)
                else:
                    t = number(value)
                    if t is None:
                        self.invalid += 1
                        continue
                    err = abs(float(pred) - t)
                    self.errors[output][np.searchsorted(self.edges[output], err):] += 1
                    self.error_sums[output] += (err, err * err)
        return classes

    def families(self, base: Labels, store: Optional[LabelStore], model: str,
                 baseline: Any, now: Optional[float] = None) -> List[Family]:
        """The metric families of docs/metrics.md (outcomes), live and baseline. Purges the
        store first, so held labels past their time are counted even without traffic."""
        with self.lock:
            confusion = {k: v.copy() for k, v in self.confusion.items()}
            errors = {k: v.copy() for k, v in self.errors.items()}
            sums = {k: v.copy() for k, v in self.error_sums.items()}
            delay, delay_sum = self.delay.copy(), self.delay_sum
            joined, invalid = self.joined, self.invalid
            dup_l, dup_p = self.duplicate_labels, self.duplicate_predictions
        by_age, by_count, expired = self._store_counts
        pending: List[Sample] = []
        if store is not None:
            try:
                store.purge(time.time() if now is None else now)  # held labels expire now
                by_age, by_count, expired = self._store_counts = store.evicted(model)
                waiting, held = store.pending(model)
                pending = [("promdrift_quality_pending", base + (("kind", "prediction"),),
                            float(waiting)),
                           ("promdrift_quality_pending", base + (("kind", "label"),),
                            float(held))]
            except sqlite3.Error:  # a broken store must not break the scrape: no gauge
                pass
        conf: List[Sample] = []
        err: List[Sample] = []
        sq: List[Sample] = []
        for name, col in self.outputs.items():
            lab = base + (("output", name),)
            if name in confusion:
                cls = list(col.categories) + [OTHER]
                cm = confusion[name]
                conf += [("promdrift_quality_confusion_total",
                          lab + (("actual", a), ("predicted", p)), float(cm[i, j]))
                         for i, a in enumerate(cls) for j, p in enumerate(cls)]
            else:
                les = [format_le(e) for e in self.edges[name]] + ["+Inf"]
                err += _histogram("promdrift_quality_error", lab, les, errors[name].tolist(),
                                  sums[name][0])
                sq.append(("promdrift_quality_squared_error_sum_total", lab, float(sums[name][1])))
        fams: List[Family] = [
            ("promdrift_quality_confusion", "counter",
             "Labelled predictions of a categorical output by actual and predicted class.", conf),
            ("promdrift_quality_error", "histogram",
             "Absolute error |prediction - label| of a numeric output.", err),
            ("promdrift_quality_squared_error_sum", "counter",
             "Sum of squared errors (prediction - label)^2 of a numeric output.", sq),
            ("promdrift_quality_labels", "counter",
             "Labels joined to their prediction.", [("promdrift_quality_labels_total", base,
                                                     float(joined))]),
            ("promdrift_quality_labels_unmatched", "counter",
             "Labels not joined: no prediction with that id (reason unknown) or an unusable "
             "label or prediction value (reason invalid).",
             [("promdrift_quality_labels_unmatched_total", base + (("reason", "unknown"),),
               float(expired)),
              ("promdrift_quality_labels_unmatched_total", base + (("reason", "invalid"),),
               float(invalid))]),
            ("promdrift_quality_labels_duplicate", "counter",
             "Second and later labels for an inference id (ignored).",
             [("promdrift_quality_labels_duplicate_total", base, float(dup_l))]),
            ("promdrift_quality_predictions_duplicate", "counter",
             "Second and later predictions with an inference id already stored (ignored).",
             [("promdrift_quality_predictions_duplicate_total", base, float(dup_p))]),
            ("promdrift_quality_predictions_evicted", "counter",
             "Predictions dropped from the label store before their label arrived, by reason.",
             [("promdrift_quality_predictions_evicted_total", base + (("reason", "age"),),
               float(by_age)),
              ("promdrift_quality_predictions_evicted_total", base + (("reason", "count"),),
               float(by_count))]),
            ("promdrift_quality_pending", "gauge",
             "Rows of the label store waiting for their other half, by what they hold.",
             pending),
            ("promdrift_quality_label_delay_seconds", "histogram",
             "Seconds from a prediction to its label (0 for labels that arrived first).",
             _histogram("promdrift_quality_label_delay_seconds", base,
                        [format_le(b) for b in DELAY_BUCKETS] + ["+Inf"], delay.tolist(),
                        delay_sum)),
        ]
        ref = [("promdrift_baseline_quality", base + (("output", o), ("metric", m)), float(v))
               for o, values in sorted(baseline.quality.items()) for m, v in sorted(values.items())
               if m != "count" and o in self.outputs]
        ref += [("promdrift_baseline_quality_labels", base + (("output", o),),
                 float(values.get("count", 0)))
                for o, values in sorted(baseline.quality.items()) if o in self.outputs]
        fams.append(("promdrift_baseline_quality", "gauge",
                     "Validation-set quality of an output (metric: accuracy, macro_f1, mae, "
                     "rmse).", [s for s in ref if s[0] == "promdrift_baseline_quality"]))
        fams.append(("promdrift_baseline_quality_labels", "gauge",
                     "Validation-set (label, prediction) pairs behind promdrift_baseline_quality.",
                     [s for s in ref if s[0] == "promdrift_baseline_quality_labels"]))
        return [f for f in fams if f[3]]
