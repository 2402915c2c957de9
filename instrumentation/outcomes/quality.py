"""Model quality from delayed labels: a bounded SQLite store of predictions awaiting their
label (``LabelStore``), the join on inference id (``LabelTracker``, the plugin behind
``DriftMonitor.track_labels``), and the counters the join feeds (``QualityCounters``: a
confusion matrix per categorical output, absolute and squared error per numeric output,
label delay).

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

Metric names and the rules built on them are in docs/metrics.md ("Outcomes"); the
validation-set quality a baseline records (``Baseline.with_quality``) is computed by
``promdrift.instrumentation.training.references``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..binning import format_le
from ..counting.exposition import BlockPlan
from ..counting.plugins import Call, Plugin
from ..counting.store import Block, Labels
from ..training.columns import OTHER, CategoricalColumn, Column, NumericColumn
from ..values import category, finite_number

__all__ = ["LabelStore", "LabelTracker", "QualityCounters", "default_store_path",
           "DELAY_BUCKETS"]

#: Label delay histogram buckets in seconds: 1 s ... 7 days.
DELAY_BUCKETS: Tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
                                    604800.0)
#: Absolute error buckets of a numeric output, in units of the baseline output's std.
ERROR_BUCKETS_STD: Tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
#: Eviction reasons kept in the store's ``evictions`` table, in ``evicted()`` order.
_EVICTIONS = ("age", "count", "expired")


def default_store_path(model: str) -> str:
    """Where a monitor keeps its label store unless told otherwise. In multiprocess mode
    (``PROMDRIFT_MULTIPROC_DIR``) one file for the workers of the server's run,
    ``<dir>/labels-<model>-<run>.sqlite3``, so a label reaching any worker finds its
    prediction (removed with the run's counts files); otherwise
    ``$TMPDIR/promdrift/labels-<model>-<pid>.sqlite3``, one per process, removed by
    ``DriftMonitor.close``."""
    from ..counting.multiprocess import current_run, multiprocess_directory
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    shared = multiprocess_directory()
    if shared is not None:
        return os.path.join(shared, f"labels-{safe}-{current_run()}.sqlite3")
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

    ``path``: a file (created, in WAL mode) or ``":memory:"``; several models and processes
    may share a file (rows are keyed by model and inference id). What was dropped unjoined is
    counted in the file itself (table ``evictions``), so every process sharing it reports the
    same exact counts. ``max_age``: seconds a prediction
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
                CREATE TABLE IF NOT EXISTS evictions (
                    model TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (model, reason)
                );
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
               reason: str) -> None:
        """Add the never-joined rows matching ``where`` to the eviction counts: predictions
        to ``reason``, held labels to "expired"."""
        for model, held, n in db.execute(
                "SELECT model, prediction IS NULL, COUNT(*) FROM outcomes WHERE (" + where
                + ") AND (labelled_at IS NULL OR prediction IS NULL) GROUP BY 1, 2", args):
            db.execute("INSERT INTO evictions (model, reason, n) VALUES (?, ?, ?) "
                       "ON CONFLICT (model, reason) DO UPDATE SET n = n + excluded.n",
                       (model, "expired" if held else reason, n))

    def _purge_age(self, db: sqlite3.Connection, now: float) -> None:
        where = "predicted_at < ? OR (prediction IS NULL AND labelled_at < ?)"
        args = (now - self.max_age, now - self.hold)
        self._count(db, where, args, "age")
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
            self._count(db, "seq <= ?", args, "count")
            db.execute("DELETE FROM outcomes WHERE seq <= ?", args)

    # --------------------------------------------------------------------------- reads
    def evicted(self, model: str) -> Tuple[int, int, int]:
        """What the store dropped of a model without a join, since the file was created:
        ``(predictions by age, predictions by count, held labels expired)``."""
        with self._lock:
            got = dict(self._db.execute("SELECT reason, n FROM evictions WHERE model = ?",
                                        (model,)).fetchall())
        return tuple(int(got.get(r, 0)) for r in _EVICTIONS)  # type: ignore[return-value]

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


# ------------------------------------------------------------------------------ counters
def error_edges(col: NumericColumn) -> Tuple[float, ...]:
    """Absolute error buckets of a numeric output: ``ERROR_BUCKETS_STD`` times the baseline
    output's standard deviation (1 when it is 0), 3 significant digits."""
    scale = col.std if col.std > 0 else 1.0
    edges = sorted({float(f"{m * scale:.3g}") for m in ERROR_BUCKETS_STD})
    return tuple(edges)


class QualityCounters:
    """The counters the label join feeds, for every prediction output of a baseline, in a
    block of counter slots (``block``) kept in ``store``.

        >>> from promdrift.instrumentation import Baseline
        >>> b = Baseline.fit({"x": [1, 2, 3, 4], "y": ["a", "b", "a", "b"]}, predictions="y")
        >>> q = QualityCounters(b)
        >>> q.count_join({"y": "a"}, "b", delay=30.0)   # (actual, predicted) class indices
        {'y': (1, 0)}
        >>> q.confusion("y").tolist()   # rows actual a, b, __other__; columns predicted
        [[0, 0, 0], [1, 0, 0], [0, 0, 0]]

    ``labels``: the labels every sample starts with (default ``model``); ``store``: builds
    the store of the block (``CounterStore`` by default; a monitor passes its own kind).
    ``coerce``: a string spelling a number is that number for a numeric output (the value
    rules, ``values.number``; a monitor passes its ``coerce_numbers``).
    """

    def __init__(self, baseline: Any, labels: Optional[Labels] = None,
                 store: Optional[Callable[[Block], Any]] = None, coerce: bool = True):
        from ..counting.store import CounterStore
        self.coerce = coerce
        self.outputs: Dict[str, Column] = {c.name: c for c in baseline.predictions}
        if not self.outputs:
            raise ValueError(f"model {baseline.model!r}: the baseline has no prediction "
                             f"outputs, so labels have nothing to be compared with")
        base = (("model", baseline.model),) if labels is None else tuple(labels)
        self.block = b = Block("quality", baseline.model, baseline.digest, base)
        self._confusion: Dict[str, int] = {}
        self.edges: Dict[str, Tuple[float, ...]] = {}
        self._errors: Dict[str, Tuple[int, int, int]] = {}  # first bucket, abs sum, sq sum
        for name, col in self.outputs.items():
            lab = (("output", name),)
            if isinstance(col, CategoricalColumn):
                cls = list(col.categories) + [OTHER]
                k = len(cls)
                first = self._confusion[name] = b.slots(k * k)
                for i, actual in enumerate(cls):
                    for j, predicted in enumerate(cls):
                        b.expose("promdrift_quality_confusion", "_total",
                                 lab + (("actual", actual), ("predicted", predicted)),
                                 first + i * k + j)
            else:
                self.edges[name] = error_edges(col)
                les = [format_le(e) for e in self.edges[name]] + ["+Inf"]
                first, abs_sum = b.histogram("promdrift_quality_error", les, lab)
                sq = b.counter("promdrift_quality_squared_error_sum", "_total", lab,
                               is_float=True)
                self._errors[name] = (first, abs_sum, sq)
        self.joined = b.counter("promdrift_quality_labels")
        self.invalid = b.counter("promdrift_quality_labels_unmatched", "_total",
                                 (("reason", "invalid"),))
        self.duplicate_labels = b.counter("promdrift_quality_labels_duplicate")
        self.duplicate_predictions = b.counter("promdrift_quality_predictions_duplicate")
        self._delay, self._delay_sum = b.histogram(
            "promdrift_quality_label_delay_seconds",
            [format_le(x) for x in DELAY_BUCKETS] + ["+Inf"])
        for o, values in sorted(baseline.quality.items()):
            if o in self.outputs:
                for m, v in sorted(values.items()):
                    if m != "count":
                        b.constant("promdrift_baseline_quality", "",
                                   (("output", o), ("metric", m)), v)
        for o, values in sorted(baseline.quality.items()):
            if o in self.outputs:
                b.constant("promdrift_baseline_quality_labels", "", (("output", o),),
                           values.get("count", 0))
        self.plan = BlockPlan(b)
        self.store = (store or CounterStore)(b)

    def confusion(self, output: str) -> np.ndarray:
        """The confusion matrix of a categorical output (rows actual, columns predicted)."""
        k = len(self.outputs[output].categories) + 1
        first = self._confusion[output]
        return self.store.snapshot()[first:first + k * k].reshape(k, k).astype(np.int64)

    def encode(self, output: str, value: Any) -> Any:
        """What the store keeps of a predicted (or actual) value: the class string, the
        float, or ``None`` when it is not valid for the output."""
        if isinstance(self.outputs[output], CategoricalColumn):
            return category(value)[1]
        return finite_number(value, self.coerce)

    def count(self, slot: int) -> None:
        """+1 at one of the block's counters (``invalid``, ``duplicate_labels`` ...)."""
        self.store.add((slot,))

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
        delay = max(delay, 0.0)
        slots = [self.joined, self._delay_sum]
        amounts = [1.0, delay]
        first = self._delay
        b = int(np.searchsorted(DELAY_BUCKETS, delay))
        slots += range(first + b, first + len(DELAY_BUCKETS) + 1)
        amounts += [1.0] * (len(DELAY_BUCKETS) + 1 - b)
        classes: Dict[str, Tuple[int, int]] = {}
        for output, value in pairs:
            col = self.outputs.get(output) if output is not None else None
            pred = prediction.get(output) if col is not None else None
            if col is None or pred is None:
                slots.append(self.invalid)
                amounts.append(1.0)
                continue
            if isinstance(col, CategoricalColumn):
                a, p = col.index(value), col.index(pred)
                if a is None or p is None:
                    slots.append(self.invalid)
                    amounts.append(1.0)
                    continue
                k = len(col.categories) + 1
                slots.append(self._confusion[output] + a * k + p)
                amounts.append(1.0)
                classes[output] = (a, p)
            else:
                t = finite_number(value, self.coerce)
                if t is None:
                    slots.append(self.invalid)
                    amounts.append(1.0)
                    continue
                err = abs(float(pred) - t)
                first, abs_sum, sq = self._errors[output]
                n = len(self.edges[output]) + 1
                e = int(np.searchsorted(self.edges[output], err))
                slots += [*range(first + e, first + n), abs_sum, sq]
                amounts += [1.0] * (n - e) + [err, err * err]
        self.store.add(slots, amounts)
        return classes


# ------------------------------------------------------------------------------ the plugin
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
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class LabelTracker(Plugin):
    """Keeps the predictions observed with an ``inference_id`` in a :class:`LabelStore`
    until their label arrives, and counts quality on the join (``DriftMonitor.track_labels``
    builds one).

        >>> from promdrift.instrumentation import Baseline, DriftMonitor
        >>> m = DriftMonitor(Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y"),
        ...                  registry=None)
        >>> labels = m.use(LabelTracker(":memory:"))
        >>> m.observe({"x": 1.0}, "a", inference_id="r1")
        >>> labels.record("r1", "b"), labels.record("r2", "a")
        ('matched', 'held')
        >>> m.close()

    ``store``: a :class:`LabelStore`, or the path of its SQLite file (``":memory:"`` for
    none) with ``max_age`` / ``max_rows`` / ``hold`` as keywords; by default
    :func:`default_store_path`. ``observe`` queues predictions and writes up to
    ``flush_rows`` of them (or ``flush_seconds`` worth) in one transaction, in a worker
    thread when it runs in an event loop's thread; a background thread writes what waited
    for two ``flush_seconds`` when no request came to do it.
    """

    name = "labels"

    def __init__(self, store: Any = None, clock: Callable[[], float] = time.time,
                 **limits: Any):
        if isinstance(store, LabelStore) and limits:
            raise ValueError("give the limits to the LabelStore, not with it")
        self._store_arg = store
        self._limits = limits
        self.clock = clock
        self.flush_rows = 256
        self.flush_seconds = 1.0
        self._queue: List[Tuple[str, str, float]] = []
        self._queue_lock = threading.Lock()
        self.store: Optional[LabelStore] = None
        self._own_store: Optional[str] = None
        self._evicted: Tuple[int, int, int] = (0, 0, 0)
        self._timer_pid: Optional[int] = None
        self._stopped = threading.Event()

    def bind(self, monitor: Any) -> None:
        super().bind(monitor)
        self.model = monitor.model
        self.labels = monitor.plan_labels
        self.counters = QualityCounters(monitor.baseline, self.labels, monitor.store.sibling,
                                        coerce=monitor.coerce_numbers)
        store = self._store_arg
        if not isinstance(store, LabelStore):
            path = store
            if path is None:
                path = default_store_path(self.model)
                from ..counting.multiprocess import multiprocess_directory
                if multiprocess_directory() is None:  # per process: ours alone
                    if os.path.exists(path):
                        os.unlink(path)
                    self._own_store = path
            store = LabelStore(os.fspath(path), **self._limits)
        self.store = store

    # ------------------------------------------------------------------ request path
    def observe(self, call: Call) -> None:
        if call.prediction is None or call.inference_id is None:
            return
        q = self.counters
        others = [p for p in self.monitor.plugins if p is not self]
        now = self.clock()
        items = []
        for i, (ident, outs) in enumerate(zip(call.ids, call.outputs)):
            payload: Dict[str, Any] = {"p": {k: q.encode(k, v) for k, v in outs.items()}}
            memory = {p.name: m for p in others
                      for m in (p.remember(call, i),) if m is not None}
            if memory:
                payload["m"] = memory
            items.append((_ident(ident), json.dumps(payload), now))
        with self._queue_lock:
            self._queue.extend(items)
            due = (len(self._queue) >= self.flush_rows
                   or not now - self._queue[0][2] < self.flush_seconds)
        if self._timer_pid != os.getpid():
            self._start_timer()
        if due:
            loop = asyncio._get_running_loop()
            if loop is None:
                self.flush()
            else:  # an event loop's thread never waits on SQLite
                loop.run_in_executor(None, self._flush_counted)

    def _flush_counted(self) -> None:
        try:
            self.flush()
        except Exception:
            self.monitor._count_error()

    def _start_timer(self) -> None:
        """A thread that writes predictions queued for two ``flush_seconds`` when no
        observe call came to do it, so that labels reaching another worker find them."""
        with self._queue_lock:
            if self._timer_pid == os.getpid():
                return
            self._timer_pid = os.getpid()
        threading.Thread(target=self._timer, name="promdrift-labels", daemon=True).start()

    def _timer(self) -> None:
        while not self._stopped.wait(self.flush_seconds):
            with self._queue_lock:
                stale = bool(self._queue) and \
                    self.clock() - self._queue[0][2] >= 2 * self.flush_seconds
            if stale:
                self._flush_counted()

    def flush(self) -> None:
        """Write the predictions queued by ``observe`` to the label store (one transaction
        for many); ``record``, a scrape and ``close`` flush first. A label that still
        overtakes its prediction is held, then joined."""
        if self.store is None:
            return
        with self._queue_lock:
            items, self._queue = self._queue, []
        if not items:
            return
        for _, payload, label, pred_at, label_at in self.store.put_predictions(
                self.model, items, self.clock()):
            if payload is None:
                self.counters.count(self.counters.duplicate_predictions)
            else:
                self._join(payload, json.loads(label), 0.0)

    def record(self, inference_id: Any, label: Any) -> str:
        """See ``DriftMonitor.record_label``."""
        try:
            try:
                ident = _ident(inference_id)
                text = json.dumps(_jsonable(label))
            except (ValueError, TypeError):
                self.counters.count(self.counters.invalid)
                return "invalid"
            self.flush()
            result = self.store.put_label(self.model, ident, text, self.clock())
            if result[0] == "matched":
                self._join(result[1], json.loads(text), self.clock() - result[2])
            elif result[0] == "duplicate":
                self.counters.count(self.counters.duplicate_labels)
            return result[0]
        except Exception:
            self.monitor._count_error()
            return "error"

    def _join(self, payload: str, label: Any, delay: float) -> None:
        p = json.loads(payload)
        classes = self.counters.count_join(p.get("p", {}), label, delay)
        memory = p.get("m", {})
        if classes and memory:
            for plugin in self.monitor.plugins:
                if plugin.name in memory:
                    plugin.joined(memory[plugin.name], classes)

    # ------------------------------------------------------------------ scrape
    def exposed(self) -> List[Tuple[Any, Any]]:
        return [(self.counters.plan, self.counters.store)]

    def scrape_samples(self) -> List[Tuple[str, str, Labels, float]]:
        """What the label store holds and dropped (read from its file at scrape, so that
        processes sharing it report the same exact values). Purges first, so held labels
        past their time are counted even without traffic."""
        base = self.labels
        pending: List[Tuple[str, str, Labels, float]] = []
        try:
            self.store.purge(self.clock())
            self._evicted = self.store.evicted(self.model)
            waiting, held = self.store.pending(self.model)
            pending = [("promdrift_quality_pending", "promdrift_quality_pending",
                        base + (("kind", "prediction"),), float(waiting)),
                       ("promdrift_quality_pending", "promdrift_quality_pending",
                        base + (("kind", "label"),), float(held))]
        except sqlite3.Error:  # a broken store must not break the scrape: the last counts
            pass
        by_age, by_count, expired = self._evicted
        return [
            ("promdrift_quality_labels_unmatched", "promdrift_quality_labels_unmatched_total",
             base + (("reason", "unknown"),), float(expired)),
            ("promdrift_quality_predictions_evicted",
             "promdrift_quality_predictions_evicted_total", base + (("reason", "age"),),
             float(by_age)),
            ("promdrift_quality_predictions_evicted",
             "promdrift_quality_predictions_evicted_total", base + (("reason", "count"),),
             float(by_count)),
        ] + pending

    def close(self) -> None:
        self._stopped.set()
        if self.store is None:
            return
        try:
            self.flush()
        except Exception:
            self.monitor._count_error()
        if self._own_store is not None:
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self._own_store + suffix)
                except OSError:
                    pass
