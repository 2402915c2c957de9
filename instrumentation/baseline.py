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
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .attribution import attribution_reference, parse_attribution_reference
from .bias import bias_reference, parse_bias_reference
from .columns import (OTHER, BaselineError, CategoricalColumn, Column, NumericColumn,
                      category_key, column_from_dict)
from .files import atomic_write
from .quality import parse_quality_reference, quality_reference
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
_KIND = "promdrift-baseline"


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
        if not feats:
            raise BaselineError(f"{source}: no features")
        names = [c.name for c in feats] + [c.name for c in preds]
        if len(set(names)) != len(names):
            raise BaselineError(f"{source}: duplicate feature or output names")
        quality = parse_quality_reference(d.get("quality"), preds, source)
        bias = parse_bias_reference(d.get("bias"), feats, preds, source)
        attribution = parse_attribution_reference(d.get("attribution"), feats, source)
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
