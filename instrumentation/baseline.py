"""The training-side record of each feature's distribution: ``Baseline``.

    >>> from promdrift.instrumentation import Baseline
    >>> b = Baseline.fit({"age": [23, 35, 41, 58, 62], "plan": ["a", "b", "a", "a", "c"]},
    ...                  model="churn", bins=4)
    >>> b.feature("age").edges, b.feature("plan").categories
    ((35.0, 41.0, 58.0), ('a', 'b', 'c'))
    >>> b.save("/tmp/baseline.json"); Baseline.load("/tmp/baseline.json") == b
    True
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import binning
from .files import atomic_write
from .tabular import DataError, numeric_column, read_csv, to_columns

__all__ = [
    "Baseline",
    "BaselineError",
    "NumericColumn",
    "CategoricalColumn",
    "SCHEMA_VERSION",
    "OTHER",
    "category_key",
]

#: Version of the baseline JSON schema this promdrift writes and the newest it reads.
SCHEMA_VERSION = 1
#: The category every value outside the training top-K is counted under.
OTHER = "__other__"
_KIND = "promdrift-baseline"


class BaselineError(ValueError):
    """Bad input to ``Baseline.fit`` or an unreadable / incompatible baseline file."""


def category_key(value: Any) -> Optional[str]:
    """The category string of a value, or ``None`` when it is not a valid category.

    Strings stay as they are; integers and integral floats become ``"3"`` (so a category read
    from CSV, from JSON and from a numpy array agree); other floats use ``repr``; booleans
    ``"True"`` / ``"False"``. ``None``, NaN, infinities, containers and other objects are not
    categories.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    return None


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


def _column_from_dict(d: Mapping[str, Any], where: str) -> Column:
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


def _replace(baseline: "Baseline", **changes: Any) -> "Baseline":
    return dataclasses.replace(baseline, **changes)


def _names(arg: Union[None, str, Iterable[str]]) -> List[str]:
    if arg is None:
        return []
    if isinstance(arg, str):
        return [s for s in (p.strip() for p in arg.split(",")) if s]
    return [str(a) for a in arg]


@dataclass(frozen=True)
class Baseline:
    """Per-feature (and per-prediction-output) training distributions of one model.

        >>> b = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 1, 0]}, model="m",
        ...                  predictions="y", categorical=["y"], bins=2)
        >>> [c.name for c in b.features], [c.name for c in b.predictions]
        (['x'], ['y'])

    Build one with :meth:`fit` (or ``promdrift baseline train.csv -o baseline.json``),
    store it with :meth:`save`, and hand it (or its path) to ``DriftMonitor``.
    """

    model: str
    features: Tuple[Column, ...]
    predictions: Tuple[Column, ...] = ()
    rows: int = 0
    created: str = ""
    schema_version: int = SCHEMA_VERSION
    metadata: Dict[str, Any] = field(default_factory=dict, compare=False)
    #: Optional reference values of the outcome monitors (see ``promdrift.instrumentation.
    #: outcomes``): validation-set quality per output, bias per facet, mean |attribution| per
    #: feature. Empty unless set by :meth:`with_quality`, :meth:`with_bias`,
    #: :meth:`with_attributions`; written to JSON only when set, so a baseline without them
    #: is byte-for-byte (and digest) what promdrift always wrote.
    quality: Dict[str, Dict[str, float]] = field(default_factory=dict, hash=False)
    bias: Dict[str, Any] = field(default_factory=dict, hash=False)
    attribution: Dict[str, float] = field(default_factory=dict, hash=False)

    # ----------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, data: Any, *, model: str = "model",
            categorical: Union[None, str, Iterable[str]] = None,
            predictions: Any = None,
            ignore: Union[None, str, Iterable[str]] = None,
            bins: int = 20, top_k: int = 50,
            names: Optional[Sequence[str]] = None) -> "Baseline":
        """Fit a baseline on training data.

        ``data``: a dict of columns, a list of row dicts, a 2-D numpy array with ``names``,
        a numpy structured array or a pandas data frame. Columns listed in ``categorical`` or
        holding text are categorical (top ``top_k`` categories plus ``__other__``); all others
        numeric (``bins`` equal-mass quantile buckets). ``predictions`` names the columns that
        are model outputs (a name or list of names), or gives them directly as a 1-D array
        (output ``prediction``) or a ``{output: values}`` dict. ``ignore`` lists columns to skip.
        """
        if not isinstance(model, str) or not model:
            raise BaselineError("model must be a non-empty string")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise BaselineError(f"bins must be an integer >= 2, got {bins!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise BaselineError(f"top_k must be an integer >= 1, got {top_k!r}")
        try:
            cols = to_columns(data, names=names)
        except DataError as e:
            raise BaselineError(str(e)) from None
        nrows = len(next(iter(cols.values()))) if cols else 0
        if not cols or nrows == 0:
            raise BaselineError("no training rows")

        pred_cols: Dict[str, np.ndarray] = {}
        if isinstance(predictions, (str, list, tuple)) and all(
                isinstance(p, str) for p in ([predictions] if isinstance(predictions, str)
                                             else predictions)):
            pred_names = _names(predictions)
        elif predictions is None:
            pred_names = []
        else:
            pred_names = []
            given = predictions if isinstance(predictions, Mapping) else {"prediction": predictions}
            try:
                pred_cols = to_columns(given)
            except DataError as e:
                raise BaselineError(f"predictions: {e}") from None
            bad = {n: len(c) for n, c in pred_cols.items() if len(c) != nrows}
            if bad:
                raise BaselineError(f"predictions have {bad} rows, the data has {nrows}")

        cat_names, ign_names = _names(categorical), _names(ignore)
        known = set(cols) | set(pred_cols)
        for what, listed in (("categorical", cat_names), ("ignore", ign_names),
                             ("predictions", pred_names)):
            unknown = [n for n in listed if n not in known]
            if unknown:
                raise BaselineError(f"{what}: unknown column(s) {unknown}; "
                                    f"the data has {sorted(known)}")
        for n in pred_names:
            pred_cols[n] = cols.pop(n)
        for n in ign_names:
            cols.pop(n, None)
            pred_cols.pop(n, None)
        if not cols:
            raise BaselineError("no feature columns left to fit")

        def fit_column(name: str, values: np.ndarray) -> Column:
            if name not in cat_names:
                num = numeric_column(values)
                if num is not None:
                    return NumericColumn.fit(name, num, bins)
            return CategoricalColumn.fit(name, values, top_k)

        return cls(model=model,
                   features=tuple(fit_column(n, c) for n, c in cols.items()),
                   predictions=tuple(fit_column(n, c) for n, c in pred_cols.items()),
                   rows=nrows,
                   created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
                   .isoformat().replace("+00:00", "Z"),
                   metadata={"bins": int(bins), "top_k": int(top_k)})

    @classmethod
    def fit_csv(cls, path: str, *, progress: Any = None, **kwargs: Any) -> "Baseline":
        """:meth:`fit` on a CSV file with a header row (a progress line for large files)."""
        try:
            cols = read_csv(path, progress=progress)
        except DataError as e:
            raise BaselineError(str(e)) from None
        return cls.fit(cols, **kwargs)

    # ----------------------------------------------------------------- access
    @property
    def feature_names(self) -> List[str]:
        return [c.name for c in self.features]

    @property
    def prediction_names(self) -> List[str]:
        return [c.name for c in self.predictions]

    def feature(self, name: str) -> Column:
        """The baseline of one feature (``KeyError`` naming the known ones otherwise)."""
        for c in self.features:
            if c.name == name:
                return c
        raise KeyError(f"no feature {name!r} in baseline of {self.model!r}; "
                       f"features: {self.feature_names}")

    def prediction(self, name: str) -> Column:
        for c in self.predictions:
            if c.name == name:
                return c
        raise KeyError(f"no prediction output {name!r}; outputs: {self.prediction_names}")

    @property
    def digest(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON (creation time excluded)."""
        d = self.to_dict()
        d.pop("created", None)
        d.pop("metadata", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    # ----------------------------------------------------------------- files
    def to_dict(self) -> Dict[str, Any]:
        d = {"kind": _KIND, "schema_version": self.schema_version, "model": self.model,
             "created": self.created, "rows": self.rows, "metadata": dict(self.metadata),
             "features": [c.to_dict() for c in self.features],
             "predictions": [c.to_dict() for c in self.predictions]}
        for key in ("quality", "bias", "attribution"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d

    # ----------------------------------------------------------------- outcome references
    def with_quality(self, y_true: Any, y_pred: Any, output: Optional[str] = None) -> "Baseline":
        """A copy with the validation-set quality of one prediction output.

        Categorical outputs (classifiers) store ``accuracy`` and ``macro_f1``, numeric outputs
        (regressors) ``mae`` and ``rmse``, both with ``count``; ``promdrift_baseline_quality``
        exposes them and the quality alerts compare the live values with them.
        ``output`` defaults to the only prediction output.
        """
        from .quality import quality_reference
        col = self._output_column(output)
        values = quality_reference(col, y_true, y_pred)
        return _replace(self, quality={**self.quality, col.name: values})

    def with_bias(self, features: Any, y_pred: Any, y_true: Any = None, *,
                  facets: Union[str, Iterable[str]], output: Optional[str] = None) -> "Baseline":
        """A copy with the reference bias of each facet (a categorical feature), computed on
        validation rows: per group and class, the share of predictions of that class in the
        group minus that share in all other groups (``dppl``), and with ``y_true`` the same
        difference of recall (``recall_difference``). ``features``: columns (a dict of
        arrays, rows, ...) holding the facet columns."""
        from .bias import bias_reference
        col = self._output_column(output)
        names = _names(facets)
        if not names:
            raise BaselineError("facets: name at least one categorical feature")
        try:
            cols = to_columns(features)
        except DataError as e:
            raise BaselineError(f"features: {e}") from None
        out = dict(self.bias)
        for name in names:
            facet = self.feature(name) if name in self.feature_names else None
            if not isinstance(facet, CategoricalColumn):
                raise BaselineError(f"facet {name!r} must be a categorical feature of the "
                                    f"baseline; categorical features: "
                                    f"{[c.name for c in self.features if c.kind == 'categorical']}")
            if name not in cols:
                raise BaselineError(f"features have no column {name!r}")
            out[name] = bias_reference(facet, col, cols[name], y_pred, y_true)
        return _replace(self, bias=out)

    def with_attributions(self, attributions: Any) -> "Baseline":
        """A copy with the mean absolute attribution of each feature (e.g. SHAP values on the
        training or validation set): a dict ``{feature: values}`` or a 2-D array with one
        column per baseline feature, in baseline order. Features with no finite value are
        left out. The live ranking of features is compared with this one (nDCG)."""
        from .attribution import attribution_reference
        return _replace(self, attribution=attribution_reference(self.feature_names,
                                                                attributions))

    def _output_column(self, output: Optional[str]) -> Column:
        if output is None:
            if len(self.predictions) != 1:
                raise BaselineError(f"name the output: the baseline has outputs "
                                    f"{self.prediction_names}")
            return self.predictions[0]
        try:
            return self.prediction(output)
        except KeyError as e:
            raise BaselineError(str(e.args[0])) from None

    @classmethod
    def from_dict(cls, d: Any, source: str = "baseline") -> "Baseline":
        if not isinstance(d, Mapping) or d.get("kind") != _KIND:
            raise BaselineError(f"{source}: not a promdrift baseline (no \"kind\": \"{_KIND}\")")
        version = d.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise BaselineError(f"{source}: missing or invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise BaselineError(
                f"{source}: schema_version {version} is newer than this promdrift reads "
                f"(up to {SCHEMA_VERSION}); upgrade promdrift to load it")
        try:
            feats = [_column_from_dict(c, f"{source}: feature {i}")
                     for i, c in enumerate(d["features"])]
            preds = [_column_from_dict(c, f"{source}: prediction {i}")
                     for i, c in enumerate(d.get("predictions", []))]
            model = d["model"]
        except (KeyError, TypeError) as e:
            raise BaselineError(f"{source}: malformed baseline ({type(e).__name__}: {e})") from None
        if not isinstance(model, str) or not model:
            raise BaselineError(f"{source}: model must be a non-empty string")
        if not feats:
            raise BaselineError(f"{source}: no features")
        names = [c.name for c in feats] + [c.name for c in preds]
        if len(set(names)) != len(names):
            raise BaselineError(f"{source}: duplicate feature or output names")
        from .outcomes import check_references
        quality, bias, attribution = check_references(d, feats, preds, source)
        return cls(model=model, features=tuple(feats), predictions=tuple(preds),
                   rows=int(d.get("rows", 0)), created=str(d.get("created", "")),
                   schema_version=version, metadata=dict(d.get("metadata") or {}),
                   quality=quality, bias=bias, attribution=attribution)

    def save(self, path: str) -> None:
        """Write the baseline as JSON atomically (a temporary file renamed into place)."""
        atomic_write(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n",
                     prefix=".baseline-", suffix=".json")

    @classmethod
    def load(cls, path: str) -> "Baseline":
        """Read a baseline written by :meth:`save` (``BaselineError`` if it is unusable)."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except OSError as e:
            raise BaselineError(f"cannot read baseline {path}: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise BaselineError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=path)
