"""The baseline of one column: ``NumericColumn`` (quantile edges) and ``CategoricalColumn``
(top-K categories plus ``__other__``), shared by ``Baseline`` and every counter built on it.

    >>> c = CategoricalColumn("plan", categories=("a", "b"), counts=(5, 3, 1), invalid=0,
    ...                       distinct=3)
    >>> c.index("b"), c.index("z"), c.index(None)
    (1, 2, None)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .. import binning
from ..values import VALID, category, category_key

__all__ = ["BaselineError", "NumericColumn", "CategoricalColumn", "Column", "OTHER",
           "category_key", "column_from_dict", "reference_number"]

#: The category every value outside the training top-K is counted under.
OTHER = "__other__"
#: The two spellings of a boolean category: a column fitted from one counts the other too.
_BOOL_ALIASES = (("True", "1"), ("False", "0"))


class BaselineError(ValueError):
    """Bad input to ``Baseline.fit`` or an unreadable / incompatible baseline file."""


@dataclass(frozen=True)
class NumericColumn:
    """Baseline of a numeric column: bucket edges and training counts per bucket.

    ``counts`` has ``len(edges) + 1`` entries, non-cumulative, the last for ``+Inf``.

        >>> c = NumericColumn("x", edges=(1.0, 2.0), counts=(3, 4, 5), invalid=1,
        ...                   min=0.0, max=9.0, mean=2.5, std=1.0, sum=30.0)
        >>> c.count, c.cumulative()
        (12, [3, 7, 12])
    """

    name: str
    edges: Tuple[float, ...]
    counts: Tuple[int, ...]
    invalid: int
    min: float
    max: float
    mean: float
    std: float
    sum: float
    kind = "numeric"

    @property
    def count(self) -> int:
        """Number of valid training values."""
        return int(sum(self.counts))

    @property
    def labels(self) -> List[str]:
        """The ``le`` strings of the buckets, ``+Inf`` last."""
        return [binning.format_le(e) for e in self.edges] + ["+Inf"]

    def cumulative(self) -> List[int]:
        """Cumulative counts, as Prometheus exposes bucket values."""
        return np.cumsum(self.counts).astype(int).tolist()

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "edges": list(self.edges),
                "counts": list(self.counts), "invalid": self.invalid, "min": self.min,
                "max": self.max, "mean": self.mean, "std": self.std, "sum": self.sum}

    @classmethod
    def fit(cls, name: str, values: np.ndarray, bins: int) -> "NumericColumn":
        """Quantile edges and counts of the finite entries of ``values``."""
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise BaselineError(f"column {name!r} has no valid values "
                                f"(all {values.size} rows missing, NaN or infinite)")
        edges = binning.quantile_edges(finite, bins)
        counts = binning.bin_counts(edges, finite)
        return cls(name=name, edges=tuple(edges.tolist()), counts=tuple(counts.tolist()),
                   invalid=int(values.size - finite.size), min=float(finite.min()),
                   max=float(finite.max()), mean=float(finite.mean()),
                   std=float(finite.std()), sum=float(finite.sum()))


@dataclass(frozen=True)
class CategoricalColumn:
    """Baseline of a categorical column: the training top-K categories and their counts.

    ``counts`` has ``len(categories) + 1`` entries, the last for ``__other__`` (training
    values outside the top K).

        >>> c = CategoricalColumn("plan", categories=("a", "b"), counts=(5, 3, 1), invalid=0,
        ...                       distinct=3)
        >>> c.labels, c.count
        (['a', 'b', '__other__'], 9)
    """

    name: str
    categories: Tuple[str, ...]
    counts: Tuple[int, ...]
    invalid: int
    distinct: int
    kind = "categorical"

    @property
    def count(self) -> int:
        return int(sum(self.counts))

    @property
    def labels(self) -> List[str]:
        return list(self.categories) + [OTHER]

    @functools.cached_property
    def lookup(self) -> Dict[str, int]:
        """``{category key: index}`` of the top-K categories, plus the other spelling of a
        boolean category (``"1"`` for ``"True"``, ``"False"`` for ``"0"`` ...) when the
        column has only one of them (see ``promdrift.instrumentation.values``)."""
        out = {k: i for i, k in enumerate(self.categories)}
        for a, b in _BOOL_ALIASES:
            if a in out and b not in out:
                out[b] = out[a]
            elif b in out and a not in out:
                out[a] = out[b]
        return out

    def index(self, value: Any) -> Optional[int]:
        """Index of a value among :attr:`labels`: a top-K category, ``len(categories)`` for
        ``__other__``, or ``None`` when the value is not a valid category::

            >>> c = CategoricalColumn("y", categories=("0", "1"), counts=(1, 1, 0),
            ...                       invalid=0, distinct=2)
            >>> c.index(1), c.index(1.0), c.index("1"), c.index(True), c.index(7), c.index(None)
            (1, 1, 1, 1, 2, None)
        """
        reason, key = category(value)
        if reason != VALID:
            return None
        return self.lookup.get(key, len(self.categories))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "categories": list(self.categories),
                "counts": list(self.counts), "invalid": self.invalid, "distinct": self.distinct}

    @classmethod
    def fit(cls, name: str, values: np.ndarray, top_k: int) -> "CategoricalColumn":
        """Top-K categories by count (ties broken by name) plus ``__other__``."""
        keys = [category_key(v) for v in values.tolist()]
        valid = [k for k in keys if k is not None]
        if not valid:
            raise BaselineError(f"column {name!r} has no valid values "
                                f"(all {len(keys)} rows missing or invalid)")
        uniq, counts = np.unique(np.array(valid, dtype=object), return_counts=True)
        order = sorted(range(len(uniq)), key=lambda i: (-counts[i], uniq[i]))
        top = order[:top_k]
        other = int(sum(counts[i] for i in order[top_k:]))
        return cls(name=name, categories=tuple(str(uniq[i]) for i in top),
                   counts=tuple(int(counts[i]) for i in top) + (other,),
                   invalid=len(keys) - len(valid), distinct=len(uniq))


Column = Union[NumericColumn, CategoricalColumn]


def column_from_dict(d: Mapping[str, Any], where: str) -> Column:
    try:
        kind = d["kind"]
        if kind == "numeric":
            col = NumericColumn(
                name=str(d["name"]), edges=tuple(float(e) for e in d["edges"]),
                counts=tuple(int(c) for c in d["counts"]), invalid=int(d["invalid"]),
                min=float(d["min"]), max=float(d["max"]), mean=float(d["mean"]),
                std=float(d["std"]), sum=float(d["sum"]))
            e = np.array(col.edges)
            if len(col.counts) != len(col.edges) + 1:
                raise BaselineError(f"{where}: {len(col.counts)} counts for {len(col.edges)} edges")
            if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                raise BaselineError(f"{where}: edges must be finite and strictly increasing")
        elif kind == "categorical":
            col = CategoricalColumn(
                name=str(d["name"]), categories=tuple(str(c) for c in d["categories"]),
                counts=tuple(int(c) for c in d["counts"]), invalid=int(d["invalid"]),
                distinct=int(d["distinct"]))
            if len(col.counts) != len(col.categories) + 1:
                raise BaselineError(f"{where}: {len(col.counts)} counts for "
                                    f"{len(col.categories)} categories plus {OTHER}")
            if len(set(col.categories)) != len(col.categories) or OTHER in col.categories:
                raise BaselineError(f"{where}: duplicate or reserved category names")
        else:
            raise BaselineError(f"{where}: unknown kind {kind!r}")
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BaselineError):
            raise
        raise BaselineError(f"{where}: malformed column ({type(e).__name__}: {e})") from None
    if any(c < 0 for c in col.counts):
        raise BaselineError(f"{where}: negative counts")
    return col


def reference_number(value: Any, where: str, source: str) -> float:
    """A finite number of a baseline file's reference sections (quality, bias, attribution),
    as a float; ``BaselineError`` naming ``where`` otherwise (booleans are refused: a file
    holding ``true`` for a score was not written by promdrift)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise BaselineError(f"{source}: {where} must be a finite number, got {value!r}")
    return float(value)
