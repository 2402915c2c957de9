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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .baseline import BaselineError
from .quality import Family, Labels, Sample, number

__all__ = ["AttributionCounters", "ndcg", "attribution_reference"]

_FLOATS = frozenset({float, int, np.float64, np.float32})


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


def attribution_reference(features: Sequence[str], attributions: Any) -> Dict[str, float]:
    """Mean |attribution| per feature (what ``Baseline.with_attributions`` stores)."""
    if isinstance(attributions, Mapping):
        cols = {str(k): v for k, v in attributions.items()}
        unknown = sorted(set(cols) - set(features))
        if unknown:
            raise BaselineError(f"attributions for unknown feature(s) {unknown}")
    else:
        arr = np.asarray(attributions, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(features):
            raise BaselineError(f"attributions must be a dict of columns or a 2-D array with "
                                f"{len(features)} columns (the baseline features); got shape "
                                f"{arr.shape}")
        cols = {f: arr[:, i] for i, f in enumerate(features)}
    out = {}
    for f in features:
        if f not in cols:
            continue
        v = np.asarray(cols[f], dtype=float)
        v = np.abs(v[np.isfinite(v)])
        if v.size:
            out[f] = float(v.mean())
    if not out:
        raise BaselineError("no finite attribution values")
    return out


class AttributionCounters:
    """Sums of |attribution| per feature: cumulative counters and a sliding window.

        >>> c = AttributionCounters(["x", "y"], {"x": 1.0, "y": 0.5}, clock=lambda: 0.0)
        >>> c.add([{"x": -0.2, "y": 0.9}, {"x": 0.1, "y": -0.7}])
        >>> c.window_means()
        ({'x': 0.15000000000000002, 'y': 0.8}, 2)
        >>> round(c.ndcg(), 4)    # live ranks y above x, the baseline x above y
        0.8597
    """

    def __init__(self, features: Sequence[str], reference: Mapping[str, float], *,
                 window: float = 3600.0, slots: int = 60,
                 clock: Callable[[], float] = time.time):
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
        self.sums = np.zeros(n)
        self.counts = np.zeros(n, dtype=np.int64)
        self.rows = 0
        self.invalid = 0
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
            if values is not None and set(map(type, values)) <= _FLOATS:
                x = np.abs(np.array(values, dtype=np.float64))
                if np.isfinite(x).all():
                    return x
        out = np.full(len(self.features), np.nan)
        if isinstance(attributions, Mapping):
            for k, v in attributions.items():
                i = self.index.get(k)
                x = number(v)
                if i is not None and x is not None:
                    out[i] = abs(x)
        else:
            seq = list(attributions.tolist() if isinstance(attributions, np.ndarray)
                       else attributions)
            if len(seq) != len(self.features):
                raise ValueError(f"{len(seq)} attributions for {len(self.features)} features")
            for i, v in enumerate(seq):
                x = number(v)
                if x is not None:
                    out[i] = abs(x)
        return out

    def add(self, rows: Sequence[Any]) -> None:
        """Count the attributions of a batch of inferences (one entry per inference)."""
        vecs = []
        for r in rows:
            try:
                vecs.append(self.vector(r))
            except (TypeError, ValueError):
                with self.lock:
                    self.invalid += 1
        if not vecs:
            return
        m = vecs[0][None] if len(vecs) == 1 else np.vstack(vecs)
        ok = np.isfinite(m)
        sums = np.where(ok, m, 0.0).sum(0)
        counts = ok.sum(0)
        with self.lock:
            self.sums += sums
            self.counts += counts
            self.rows += len(vecs)
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

    def window_means(self):
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

    def families(self, base: Labels) -> List[Family]:
        with self.lock:
            sums, counts, rows, invalid = (self.sums.copy(), self.counts.copy(), self.rows,
                                           self.invalid)
        _, wrows = self.window_means()
        score = self.ndcg()
        abs_sum: List[Sample] = []
        values: List[Sample] = []
        for i, f in enumerate(self.features):
            lab = base + (("feature", f),)
            abs_sum.append(("promdrift_attribution_abs_sum_total", lab, float(sums[i])))
            values.append(("promdrift_attribution_values_total", lab, float(counts[i])))
        ref = [("promdrift_baseline_attribution", base + (("feature", f),), float(v))
               for f, v in sorted(self.reference.items())]
        fams: List[Family] = [
            ("promdrift_attribution_abs_sum", "counter",
             "Sum of |attribution| of a feature over the inferences that passed one.", abs_sum),
            ("promdrift_attribution_values", "counter",
             "Attribution values counted per feature (finite numbers only).", values),
            ("promdrift_attribution_rows", "counter",
             "Inferences that passed attributions (invalid: not readable at all).",
             [("promdrift_attribution_rows_total", base + (("status", "valid"),), float(rows)),
              ("promdrift_attribution_rows_total", base + (("status", "invalid"),),
               float(invalid))]),
            ("promdrift_attribution_window_rows", "gauge",
             "Inferences with attributions in this process's nDCG window.",
             [("promdrift_attribution_window_rows", base, float(wrows))]),
            ("promdrift_attribution_ndcg", "gauge",
             "nDCG of the live feature ranking by mean |attribution| over the window against "
             "the baseline ranking (1 = same ranking); absent without live attributions or a "
             "baseline ranking.",
             [] if score is None else [("promdrift_attribution_ndcg", base, score)]),
            ("promdrift_baseline_attribution", "gauge",
             "Baseline mean |attribution| of a feature.", ref),
        ]
        return [fam for fam in fams if fam[3]]
