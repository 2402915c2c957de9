"""Where the live counts of one model live: one flat float64 numpy array and its layout.

Every counter of a model (histogram buckets, sums, categories, invalid reasons, inferences,
errors) is one slot of a single array, so observing a row is a handful of vectorised numpy
operations whatever the number of features, and a multi-process store only has to share one
array per process::

    >>> from promdrift.instrumentation import Baseline
    >>> layout = Layout(Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0]}, bins=2))
    >>> store = CounterStore(layout)
    >>> store.counts.shape
    (11,)
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .baseline import Baseline, CategoricalColumn, Column, NumericColumn

__all__ = ["Layout", "CounterStore", "REASONS", "FEATURE", "PREDICTION"]

#: Why a value was not binned, in the order of the invalid-counter slots.
REASONS: Tuple[str, ...] = ("missing", "null", "nan", "inf", "wrong_type")
MISSING, NULL, NAN, INF, WRONG_TYPE = range(len(REASONS))

FEATURE = "feature"
PREDICTION = "prediction"


class Layout:
    """Slot positions of every counter of a baseline in one flat array.

    Columns are the baseline's features followed by its prediction outputs, split into a
    numeric block (**cumulative** bucket counts, as Prometheus exposes them, padded to a common
    width with ``+Inf`` edges and stored bucket-major, ``(width, columns)``, so that one
    broadcast compare of a row against ``edges_t`` is the row's whole increment; then one sum
    per column) and a
    categorical block (top-K categories plus ``__other__`` per column). Invalid counters come
    last: one row of ``len(REASONS)`` slots per column, numeric columns first.
    """

    INFERENCES = 0
    ERRORS = 1

    def __init__(self, baseline: Baseline):
        self.baseline = baseline
        cols: List[Tuple[str, Column]] = ([(FEATURE, c) for c in baseline.features]
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
        self.n_edges = np.array([len(c.edges) for _, c in self.numeric], dtype=np.intp)

        pos = 2
        self.bucket_base = pos
        pos += fn * self.width
        self.sum_base = pos
        pos += fn
        self.cat_offsets = []
        for _, c in self.categorical:
            self.cat_offsets.append(pos)
            pos += len(c.categories) + 1
        self.cat_index: List[Dict[str, int]] = [
            {k: i for i, k in enumerate(c.categories)} for _, c in self.categorical]
        self.invalid_base = pos
        pos += (fn + len(self.categorical)) * len(REASONS)
        self.size = pos

    def bucket_slot(self, column: int, bucket: int) -> int:
        """Slot of the cumulative count of bucket ``bucket`` of numeric column ``column``."""
        return self.bucket_base + bucket * len(self.numeric) + column

    def invalid_slot(self, column: int, reason: int) -> int:
        """Slot of an invalid counter; ``column`` counts numeric columns first."""
        return self.invalid_base + column * len(REASONS) + reason

    def numeric_role_names(self, role: str) -> List[str]:
        return [c.name for r, c in self.numeric if r == role]

    def categorical_role_names(self, role: str) -> List[str]:
        return [c.name for r, c in self.categorical if r == role]


class CounterStore:
    """Live counts of one model in process memory, updated under a lock.

    ``add_*`` methods take precomputed slot increments; ``snapshot`` returns a consistent
    copy for exposition.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.lock = threading.Lock()
        self.counts = self._allocate(layout.size)
        self._views()

    def _allocate(self, size: int) -> np.ndarray:
        return np.zeros(size, dtype=np.float64)

    def _views(self) -> None:
        lay = self.layout
        fn = len(lay.numeric)
        nf = lay.n_numeric_features
        #: (width, columns) view of the cumulative buckets.
        self.buckets_t = self.counts[lay.bucket_base:lay.bucket_base + fn * lay.width].reshape(
            lay.width, fn)
        self.sums = self.counts[lay.sum_base:lay.sum_base + fn]
        self.feat_buckets_t = self.buckets_t[:, :nf]
        self.feat_sums = self.sums[:nf]
        #: scratch for one row's compare, used under the lock
        self.row_buffer = np.empty((lay.width, nf), dtype=np.float64)

    def add_row(self, below_t: np.ndarray, values: np.ndarray, other_slots: Sequence[int]) -> None:
        """One row: ``below_t`` (bool, ``(width, k)``: the first ``k`` numeric columns) added
        to the cumulative buckets, ``values`` to the sums (NaN-free), +1 at each of
        ``other_slots`` (distinct)."""
        k = below_t.shape[1]
        with self.lock:
            if k:
                np.add(self.buckets_t[:, :k], below_t, out=self.buckets_t[:, :k])
                np.add(self.sums[:k], values, out=self.sums[:k])
            if other_slots:
                self.counts[other_slots] += 1.0
            self.counts[Layout.INFERENCES] += 1.0

    def add_batch(self, increments: np.ndarray, rows: int) -> None:
        """A dense increment vector for the whole array (buckets already cumulative)."""
        with self.lock:
            self.counts += increments
            self.counts[Layout.INFERENCES] += rows

    def add_error(self) -> None:
        with self.lock:
            self.counts[Layout.ERRORS] += 1.0

    def snapshot(self) -> np.ndarray:
        """A copy of all counts, taken under the lock."""
        with self.lock:
            return self.counts.copy()
