"""Where the live counts of a model live: flat float64 numpy arrays and their layouts.

Every counter of a model's drift families (histogram buckets, sums, categories, invalid
reasons, coerced values, inferences, requests, errors) is one slot of a single array, so observing a row is a handful
of vectorised numpy operations whatever the number of features, and a multi-process store only
has to share one array per process::

    >>> from promdrift.instrumentation import Baseline
    >>> layout = Layout(Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0]}, bins=2))
    >>> store = CounterStore(layout)
    >>> store.counts.shape  # inferences, errors, requests, 4 request reasons, 2 buckets, 1 sum,
    ...                     # 5 invalid reasons, 1 coerced
    (16,)

Everything else a model counts (label quality, bias, attributions, data capture, a server's
own request counters) is a :class:`Block`: named slots with the samples they are exposed as,
kept in a ``CounterStore`` of the same kind (in memory, or one file per process merged at
scrape: ``promdrift.instrumentation.counting.multiprocess``)::

    >>> block = Block("demo", "m")
    >>> hits = block.counter("promdrift_capture_rows", "_total")
    >>> counts = CounterStore(block)
    >>> counts.add([hits, hits])
    >>> float(counts.snapshot()[hits])
    2.0
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..training.columns import CategoricalColumn, Column, NumericColumn
from ..values import INF, MISSING, NAN, NULL, REASONS, REQUEST_REASONS, WRONG_TYPE
from .derived import Derived

__all__ = ["Layout", "Block", "CounterStore", "REASONS", "FEATURE", "PREDICTION", "Labels",
           "Series", "cumulative_counts", "DRAIN_INTERVAL"]

Labels = Tuple[Tuple[str, str], ...]
#: One exposed sample of a block: (family, sample name suffix, labels, slot, is_float).
Series = Tuple[str, str, Labels, int, bool]

FEATURE = "feature"
PREDICTION = "prediction"

#: Seconds at most between a deferred row (``CounterStore.defer``) and its counting when no
#: scrape asks for the counts earlier.
DRAIN_INTERVAL = 0.1
#: Deferred rows at most: the request that queues one more bins them all itself.
MAX_DEFERRED = 4096
_CHUNK = 255  # rows compared at once in a batch: a uint8 count per chunk cannot overflow


def cumulative_counts(x: np.ndarray, edges_t: np.ndarray) -> np.ndarray:
    """``(width, columns)`` counts of ``x[:, j] <= edges_t[b, j]`` over the rows of ``x``.

    Exact (plain comparisons; NaN is counted nowhere) and branch-free: chunks of rows are
    compared against every edge at once and summed as bytes, about 3x faster than a
    ``searchsorted`` per column for the usual 20 buckets.
    """
    width, cols = edges_t.shape
    out = np.zeros((width, cols), dtype=np.int64)
    buf = np.empty((min(_CHUNK, len(x)), width, cols), dtype=bool)
    for s in range(0, len(x), _CHUNK):
        chunk = x[s:s + _CHUNK]
        below = buf[:len(chunk)]
        np.less_equal(chunk[:, None, :], edges_t[None], out=below)
        out += np.add.reduce(below.view(np.uint8), axis=0, dtype=np.uint8)
    return out


class Layout:
    """Slot positions of every counter of a baseline in one flat array.

    Columns are the baseline's features, its derived features (``Baseline.derived``: numeric,
    role ``feature``) and its prediction outputs, split into a numeric block (**cumulative** bucket counts, as Prometheus exposes them, padded to a common
    width with ``+Inf`` edges and stored bucket-major, ``(width, columns)``, so that one
    broadcast compare of a row against ``edges_t`` is the row's whole increment; then one sum
    per column) and a
    categorical block (top-K categories plus ``__other__`` per column). Invalid counters
    follow: one row of ``len(REASONS)`` slots per column, numeric columns first; then one
    slot per numeric column counting the values read from a string (``coerced_slot``). The
    numeric block holds the user's numeric features, then the derived ones
    (:attr:`derived`, from column ``derived.start``), then the numeric outputs. Before
    everything: the inferences (rows), the instrumentation errors, the requests (``observe``
    calls and requests refused before one) and the requests refused by
    ``REQUEST_REASONS`` (from :attr:`REQUEST_INVALID`).
    """

    INFERENCES = 0
    ERRORS = 1
    REQUESTS = 2
    #: the first of the ``len(REQUEST_REASONS)`` slots of refused requests
    REQUEST_INVALID = 3

    def __init__(self, baseline: Any):
        self.baseline = baseline
        derived = tuple(getattr(baseline, "derived", ()))
        cols: List[Tuple[str, Column]] = ([(FEATURE, c) for c in baseline.features]
                                          + [(FEATURE, c) for c in derived]
                                          + [(PREDICTION, c) for c in baseline.predictions])
        self.numeric: List[Tuple[str, NumericColumn]] = [
            (r, c) for r, c in cols if isinstance(c, NumericColumn)]
        self.categorical: List[Tuple[str, CategoricalColumn]] = [
            (r, c) for r, c in cols if isinstance(c, CategoricalColumn)]
        fn = len(self.numeric)
        width = max((len(c.edges) for _, c in self.numeric), default=0)
        self.width = width + 1  # bucket slots per numeric column, +Inf included
        #: (fn, width + 1) edges padded with +inf, the last column always +inf: row ``i`` of
        #: the cumulative buckets grows by ``x[i] <= edges[i]`` for a finite value ``x[i]``.
        self.edges = np.full((fn, self.width), np.inf)
        for i, (_, c) in enumerate(self.numeric):
            self.edges[i, :len(c.edges)] = c.edges
        self.edges_t = np.ascontiguousarray(self.edges.T)
        self.n_numeric_features = sum(1 for r, _ in self.numeric if r == FEATURE)
        #: the derived columns (``None`` without): where they sit, how they are computed
        self.derived: Optional[Derived] = None
        if derived:
            user = [c.name for c in baseline.features if isinstance(c, NumericColumn)]
            self.derived = Derived(baseline, user)
        self.n_edges = np.array([len(c.edges) for _, c in self.numeric], dtype=np.intp)

        pos = self.REQUEST_INVALID + len(REQUEST_REASONS)
        self.bucket_base = pos
        pos += fn * self.width
        self.sum_base = pos
        pos += fn
        self.cat_offsets = []
        for _, c in self.categorical:
            self.cat_offsets.append(pos)
            pos += len(c.categories) + 1
        #: category key -> index, per categorical column (``CategoricalColumn.lookup``: it
        #: may hold a second spelling of a category), and the index of ``__other__``
        self.cat_index: List[Dict[str, int]] = [c.lookup for _, c in self.categorical]
        self.cat_other: List[int] = [len(c.categories) for _, c in self.categorical]
        self.invalid_base = pos
        pos += (fn + len(self.categorical)) * len(REASONS)
        #: one slot per numeric column: values sent as a string and read as a number
        self.coerced_base = pos
        pos += fn
        self.size = pos
        #: what tells this layout's counts files apart from other models' and baselines'
        self.identity = f"{baseline.model}\0{baseline.digest}\0{self.size}"

    def views(self, counts: np.ndarray) -> Dict[str, np.ndarray]:
        """Named views of a counts array of this layout (see ``CounterStore``)."""
        fn = len(self.numeric)
        nf = self.n_numeric_features
        buckets_t = counts[self.bucket_base:self.bucket_base + fn * self.width].reshape(
            self.width, fn)
        sums = counts[self.sum_base:self.sum_base + fn]
        return {"buckets_t": buckets_t, "sums": sums, "feat_buckets_t": buckets_t[:, :nf],
                "feat_sums": sums[:nf],
                "row_buffer": np.empty((self.width, nf), dtype=np.float64),
                "row_buffer_all": np.empty((self.width, fn), dtype=np.float64)}

    def derived_invalid(self, groups: Sequence[Tuple[int, int, np.ndarray]]
                        ) -> Optional[np.ndarray]:
        """Increments of the invalid counters of the derived columns from
        ``Derived.batch``'s per-group reasons (``None`` when every row was valid)."""
        out = None
        nr = len(REASONS)
        for first, width, reasons in groups:
            bad = reasons[reasons >= 0]
            if not bad.size:
                continue
            if out is None:
                out = np.zeros(self.size, dtype=np.float64)
            per = np.bincount(bad, minlength=nr).astype(np.float64)
            base = self.invalid_base + first * nr
            out[base:base + width * nr] += np.tile(per, width)
        return out

    def bucket_slot(self, column: int, bucket: int) -> int:
        """Slot of the cumulative count of bucket ``bucket`` of numeric column ``column``."""
        return self.bucket_base + bucket * len(self.numeric) + column

    def invalid_slot(self, column: int, reason: int) -> int:
        """Slot of an invalid counter; ``column`` counts numeric columns first."""
        return self.invalid_base + column * len(REASONS) + reason

    def coerced_slot(self, column: int) -> int:
        """Slot of the count of values of numeric column ``column`` read from a string."""
        return self.coerced_base + column

    def request_slot(self, reason: str) -> int:
        """Slot of the requests refused for ``reason`` (one of ``REQUEST_REASONS``)."""
        return self.REQUEST_INVALID + REQUEST_REASONS.index(reason)

    def numeric_role_names(self, role: str) -> List[str]:
        return [c.name for r, c in self.numeric if r == role]

    def categorical_role_names(self, role: str) -> List[str]:
        return [c.name for r, c in self.categorical if r == role]


class Block:
    """Counter slots of one model outside its drift layout, and the samples they are exposed
    as: the outcome monitors', data capture's, a server's own.

        >>> b = Block("quality", "m", labels=(("model", "m"),))
        >>> first = b.counter("promdrift_quality_labels", "_total")
        >>> b.expose("promdrift_quality_labels_duplicate", "_total", (), b.slots(1))
        >>> b.size, [(s[0], s[2], s[3]) for s in b.series]
        (2, [('promdrift_quality_labels', (('model', 'm'),), 0), \
('promdrift_quality_labels_duplicate', (('model', 'm'),), 1)])

    ``name`` tells the block apart from the model's other blocks, ``model`` (and ``digest``,
    the baseline's) from other models' (the file names of multiprocess counts); ``labels``
    start every sample's labels. Declare the slots with :meth:`slots` / :meth:`counter` and
    their samples with :meth:`expose` (a slot may back several samples: a histogram's
    ``_count`` is its ``+Inf`` bucket); constant samples (reference values) with
    :meth:`constant`. Then keep the counts in a ``CounterStore(block)``.
    """

    def __init__(self, name: str, model: str, digest: str = "", labels: Labels = ()):
        self.name = name
        self.model = model
        self.digest = digest
        self.labels = tuple(labels)
        self.size = 0
        self.series: List[Series] = []
        #: constant samples: (family, suffix, labels, value)
        self.constants: List[Tuple[str, str, Labels, float]] = []

    @property
    def identity(self) -> str:
        return f"{self.model}\0{self.digest}\0{self.name}\0{self.size}"

    def slots(self, n: int) -> int:
        """Reserve ``n`` consecutive slots; returns the first."""
        first = self.size
        self.size += int(n)
        return first

    def expose(self, family: str, suffix: str, labels: Labels, slot: int,
               is_float: bool = False) -> None:
        """Expose ``slot`` as the sample ``family + suffix`` with the block's labels plus
        ``labels`` (``is_float``: a sum, formatted as a float)."""
        self.series.append((family, suffix, self.labels + tuple(labels), int(slot), is_float))

    def counter(self, family: str, suffix: str = "_total", labels: Labels = (),
                is_float: bool = False) -> int:
        """One new slot exposed as one sample; returns the slot."""
        slot = self.slots(1)
        self.expose(family, suffix, labels, slot, is_float)
        return slot

    def histogram(self, family: str, les: Sequence[str], labels: Labels = ()) -> Tuple[int, int]:
        """Cumulative buckets (one per ``le`` string, ``+Inf`` last; ``_count`` is the last)
        and a ``_sum``; returns ``(first bucket slot, sum slot)``."""
        first = self.slots(len(les))
        for i, le in enumerate(les):
            self.expose(family, "_bucket", tuple(labels) + (("le", le),), first + i)
        self.expose(family, "_count", labels, first + len(les) - 1)
        return first, self.counter(family, "_sum", labels, is_float=True)

    def constant(self, family: str, suffix: str, labels: Labels, value: float) -> None:
        """A sample whose value never changes (a reference value of the baseline)."""
        self.constants.append((family, suffix, self.labels + tuple(labels), float(value)))

    def views(self, counts: np.ndarray) -> Dict[str, np.ndarray]:
        return {}


class CounterStore:
    """Live counts of a :class:`Layout` (one model's drift families) or a :class:`Block` in
    process memory, updated under a lock.

    ``add_*`` methods take precomputed slot increments; ``snapshot`` returns a consistent
    copy for exposition.
    """

    def __init__(self, layout: Any):
        self.layout = layout
        self.lock = threading.Lock()
        self.counts = self._allocate(layout.size)
        #: rows handed to :meth:`defer`, not yet counted, by row width
        self.deferred: Dict[int, "collections.deque[Tuple[float, ...]]"] = {}
        self._drain_lock = threading.Lock()
        self._drained_by: Optional[int] = None  # the process whose drainer counts them
        self._views()

    def _allocate(self, size: int) -> np.ndarray:
        return np.zeros(size, dtype=np.float64)

    def _views(self) -> None:
        """Named views of ``counts`` (the drift layout's buckets, sums, and a scratch row),
        rebuilt whenever ``counts`` is replaced."""
        for name, view in self.layout.views(self.counts).items():
            setattr(self, name, view)

    def sibling(self, layout: Any) -> "CounterStore":
        """A store of the same kind (and place) for another layout or block."""
        return CounterStore(layout)

    def add(self, slots: Sequence[int], amounts: Optional[Sequence[float]] = None) -> None:
        """+1 (or ``amounts[i]``) at each of ``slots`` (which may repeat)."""
        with self.lock:
            counts = self.counts
            if amounts is None:
                for s in slots:
                    counts[s] += 1.0
            else:
                for s, a in zip(slots, amounts):
                    counts[s] += a

    def add_row(self, below_t: np.ndarray, values: np.ndarray, other_slots: Sequence[int]) -> None:
        """One row of one request: ``below_t`` (bool, ``(width, k)``: the first ``k``
        numeric columns) added to the cumulative buckets, ``values`` to the sums (NaN-free),
        +1 at each of ``other_slots`` (distinct)."""
        k = below_t.shape[1]
        with self.lock:
            if k:
                np.add(self.buckets_t[:, :k], below_t, out=self.buckets_t[:, :k])
                np.add(self.sums[:k], values, out=self.sums[:k])
            if other_slots:
                self.counts[other_slots] += 1.0
            self.counts[Layout.INFERENCES] += 1.0
            self.counts[Layout.REQUESTS] += 1.0

    def defer(self, values: Tuple[float, ...], vector: Any = None) -> None:
        """Count one row of finite numbers (the first ``len(values)`` numeric columns of a
        drift layout), one request, a little later, binned in bulk with the rows deferred with it: by
        :meth:`drain`, which :meth:`snapshot` calls first (a scrape always sees every row of
        its process), or by a background thread within :data:`DRAIN_INTERVAL` seconds (so
        scrapes of other processes see it too). ``vector``: the row's embedding (a tuple or
        a float array of finite numbers, not changed afterwards) for a layout with one."""
        key = len(values) if vector is None else (len(values), "vector")
        q = self.deferred.get(key)
        if q is None:
            q = self.deferred.setdefault(key, collections.deque())
        q.append(values if vector is None else (values, vector))  # atomic: no lock
        if len(q) >= MAX_DEFERRED:
            self.drain()
        elif self._drained_by != _pid:
            _register(self)

    def drain(self) -> None:
        """Count the deferred rows now (a few numpy calls for all of them). Drains run one
        at a time, each to its end, so a snapshot never misses rows another thread took."""
        with self._drain_lock:  # appends never wait for it
            for key, q in list(self.deferred.items()):
                n = len(q)
                if not n:
                    continue
                rows = [q.popleft() for _ in range(n)]  # later appends stay queued
                vectors = None
                if type(key) is tuple:  # rows with their embedding
                    k = key[0]
                    vectors = np.array([v for _, v in rows], dtype=np.float64)
                    rows = [r for r, _ in rows]
                else:
                    k = key
                x = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64,
                                count=n * k).reshape(n, k)
                invalid = None
                derived = self.layout.derived
                if derived is not None:  # the derived columns, in bulk
                    x, groups = derived.complete(x, vectors)
                    invalid = self.layout.derived_invalid(groups)
                    if invalid is not None:
                        x = np.where(np.isfinite(x), x, np.nan)
                width = x.shape[1]
                below = cumulative_counts(x, self.layout.edges_t[:, :width])
                total = np.nansum(x, 0) if invalid is not None else x.sum(0)
                with self.lock:
                    self.buckets_t[:, :width] += below
                    self.sums[:width] += total
                    if invalid is not None:
                        self.counts += invalid
                    self.counts[Layout.INFERENCES] += n
                    self.counts[Layout.REQUESTS] += n

    def add_batch(self, increments: np.ndarray, rows: int) -> None:
        """A dense increment vector for the whole array (buckets already cumulative): one
        request of ``rows`` rows."""
        with self.lock:
            self.counts += increments
            self.counts[Layout.INFERENCES] += rows
            self.counts[Layout.REQUESTS] += 1.0

    def add_request(self, invalid: Optional[int] = None) -> None:
        """One request without rows: refused (``invalid``: its slot, ``Layout.request_slot``)
        or empty."""
        with self.lock:
            self.counts[Layout.REQUESTS] += 1.0
            if invalid is not None:
                self.counts[invalid] += 1.0

    def add_error(self) -> None:
        with self.lock:
            self.counts[Layout.ERRORS] += 1.0

    def snapshot(self) -> np.ndarray:
        """A copy of all counts (deferred rows counted first), taken under the lock."""
        if self.deferred:  # a drift layout's store: wait for any drain under way
            self.drain()
        with self.lock:
            return self.counts.copy()


_deferring: "weakref.WeakSet[CounterStore]" = weakref.WeakSet()
_pid = os.getpid()
_drainer_pid: Optional[int] = None
_drainer_lock = threading.Lock()


def _register(store: CounterStore) -> None:
    """Have this process's background thread count ``store``'s deferred rows (one thread
    per process; after a fork the child starts its own)."""
    global _drainer_pid
    with _drainer_lock:
        _deferring.add(store)
        store._drained_by = _pid
        if _drainer_pid == _pid:
            return
        _drainer_pid = _pid
    threading.Thread(target=_drain_forever, name="promdrift-drain", daemon=True).start()


def _drain_forever() -> None:
    while True:
        time.sleep(DRAIN_INTERVAL)
        drain_all()


@atexit.register
def drain_all() -> None:
    """Count the deferred rows of every store of this process (at exit too)."""
    for store in list(_deferring):
        try:
            store.drain()
        except Exception:  # a store whose file vanished: its rows cannot be counted
            pass


def _after_fork() -> None:
    """Deferred rows belong to the parent, which counts them: a child starts empty."""
    global _pid
    _pid = os.getpid()
    for store in list(_deferring):
        store.deferred = {}
        store._drain_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
