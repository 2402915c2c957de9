"""The training-side record of each feature's distribution: ``Baseline``.

    >>> from promdrift.instrumentation import Baseline
    >>> b = Baseline.fit({"age": [23, 35, 41, 58, 62], "plan": ["a", "b", "a", "a", "c"]},
    ...                  model="churn", bins=4)
    >>> b.feature("age").edges, b.feature("plan").categories
    ((35.0, 41.0, 58.0), ('a', 'b', 'c'))
    >>> b.save("/tmp/baseline.json"); Baseline.load("/tmp/baseline.json") == b
    True

With ``multivariate=True`` (a PCA of the numeric features) or ``embeddings=matrix`` (a PCA of
the training embedding vectors) the baseline also holds **derived numeric features**
(docs/multivariate.md), counted like every numeric feature::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=200)
    >>> b = Baseline.fit({"a": a, "b": a + 0.1 * rng.normal(size=200)}, multivariate=1, bins=4)
    >>> [c.name for c in b.derived], b.schema_version
    (['__pca_error__', '__pca_01__'], 2)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..files import atomic_write
from . import checks
from .checks import BaselineWarning
from .columns import (OTHER, BaselineError, CategoricalColumn, Column, NumericColumn,
                      category_key, column_from_dict)
from .multivariate import Embedding, Multivariate, is_reserved
from .references import (attribution_reference, bias_reference, parse_attribution_reference,
                         parse_bias_reference, parse_quality_reference, quality_reference)
from .tabular import DataError, numeric_column, read_csv, to_columns

__all__ = [
    "Baseline",
    "BaselineError",
    "BaselineWarning",
    "NumericColumn",
    "CategoricalColumn",
    "SCHEMA_VERSION",
    "OTHER",
    "category_key",
]

#: The newest baseline JSON schema this promdrift reads and writes. A baseline is written as
#: version 1 (byte for byte what earlier releases wrote) unless it has derived features (a
#: ``multivariate`` or ``embedding`` section), which need version 2: releases that read only
#: version 1 refuse such a file instead of serving it without them.
SCHEMA_VERSION = 2
_KIND = "promdrift-baseline"


def _replace(baseline: "Baseline", **changes: Any) -> "Baseline":
    return dataclasses.replace(baseline, **changes)


def _names(arg: Union[None, str, Iterable[str]]) -> List[str]:
    if arg is None:
        return []
    if isinstance(arg, str):
        return [s for s in (p.strip() for p in arg.split(",")) if s]
    return [str(a) for a in arg]


def canonical(value: Any) -> Any:
    """``value`` with every number in one canonical form, for hashing: a whole number (an
    int, a float such as ``100.0``, a numpy integer or float) as a Python ``int``, any other
    finite number as a Python ``float`` (written as its shortest round-trip ``repr``),
    NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; tuples as
    lists, mapping keys as strings; booleans and strings unchanged::

        >>> canonical({"count": 100.0, "mean": np.float32(0.5), "edges": (1, 2.5)})
        {'count': 100, 'mean': 0.5, 'edges': [1, 2.5]}
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if x != x:
            return "NaN"
        if x in (float("inf"), float("-inf")):
            return "Infinity" if x > 0 else "-Infinity"
        return int(x) if x.is_integer() and abs(x) < 2 ** 53 else x
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [canonical(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (:func:`canonical`, sorted keys, no spaces): what
    :attr:`Baseline.digest` hashes."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


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
    #: 2 when the baseline has derived features, else 1 (set from the sections, whatever is
    #: passed: see :data:`SCHEMA_VERSION`)
    schema_version: int = 1
    metadata: Dict[str, Any] = field(default_factory=dict, compare=False)
    #: Optional reference values of the outcome monitors (see ``promdrift.instrumentation.
    #: outcomes``): validation-set quality per output, bias per facet, mean |attribution| per
    #: feature. Empty unless set by :meth:`with_quality`, :meth:`with_bias`,
    #: :meth:`with_attributions`; written to JSON only when set, so a baseline without them
    #: is byte-for-byte (and digest) what promdrift always wrote.
    quality: Dict[str, Dict[str, float]] = field(default_factory=dict, hash=False)
    bias: Dict[str, Any] = field(default_factory=dict, hash=False)
    attribution: Dict[str, float] = field(default_factory=dict, hash=False)
    #: The PCA of the numeric features (``fit(..., multivariate=True)``) and of the training
    #: embeddings (``fit(..., embeddings=matrix)``), each with the baselines of its derived
    #: features; ``None`` when not fitted. See docs/multivariate.md.
    multivariate: Optional[Multivariate] = field(default=None, hash=False)
    embedding: Optional[Embedding] = field(default=None, hash=False)

    def __post_init__(self) -> None:
        version = 2 if self.multivariate is not None or self.embedding is not None else 1
        object.__setattr__(self, "schema_version", version)

    # ----------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, data: Any, *, model: str = "model",
            categorical: Union[None, str, Iterable[str]] = None,
            predictions: Any = None,
            ignore: Union[None, str, Iterable[str]] = None,
            bins: int = 20, top_k: int = 50,
            names: Optional[Sequence[str]] = None,
            numeric: Union[None, str, Iterable[str]] = None,
            multivariate: Union[bool, int] = False, embeddings: Any = None,
            embedding_components: Optional[int] = None) -> "Baseline":
        """Fit a baseline on training data.

        ``data``: a dict of columns, a list of row dicts, a 2-D numpy array with ``names``,
        a numpy structured array or a pandas data frame. Columns listed in ``categorical`` or
        holding text (or booleans) are categorical (top ``top_k`` categories plus
        ``__other__``); all others numeric (``bins`` equal-mass quantile buckets), as are
        those listed in ``numeric``. ``predictions`` names the columns that are model outputs
        (a name or list of names), or gives them directly as a 1-D array (output
        ``prediction``) or a ``{output: values}`` dict. ``ignore`` lists columns to skip.

        Refused with a ``BaselineError`` naming every such column and the fix
        (``promdrift.instrumentation.training.checks``): a column without a name (pandas' index,
        ``Unnamed: 0``), of datetimes, timedeltas, bytes or nested values, or without a
        single valid value; duplicate names. A :class:`BaselineWarning` says when a numeric
        prediction output holds only a few integers (class indices: list it in
        ``categorical``, or in ``numeric`` to keep it numeric) or a text column holds dates.

        Derived features (docs/multivariate.md): ``multivariate=True`` fits a PCA of the
        numeric features (``k``, an int: that many components; default: enough for 90 % of
        the variance, at most 20); ``embeddings`` (a ``(rows, dim)`` matrix, one vector per
        training row; ``data`` may then be ``None`` for a model without other features)
        fits one of the embedding vectors, with ``embedding_components`` components.
        Feature and output names starting with ``__pca_`` or ``__emb_`` are reserved.
        """
        if not isinstance(model, str) or not model:
            raise BaselineError("model must be a non-empty string")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise BaselineError(f"bins must be an integer >= 2, got {bins!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise BaselineError(f"top_k must be an integer >= 1, got {top_k!r}")
        if isinstance(multivariate, bool):
            components: Any = None
        elif isinstance(multivariate, (int, np.integer)) and multivariate >= 1:
            components = int(multivariate)
        else:
            raise BaselineError(f"multivariate must be True, False or a number of components "
                                f">= 1, got {multivariate!r}")
        if embeddings is None and embedding_components is not None:
            raise BaselineError("embedding_components needs embeddings")
        if data is None and embeddings is not None:
            cols = {}
            nrows = _embedding_rows(embeddings)
        else:
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

        cat_names, ign_names, num_names = _names(categorical), _names(ignore), _names(numeric)
        both = sorted(set(cat_names) & set(num_names))
        if both:
            raise BaselineError(f"column(s) {both} listed as both categorical and numeric")
        known = set(cols) | set(pred_cols)
        for what, listed in (("categorical", cat_names), ("ignore", ign_names),
                             ("numeric", num_names), ("predictions", pred_names)):
            unknown = [n for n in listed if n not in known]
            if unknown:
                raise BaselineError(f"{what}: unknown column(s) {unknown}; "
                                    f"the data has {sorted(known)}")
        for n in pred_names:
            pred_cols[n] = cols.pop(n)
        for n in ign_names:
            cols.pop(n, None)
            pred_cols.pop(n, None)
        if not cols and embeddings is None:
            raise BaselineError("no feature columns left to fit")
        checks.refuse({**cols, **pred_cols}, num_names)
        reserved = [n for n in list(cols) + list(pred_cols) if is_reserved(n)]
        if reserved:
            raise BaselineError(f"column names {reserved} start with a prefix reserved for "
                                f"derived features (__pca_, __emb_): rename them")
        numeric_values: Dict[str, np.ndarray] = {}

        def fit_column(name: str, values: np.ndarray) -> Column:
            if name not in cat_names:
                if name in num_names and values.dtype.kind == "b":
                    values = values.astype(np.float64)
                num = numeric_column(values)
                if num is not None:
                    numeric_values[name] = num
                    return NumericColumn.fit(name, num, bins)
            return CategoricalColumn.fit(name, values, top_k)

        features = {n: fit_column(n, c) for n, c in cols.items()}
        outputs = {n: fit_column(n, c) for n, c in pred_cols.items()}
        checks.warn(features, outputs, pred_cols, cat_names, num_names)
        pca = None
        if multivariate is not False:
            pca = _fit_multivariate(tuple(features.values()), numeric_values, components, bins)
        emb = None
        if embeddings is not None:
            given = _embedding_rows(embeddings)
            if given != nrows:
                raise BaselineError(f"embeddings have {given} rows, the data has {nrows}: "
                                    f"give one vector per training row")
            emb = Embedding.fit(embeddings, n_components=embedding_components, bins=bins)
        return cls(model=model,
                   features=tuple(features.values()),
                   predictions=tuple(outputs.values()),
                   rows=nrows,
                   created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
                   .isoformat().replace("+00:00", "Z"),
                   metadata={"bins": int(bins), "top_k": int(top_k)},
                   multivariate=pca, embedding=emb)

    @classmethod
    def fit_csv(cls, path: str, *, progress: Any = None, delimiter: Optional[str] = None,
                **kwargs: Any) -> "Baseline":
        """:meth:`fit` on a CSV file with a header row (a progress line for large files).
        ``delimiter``: one character, detected from the first lines by default."""
        try:
            cols = read_csv(path, progress=progress, delimiter=delimiter)
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

    @property
    def derived(self) -> Tuple[NumericColumn, ...]:
        """The baselines of the derived features (multivariate, then embedding), counted as
        numeric features after the user's (empty without them)."""
        return tuple((self.multivariate.features if self.multivariate is not None else ())
                     + (self.embedding.features if self.embedding is not None else ()))

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
        """First 12 hex digits of the SHA-256 of the content in canonical JSON
        (:func:`canonical_json`; creation time and metadata excluded): a function of the
        content only, the same in memory, after :meth:`save` and :meth:`load`, and whatever
        the numpy version or the number types that built it. Every series a monitor exports
        carries it as the label ``baseline``."""
        d = self.to_dict()
        d.pop("created", None)
        d.pop("metadata", None)
        return hashlib.sha256(canonical_json(d).encode()).hexdigest()[:12]

    # ----------------------------------------------------------------- files
    def to_dict(self) -> Dict[str, Any]:
        d = {"kind": _KIND, "schema_version": self.schema_version, "model": self.model,
             "created": self.created, "rows": self.rows, "metadata": dict(self.metadata),
             "features": [c.to_dict() for c in self.features],
             "predictions": [c.to_dict() for c in self.predictions]}
        for key in ("quality", "bias", "attribution"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        for key in ("multivariate", "embedding"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key).to_dict()
        return d

    # ----------------------------------------------------------------- outcome references
    def with_quality(self, y_true: Any, y_pred: Any, output: Optional[str] = None) -> "Baseline":
        """A copy with the validation-set quality of one prediction output.

        Categorical outputs (classifiers) store ``accuracy`` and ``macro_f1``, numeric outputs
        (regressors) ``mae`` and ``rmse``, both with ``count``; ``promdrift_baseline_quality``
        exposes them and the quality alerts compare the live values with them.
        ``output`` defaults to the only prediction output.
        """
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
            feats = [column_from_dict(c, f"{source}: feature {i}")
                     for i, c in enumerate(d["features"])]
            preds = [column_from_dict(c, f"{source}: prediction {i}")
                     for i, c in enumerate(d.get("predictions", []))]
            model = d["model"]
        except (KeyError, TypeError) as e:
            raise BaselineError(f"{source}: malformed baseline ({type(e).__name__}: {e})") from None
        if not isinstance(model, str) or not model:
            raise BaselineError(f"{source}: model must be a non-empty string")
        sections = {key: d[key] for key in ("multivariate", "embedding") if key in d}
        if sections and version < 2:
            raise BaselineError(f"{source}: sections {sorted(sections)} need schema_version 2, "
                                f"the file says {version}")
        pca = (Multivariate.from_dict(sections["multivariate"], f"{source}: multivariate")
               if "multivariate" in sections else None)
        emb = (Embedding.from_dict(sections["embedding"], f"{source}: embedding")
               if "embedding" in sections else None)
        if not feats and emb is None:
            raise BaselineError(f"{source}: no features")
        if pca is not None:
            numeric = {c.name for c in feats if isinstance(c, NumericColumn)}
            unknown = [c for c in pca.columns if c not in numeric]
            if unknown:
                raise BaselineError(f"{source}: multivariate columns {unknown} are not numeric "
                                    f"features of the baseline")
        names = ([c.name for c in feats] + [c.name for c in preds]
                 + [c.name for m in (pca, emb) if m is not None for c in m.features])
        if len(set(names)) != len(names):
            raise BaselineError(f"{source}: duplicate feature or output names")
        quality = parse_quality_reference(d.get("quality"), preds, source)
        bias = parse_bias_reference(d.get("bias"), feats, preds, source)
        attribution = parse_attribution_reference(d.get("attribution"), feats, source)
        return cls(model=model, features=tuple(feats), predictions=tuple(preds),
                   rows=int(d.get("rows", 0)), created=str(d.get("created", "")),
                   schema_version=version, metadata=dict(d.get("metadata") or {}),
                   quality=quality, bias=bias, attribution=attribution,
                   multivariate=pca, embedding=emb)

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


def _embedding_rows(embeddings: Any) -> int:
    """Rows of an embedding matrix given without other training data."""
    try:
        n = len(embeddings)
    except TypeError:
        raise BaselineError("embeddings must be a (rows, dim) matrix of numbers") from None
    if n == 0:
        raise BaselineError("no training rows")
    return n


def _fit_multivariate(features: Sequence[Column], numeric: Mapping[str, np.ndarray],
                      components: Optional[int], bins: int) -> Multivariate:
    """The PCA of the numeric features (baseline order; NaN where a value is invalid)."""
    names = [c.name for c in features if isinstance(c, NumericColumn)]
    if len(names) < 2:
        raise BaselineError(f"multivariate needs at least 2 numeric features, the data has "
                            f"{len(names)} ({names})")
    model = Multivariate.fit(np.column_stack([numeric[n] for n in names]), names,
                             n_components=components, bins=bins)
    if len(model.columns) < 2:
        raise BaselineError(f"multivariate needs at least 2 numeric features that vary among "
                            f"the complete training rows; only {list(model.columns)} do")
    return model
