"""Bias drift: per-group prediction (and label) counters for configured facets.

A *facet* is a categorical feature such as a group column; its *groups* are the baseline's
top-K categories plus ``__other__``. For every categorical prediction output, the monitor
counts predictions per (facet, group, class) at ``observe`` time and, once labels arrive,
actual classes and true positives per (facet, group, class). The recording rules turn them
into the difference between a group and all other groups of

- the share of predictions of a class (``dppl``, SageMaker Clarify's "difference in positive
  proportions in predicted labels" with the class as the positive one), and
- the recall of a class (``recall_difference``),

and the alert compares them with the same values on validation data
(``Baseline.with_bias``).

    >>> from promdrift.instrumentation import Baseline
    >>> b = Baseline.fit({"g": ["a", "a", "b", "b"], "y": [1, 0, 1, 1]}, predictions="y",
    ...                  categorical=["y"])
    >>> ref = bias_reference(b.feature("g"), b.prediction("y"), ["a", "a", "b", "b"],
    ...                      [1, 0, 1, 1])
    >>> ref["dppl"]["a"]["1"]       # share of class 1: 0.5 in group a, 1.0 elsewhere
    -0.5
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .baseline import BaselineError, CategoricalColumn, Column
from .quality import Family, Labels, Sample, _values, class_index

__all__ = ["BiasCounters", "bias_reference", "group_differences"]


def group_differences(hits: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """``hits[g, c] / totals[g, c]`` minus the same ratio over all other groups, per
    group ``g`` and class ``c``; NaN where either side has no denominator."""
    hits = hits.astype(float)
    totals = totals.astype(float)
    rest_hits = hits.sum(0, keepdims=True) - hits
    rest_tot = totals.sum(0, keepdims=True) - totals
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((totals > 0) & (rest_tot > 0),
                        hits / totals - rest_hits / rest_tot, np.nan)


def bias_reference(facet: CategoricalColumn, output: Column, facet_values: Any,
                   y_pred: Any, y_true: Any = None) -> Dict[str, Any]:
    """Reference bias of one facet (what ``Baseline.with_bias`` stores):
    ``{"output": name, "dppl": {group: {class: value}}, "recall_difference": {...}}``
    (recall only with ``y_true``; undefined entries are left out)."""
    if not isinstance(output, CategoricalColumn):
        raise BaselineError(f"bias needs a categorical prediction output; {output.name!r} "
                            f"is numeric")
    groups = list(_values(facet_values))
    preds = list(_values(y_pred))
    trues = None if y_true is None else list(_values(y_true))
    if len(groups) != len(preds) or (trues is not None and len(trues) != len(preds)):
        raise BaselineError(f"facet values, predictions and labels differ in length: "
                            f"{len(groups)}, {len(preds)}, "
                            f"{'-' if trues is None else len(trues)}")
    ng, nc = len(facet.categories) + 1, len(output.categories) + 1
    pred_counts = np.zeros((ng, nc))
    actual = np.zeros((ng, nc))
    tp = np.zeros((ng, nc))
    for i, (g, p) in enumerate(zip(groups, preds)):
        gi, pi = class_index(facet, g), class_index(output, p)
        if gi is None or pi is None:
            continue
        pred_counts[gi, pi] += 1
        if trues is not None:
            ai = class_index(output, trues[i])
            if ai is not None:
                actual[gi, ai] += 1
                tp[gi, ai] += ai == pi
    if pred_counts.sum() == 0:
        raise BaselineError(f"facet {facet.name!r}: no rows with a valid group and prediction")
    group_totals = np.repeat(pred_counts.sum(1, keepdims=True), nc, axis=1)
    out: Dict[str, Any] = {"output": output.name,
                           "dppl": _nested(group_differences(pred_counts, group_totals),
                                           facet, output)}
    if trues is not None:
        out["recall_difference"] = _nested(group_differences(tp, actual), facet, output)
    return out


def _nested(values: np.ndarray, facet: CategoricalColumn, output: CategoricalColumn
            ) -> Dict[str, Dict[str, float]]:
    groups, classes = facet.labels, output.labels
    out: Dict[str, Dict[str, float]] = {}
    for gi, g in enumerate(groups):
        row = {c: float(values[gi, ci]) for ci, c in enumerate(classes)
               if np.isfinite(values[gi, ci])}
        if row:
            out[g] = row
    return out


class BiasCounters:
    """Per (facet, group, class) counts of predictions, actual classes and true positives.

        >>> from promdrift.instrumentation import Baseline
        >>> b = Baseline.fit({"g": ["a", "b"], "y": ["p", "n"]}, predictions="y")
        >>> bc = BiasCounters(b, ["g"])
        >>> bc.count_predictions({"g": "a"}, {"y": "p"})
        >>> int(bc.predictions["g", "y"][0, 1])   # group a (index 0), class p (index 1)
        1
    """

    def __init__(self, baseline: Any, facets: Sequence[str]):
        self.facets: Dict[str, CategoricalColumn] = {}
        for name in facets:
            col = baseline.feature(name) if name in baseline.feature_names else None
            if not isinstance(col, CategoricalColumn):
                raise ValueError(f"facet {name!r} must be a categorical feature of the "
                                 f"baseline of {baseline.model!r}")
            self.facets[name] = col
        self.outputs: Dict[str, CategoricalColumn] = {
            c.name: c for c in baseline.predictions if isinstance(c, CategoricalColumn)}
        if not self.outputs:
            raise ValueError(f"model {baseline.model!r}: bias needs a categorical prediction "
                             f"output in the baseline")
        self.lock = threading.Lock()
        self.predictions: Dict[Tuple[str, str], np.ndarray] = {}
        self.actual: Dict[Tuple[str, str], np.ndarray] = {}
        self.true_positives: Dict[Tuple[str, str], np.ndarray] = {}
        for f, fc in self.facets.items():
            for o, oc in self.outputs.items():
                shape = (len(fc.categories) + 1, len(oc.categories) + 1)
                for d in (self.predictions, self.actual, self.true_positives):
                    d[f, o] = np.zeros(shape, dtype=np.int64)

    def count_predictions(self, groups: Dict[str, Any], prediction: Dict[str, Any]) -> None:
        """One inference: ``groups`` ``{facet: value}``, ``prediction`` ``{output: value}``."""
        idx = [(f, class_index(c, groups.get(f))) for f, c in self.facets.items()]
        cls = [(o, class_index(c, prediction.get(o))) for o, c in self.outputs.items()
               if o in prediction]
        with self.lock:
            for f, gi in idx:
                if gi is None:
                    continue
                for o, ci in cls:
                    if ci is not None:
                        self.predictions[f, o][gi, ci] += 1

    def count_labels(self, groups: Dict[str, Any], classes: Dict[str, Tuple[int, int]]) -> None:
        """One joined label: ``classes`` ``{output: (actual, predicted)}`` class indices."""
        idx = [(f, class_index(c, groups.get(f))) for f, c in self.facets.items()]
        with self.lock:
            for f, gi in idx:
                if gi is None:
                    continue
                for o, (a, p) in classes.items():
                    if (f, o) in self.actual:
                        self.actual[f, o][gi, a] += 1
                        self.true_positives[f, o][gi, a] += a == p

    def families(self, base: Labels, baseline: Any) -> List[Family]:
        with self.lock:
            snap = [(k, self.predictions[k].copy(), self.actual[k].copy(),
                     self.true_positives[k].copy()) for k in self.predictions]
        pred: List[Sample] = []
        act: List[Sample] = []
        tp: List[Sample] = []
        for (f, o), p, a, t in snap:
            groups, classes = self.facets[f].labels, self.outputs[o].labels
            for gi, g in enumerate(groups):
                for ci, c in enumerate(classes):
                    lab = base + (("facet", f), ("group", g), ("output", o), ("class", c))
                    pred.append(("promdrift_bias_predictions_total", lab, float(p[gi, ci])))
                    act.append(("promdrift_bias_labels_total", lab, float(a[gi, ci])))
                    tp.append(("promdrift_bias_true_positives_total", lab, float(t[gi, ci])))
        ref: List[Sample] = []
        for f in self.facets:
            entry = baseline.bias.get(f)
            if not entry or entry.get("output") not in self.outputs:
                continue
            for metric in ("dppl", "recall_difference"):
                for g, row in sorted(entry.get(metric, {}).items()):
                    for c, v in sorted(row.items()):
                        ref.append(("promdrift_baseline_bias", base + (
                            ("facet", f), ("group", g), ("output", entry["output"]),
                            ("class", c), ("metric", metric)), float(v)))
        fams: List[Family] = [
            ("promdrift_bias_predictions", "counter",
             "Predictions per facet group and predicted class.", pred),
            ("promdrift_bias_labels", "counter",
             "Joined labels per facet group and actual class.", act),
            ("promdrift_bias_true_positives", "counter",
             "Joined labels whose predicted class is the actual class, per facet group and "
             "class.", tp),
            ("promdrift_baseline_bias", "gauge",
             "Validation-set group-minus-rest difference of a class's prediction share "
             "(metric dppl) or recall (metric recall_difference).", ref),
        ]
        return [fam for fam in fams if fam[3]]

