"""The outcomes' reference values: what a baseline records of the validation set, to compare
live quality, bias and attributions with (``Baseline.with_quality``, ``with_bias``,
``with_attributions``), and the parsers of those sections of a baseline file.

    >>> from promdrift.instrumentation import Baseline
    >>> b = Baseline.fit({"g": ["a", "a", "b", "b"], "y": [1, 0, 1, 1]}, predictions="y",
    ...                  categorical=["y"])
    >>> quality_reference(b.prediction("y"), [1, 0, 1, 0], [1, 0, 1, 1])["accuracy"]
    0.75
    >>> ref = bias_reference(b.feature("g"), b.prediction("y"), ["a", "a", "b", "b"],
    ...                      [1, 0, 1, 1])
    >>> ref["dppl"]["a"]["1"]       # share of class 1: 0.5 in group a, 1.0 elsewhere
    -0.5
    >>> attribution_reference(["g"], {"g": [0.5, -1.5]})
    {'g': 1.0}

Plain numpy, for the training side: the monitors that count live outcomes
(``promdrift.instrumentation.outcomes``: the SQLite label store, the trackers) import this
module, never the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Dict, Iterable, Sequence

import numpy as np

from ..values import finite_number
from .columns import BaselineError, CategoricalColumn, Column, reference_number

__all__ = ["quality_reference", "parse_quality_reference", "confusion_matrix",
           "classification_metrics", "regression_metrics", "bias_reference",
           "parse_bias_reference", "group_differences", "attribution_reference",
           "parse_attribution_reference", "values_of"]


# ----------------------------------------------------------------------------- quality
def values_of(v: Any) -> Iterable[Any]:
    """The entries of a column given as a list, an array or a pandas Series."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "tolist") and not isinstance(v, (list, tuple)):
        return v.tolist()  # pandas Series
    return v


def confusion_matrix(col: CategoricalColumn, y_true: Iterable[Any], y_pred: Iterable[Any]
                     ) -> np.ndarray:
    """``(K + 1, K + 1)`` counts, rows = actual class, columns = predicted class, over the
    column's top-K classes and ``__other__``; pairs with an invalid side are skipped."""
    k = len(col.categories) + 1
    out = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        a, b = col.index(t), col.index(p)
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
    pairs = [(finite_number(t), finite_number(p)) for t, p in zip(y_true, y_pred)]
    err = np.array([p - t for t, p in pairs if t is not None and p is not None], dtype=float)
    if err.size == 0:
        raise BaselineError("no valid (label, prediction) pairs")
    return {"mae": float(np.abs(err).mean()), "rmse": float(math.sqrt((err ** 2).mean())),
            "count": int(err.size)}


def quality_reference(col: Column, y_true: Any, y_pred: Any) -> Dict[str, float]:
    """Validation-set quality of one output (what ``Baseline.with_quality`` stores)."""
    y_true, y_pred = list(values_of(y_true)), list(values_of(y_pred))
    if len(y_true) != len(y_pred):
        raise BaselineError(f"{len(y_true)} labels for {len(y_pred)} predictions")
    if isinstance(col, CategoricalColumn):
        return classification_metrics(confusion_matrix(col, y_true, y_pred))
    return regression_metrics(y_true, y_pred)


def parse_quality_reference(section: Any, outputs: Sequence[Column], source: str
                            ) -> Dict[str, Dict[str, float]]:
    """The ``quality`` section of a baseline file, validated (``BaselineError`` naming what
    is wrong); ``{}`` when absent."""
    by_name = {c.name: c for c in outputs}
    quality: Dict[str, Dict[str, float]] = {}
    for out, values in (section or {}).items():
        col = by_name.get(out)
        if col is None or not isinstance(values, dict):
            raise BaselineError(f"{source}: quality of unknown output {out!r}")
        want = ({"accuracy", "macro_f1"} if isinstance(col, CategoricalColumn)
                else {"mae", "rmse"})
        if not want <= set(values):
            raise BaselineError(f"{source}: quality of {out!r} needs {sorted(want)}")
        quality[out] = {k: reference_number(v, f"quality.{out}.{k}", source)
                        for k, v in values.items()}
    return quality


# ----------------------------------------------------------------------------- bias
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
    groups = list(values_of(facet_values))
    preds = list(values_of(y_pred))
    trues = None if y_true is None else list(values_of(y_true))
    if len(groups) != len(preds) or (trues is not None and len(trues) != len(preds)):
        raise BaselineError(f"facet values, predictions and labels differ in length: "
                            f"{len(groups)}, {len(preds)}, "
                            f"{'-' if trues is None else len(trues)}")
    ng, nc = len(facet.categories) + 1, len(output.categories) + 1
    pred_counts = np.zeros((ng, nc))
    actual = np.zeros((ng, nc))
    tp = np.zeros((ng, nc))
    for i, (g, p) in enumerate(zip(groups, preds)):
        gi, pi = facet.index(g), output.index(p)
        if gi is None or pi is None:
            continue
        pred_counts[gi, pi] += 1
        if trues is not None:
            ai = output.index(trues[i])
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


def parse_bias_reference(section: Any, features: Sequence[Column], outputs: Sequence[Column],
                         source: str) -> Dict[str, Any]:
    """The ``bias`` section of a baseline file, validated (``BaselineError`` naming what is
    wrong); ``{}`` when absent."""
    feats = {c.name: c for c in features}
    outs = {c.name: c for c in outputs}
    bias: Dict[str, Any] = {}
    for facet, entry in (section or {}).items():
        if not isinstance(feats.get(facet), CategoricalColumn) or not isinstance(entry, dict) \
                or not isinstance(outs.get(entry.get("output")), CategoricalColumn):
            raise BaselineError(f"{source}: bias of {facet!r} needs a categorical feature and "
                                f"a categorical output")
        clean: Dict[str, Any] = {"output": entry["output"]}
        for metric in ("dppl", "recall_difference"):
            if metric in entry:
                clean[metric] = {str(g): {str(c): reference_number(v, f"bias.{facet}.{metric}",
                                                                    source)
                                          for c, v in row.items()}
                                 for g, row in entry[metric].items()}
        bias[facet] = clean
    return bias


# ----------------------------------------------------------------------------- attributions
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


def parse_attribution_reference(section: Any, features: Sequence[Column], source: str
                                ) -> Dict[str, float]:
    """The ``attribution`` section of a baseline file, validated (``BaselineError`` naming
    what is wrong); ``{}`` when absent."""
    names = {c.name for c in features}
    attribution = {}
    for f, v in (section or {}).items():
        if f not in names:
            raise BaselineError(f"{source}: attribution of unknown feature {f!r}")
        attribution[f] = reference_number(v, f"attribution.{f}", source)
    return attribution
