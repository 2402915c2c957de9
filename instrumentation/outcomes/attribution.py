"""Feature attribution drift: mean absolute attribution per feature, and how the live
ranking of features compares with the baseline's (nDCG, as SageMaker Clarify does).

When the model server passes per-inference attributions (SHAP values, integrated gradients
...) to ``observe(..., attributions=...)``, the monitor adds ``|attribution|`` per feature to
counters (``promdrift_attribution_abs_sum_total`` / ``promdrift_attribution_values_total``,
so PromQL can average them over any window across replicas) and keeps the same sums in
per-minute slots of a sliding window (default one hour) from which it computes, at scrape,

    nDCG = DCG / iDCG,  DCG = sum_i a(f_i) / log2(i + 1)

where f_1, f_2, ... are the baseline's features ranked by their live mean |attribution| over
the window (ties by name; features without live values last), a(f) is the baseline mean
|attribution| of f (the relevance), and iDCG is the DCG of the baseline's own ranking.
nDCG is 1 when the live ranking is the baseline's, and falls as important features lose
rank. PromQL cannot rank series against each other, hence the collector-side gauge
``promdrift_attribution_ndcg`` (one per replica; the rules take the worst replica).

    >>> ndcg({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.9, "b": 0.5, "c": 0.1})
    1.0
    >>> round(ndcg({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.9, "b": 0.5, "c": 0.1}), 4)
    0.6839
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..counting.exposition import BlockPlan
from ..counting.plugins import Call, Plugin
from ..counting.store import Block, Labels
from ..values import NUMBER_TYPES, finite_number

__all__ = ["AttributionCounters", "AttributionTracker", "ndcg"]


def ndcg(live: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """nDCG of the live ranking (``{feature: mean |attribution|}``) against the reference
    one; the features are the reference's. ``nan`` when the reference is all zero."""
    feats = sorted(reference)
    gains = np.array([reference[f] for f in feats], dtype=float)
    discount = 1.0 / np.log2(np.arange(2, len(feats) + 2))
    ideal = float(np.sort(gains)[::-1] @ discount)
    if not ideal > 0:
        return math.nan
    order = sorted(range(len(feats)), key=lambda i: (
        -live[feats[i]] if feats[i] in live and math.isfinite(live[feats[i]]) else math.inf,
        feats[i]))
    return float(gains[order] @ discount) / ideal


class AttributionCounters:
    """Sums of |attribution| per feature: counters in a block of counter slots (exact across
    processes, in ``store``) and, per process, a sliding window for the nDCG.

        >>> c = AttributionCounters(["x", "y"], {"x": 1.0, "y": 0.5}, clock=lambda: 0.0)
        >>> c.add([{"x": -0.2, "y": 0.9}, {"x": 0.1, "y": -0.7}])
        >>> c.window_means()
        ({'x': 0.15000000000000002, 'y': 0.8}, 2)
        >>> round(c.ndcg(), 4)    # live ranks y above x, the baseline x above y
        0.8597
    """

    def __init__(self, features: Sequence[str], reference: Mapping[str, float], *,
                 window: float = 3600.0, slots: int = 60,
                 clock: Callable[[], float] = time.time, model: str = "model",
                 digest: str = "", labels: Optional[Labels] = None,
                 store: Optional[Callable[[Block], Any]] = None, coerce: bool = True):
        from ..counting.store import CounterStore
        #: a string spelling a number is that number (``values.number``)
        self.coerce = coerce
        if not window > 0 or slots < 1:
            raise ValueError("window must be positive and slots at least 1")
        self.features = list(features)
        self.index = {f: i for i, f in enumerate(self.features)}
        self.reference = dict(reference)
        self.window = float(window)
        self.slots = int(slots)
        self.slot_len = self.window / self.slots
        self.clock = clock
        self.lock = threading.Lock()
        n = len(self.features)
        base = (("model", model),) if labels is None else tuple(labels)
        self.block = b = Block("attribution", model, digest, base)
        self._sums = b.slots(n)
        self._counts = b.slots(n)
        for i, f in enumerate(self.features):
            b.expose("promdrift_attribution_abs_sum", "_total", (("feature", f),),
                     self._sums + i, is_float=True)
        for i, f in enumerate(self.features):
            b.expose("promdrift_attribution_values", "_total", (("feature", f),),
                     self._counts + i)
        self._valid = b.counter("promdrift_attribution_rows", "_total",
                                (("status", "valid"),))
        self._invalid = b.counter("promdrift_attribution_rows", "_total",
                                  (("status", "invalid"),))
        for f, v in sorted(self.reference.items()):
            b.constant("promdrift_baseline_attribution", "", (("feature", f),), v)
        self.base = base
        self.plan = BlockPlan(b)
        self.store = (store or CounterStore)(b)
        self._wsums = np.zeros((self.slots, n))
        self._wcounts = np.zeros((self.slots, n), dtype=np.int64)
        self._wrows = np.zeros(self.slots, dtype=np.int64)
        self._stamp = np.full(self.slots, -1, dtype=np.int64)

    def vector(self, attributions: Any) -> np.ndarray:
        """|attribution| per feature, NaN where absent or not a finite number. A mapping
        ``{feature: value}`` or a sequence in feature order."""
        if type(attributions) is dict:  # the common case: every feature, plain numbers
            try:
                values = [attributions[f] for f in self.features]
            except KeyError:
                values = None
            if values is not None and set(map(type, values)) <= NUMBER_TYPES:
                x = np.abs(np.array(values, dtype=np.float64))
                if np.isfinite(x).all():
                    return x
        out = np.full(len(self.features), np.nan)
        if isinstance(attributions, Mapping):
            for k, v in attributions.items():
                i = self.index.get(k)
                x = finite_number(v, self.coerce)
                if i is not None and x is not None:
                    out[i] = abs(x)
        else:
            seq = list(attributions.tolist() if isinstance(attributions, np.ndarray)
                       else attributions)
            if len(seq) != len(self.features):
                raise ValueError(f"{len(seq)} attributions for {len(self.features)} features")
            for i, v in enumerate(seq):
                x = finite_number(v, self.coerce)
                if x is not None:
                    out[i] = abs(x)
        return out

    def add(self, rows: Sequence[Any]) -> None:
        """Count the attributions of a batch of inferences (one entry per inference)."""
        vecs = []
        invalid = 0
        for r in rows:
            try:
                vecs.append(self.vector(r))
            except (TypeError, ValueError):
                invalid += 1
        if invalid:
            self.store.add((self._invalid,), (float(invalid),))
        if not vecs:
            return
        m = vecs[0][None] if len(vecs) == 1 else np.vstack(vecs)
        ok = np.isfinite(m)
        sums = np.where(ok, m, 0.0).sum(0)
        counts = ok.sum(0)
        n = len(self.features)
        store = self.store
        with store.lock:
            store.counts[self._sums:self._sums + n] += sums
            store.counts[self._counts:self._counts + n] += counts
            store.counts[self._valid] += len(vecs)
        with self.lock:
            s = self._slot(self.clock())
            self._wsums[s] += sums
            self._wcounts[s] += counts
            self._wrows[s] += len(vecs)

    def _slot(self, now: float) -> int:
        stamp = int(now // self.slot_len)
        s = stamp % self.slots
        if self._stamp[s] != stamp:
            self._stamp[s] = stamp
            self._wsums[s] = 0.0
            self._wcounts[s] = 0
            self._wrows[s] = 0
        return s

    def window_means(self) -> Tuple[Dict[str, float], int]:
        """``({feature: mean |attribution| over the window}, rows in the window)``."""
        now = int(self.clock() // self.slot_len)
        with self.lock:
            live = (self._stamp > now - self.slots) & (self._stamp <= now)
            sums = self._wsums[live].sum(0)
            counts = self._wcounts[live].sum(0)
            rows = int(self._wrows[live].sum())
        means = {f: float(sums[i] / counts[i]) for i, f in enumerate(self.features)
                 if counts[i] > 0}
        return means, rows

    def ndcg(self) -> Optional[float]:
        """nDCG of the window's ranking against the reference (``None`` without either)."""
        if not self.reference:
            return None
        means, rows = self.window_means()
        if rows == 0:
            return None
        v = ndcg(means, self.reference)
        return None if math.isnan(v) else v

    def scrape_samples(self) -> List[Tuple[str, str, Labels, float]]:
        """The per-process window gauges: rows in the window, and the nDCG."""
        _, rows = self.window_means()
        out = [("promdrift_attribution_window_rows", "promdrift_attribution_window_rows",
                self.base, float(rows))]
        score = self.ndcg()
        if score is not None:
            out.append(("promdrift_attribution_ndcg", "promdrift_attribution_ndcg",
                        self.base, score))
        return out


class AttributionTracker(Plugin):
    """Counts per-feature ``|attribution|`` passed to ``observe(..., attributions=...)`` and
    exposes the nDCG of the last ``window`` seconds' ranking against the baseline's
    (``DriftMonitor.track_attributions`` builds one)."""

    name = "attributions"

    def __init__(self, *, window: float = 3600.0, slots: int = 60,
                 clock: Callable[[], float] = time.time):
        self._window = {"window": window, "slots": slots, "clock": clock}

    def bind(self, monitor: Any) -> None:
        super().bind(monitor)
        b = monitor.baseline
        self.counters = AttributionCounters(b.feature_names, b.attribution, model=b.model,
                                            digest=b.digest, labels=monitor.plan_labels,
                                            store=monitor.store.sibling,
                                            coerce=monitor.coerce_numbers, **self._window)

    def observe(self, call: Call) -> None:
        if call.attributions_given is not None:
            self.counters.add(call.attributions)

    def exposed(self) -> List[Tuple[Any, Any]]:
        return [(self.counters.plan, self.counters.store)]

    def scrape_samples(self) -> List[Tuple[str, str, Labels, float]]:
        return self.counters.scrape_samples()
