"""Multivariate and embedding drift: a standardisation and a PCA, plain numpy.

A univariate histogram cannot see a change in the joint structure of the inputs (two columns
that stop moving together keep their marginals). A principal component analysis of the
training rows can: a row that breaks the learned correlations is far from the subspace of
the leading components, so its **reconstruction error** grows. The fitted models here turn
every row (or embedding vector) into a few **derived numeric features**, counted like any
other numeric feature, with baseline histograms from the training rows::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=500)
    >>> train = np.column_stack([a, a + 0.1 * rng.normal(size=500), rng.normal(size=500)])
    >>> model = Multivariate.fit(train, ["a", "b", "c"], n_components=2)
    >>> model.names
    ['__pca_error__', '__pca_01__', '__pca_02__']
    >>> values, reasons = model.transform(np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0],
    ...                                             [np.nan, 0.0, 0.0]]))
    >>> values[:2, 0].round(2).tolist(), reasons.tolist()   # b no longer follows a: error
    ([0.0, 1.39], [-1, -1, 2])
    >>> Multivariate.from_dict(model.to_dict()) == model
    True

The derived feature names (reserved, see :func:`is_reserved`):

- ``__pca_error__``: Euclidean norm of the residual of the standardised row after projection
  on the ``k`` leading components (the reconstruction error of NannyML's data-reconstruction
  drift), ``__pca_01__`` … ``__pca_k__``: the component scores.
- ``__emb_error__``, ``__emb_norm__`` (Euclidean norm of the raw vector), ``__emb_cosine__``
  (cosine distance ``1 - cos(v, c)`` to the training centroid ``c``; 1 for a zero vector;
  left out when the centroid is the zero vector), ``__emb_01__`` …: the same for an
  embedding vector, centred but not scaled (its dimensions share one unit).

**Fitting.** Rows with a missing or non-finite value in any of the model's columns are left
out of the fit and counted as invalid in the derived baselines (never imputed). Tabular
columns are standardised with the training mean and population standard deviation; columns
constant in training carry no joint structure and are left out (their univariate histogram
still shows any change). The components are the eigenvectors of the covariance of the
standardised rows, each with its largest-magnitude entry made positive, so a refit on the
same rows writes the same file. ``n_components``: an int, or by default the fewest
components that explain 90 % of the variance, at most 20.

**Baseline histograms.** The component scores and the norm are binned from the training
rows themselves. The reconstruction error and the cosine distance are not: a PCA fitted on
some rows reconstructs exactly those rows better than new ones (and a centroid is closer to
the rows it averages), and with a large live window the KS test would see that difference as
drift. Their baseline values are **cross-fitted**: the complete training rows are split into
``folds`` folds by position (row ``i`` in fold ``i % folds``) and each fold's values come
from the same procedure fitted on the other folds. All bin edges and counts come from
``binning.quantile_edges`` / ``bin_counts`` (via ``NumericColumn.fit``), like every feature.

**Invalid rows.** A row whose inputs are not all finite numbers has no derived values; each
derived feature counts it as invalid with the reason of its invalid inputs (``REASONS`` of
``values``), the first in ``REASONS`` order when they differ (``missing`` before ``null``
before ``nan`` before ``inf`` before ``wrong_type``). An embedding that is not a 1-D
sequence of exactly ``dim`` numbers is ``wrong_type``; ``None`` is ``null``; ``values.ABSENT``
(no embedding given) is ``missing``; an element that
is NaN / ±inf / None / not a number gives ``nan`` / ``inf`` / ``null`` / ``wrong_type``
(first in ``REASONS`` order). Nothing here raises on a bad row or vector.

Row and batch transforms compute the same formulas, so they agree to floating-point rounding
(on the test data, within 3e-13 of the values' scale); they are not guaranteed bit-identical
(BLAS may sum in another order), so a value within that distance of a bucket edge can land on
either side of it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..values import ABSENT, INF, MISSING, NAN, NULL, REASONS, WRONG_TYPE
from .columns import BaselineError, NumericColumn, column_from_dict as _column_from_dict

__all__ = ["Multivariate", "Embedding", "Reconstruction", "is_reserved", "reason_name",
           "RESERVED_PREFIXES",
           "DEFAULT_VARIANCE", "MAX_DEFAULT_COMPONENTS", "FOLDS"]

#: Prefixes of the derived feature names; a user feature may not start with one of them.
PCA_PREFIX = "__pca_"
EMB_PREFIX = "__emb_"
RESERVED_PREFIXES = (PCA_PREFIX, EMB_PREFIX)
#: Share of the variance the default number of components explains (at least).
DEFAULT_VARIANCE = 0.9
#: The default number of components never exceeds this.
MAX_DEFAULT_COMPONENTS = 20
#: Folds of the cross-fitted baseline values (reconstruction error, cosine distance).
FOLDS = 10
#: Eigenvalues below this share of the largest are numerically zero (beyond the data's rank).
_RANK_TOL = 1e-10
#: A squared residual below this share of the squared norm is rounding noise: 0.
_RESIDUAL_TOL = 1e-10
#: Components must be orthonormal to this tolerance when a file is loaded.
_ORTHO_TOL = 1e-6
_VALID = len(REASONS)  # reason code of a valid input, above every real reason
_NUMBER_KINDS = "fiub"  # numpy kinds that are numbers (bools are 0/1, as for features)


def is_reserved(name: str) -> bool:
    """Whether ``name`` has a prefix reserved for derived features (``__pca_``, ``__emb_``).

        >>> is_reserved("__pca_error__"), is_reserved("__emb_07__"), is_reserved("age")
        (True, True, False)
    """
    return isinstance(name, str) and name.startswith(RESERVED_PREFIXES)


def _component_names(prefix: str, k: int) -> List[str]:
    width = max(2, len(str(k)))
    return [f"{prefix}{i:0{width}d}__" for i in range(1, k + 1)]


def _eigen(cov: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, negatives clipped to 0) and eigenvectors as rows, each with
    its largest-magnitude entry positive (the first such entry on ties)."""
    w, v = np.linalg.eigh(cov)
    w = np.clip(w[::-1], 0.0, None)
    vt = np.ascontiguousarray(v[:, ::-1].T)
    sign = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    sign[sign == 0] = 1.0
    return w, vt * sign[:, None]


def _choose_k(eigenvalues: np.ndarray, n_components: Any) -> int:
    total = float(eigenvalues.sum())
    rank = int(np.count_nonzero(eigenvalues > _RANK_TOL * eigenvalues[0])) if total > 0 else 0
    if rank == 0:
        raise BaselineError("the training rows have no variance: no component to fit")
    if n_components is None:
        ratio = np.cumsum(eigenvalues) / total
        k = int(np.searchsorted(ratio, DEFAULT_VARIANCE - 1e-12) + 1)
        return min(k, MAX_DEFAULT_COMPONENTS, rank)
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise BaselineError(f"n_components must be an integer or None, got {n_components!r}")
    k = int(n_components)
    if k < 1:
        raise BaselineError(f"n_components must be at least 1, got {k}")
    if k > rank:
        raise BaselineError(f"n_components={k} but the training rows span only {rank} "
                            f"dimension(s) (of {len(eigenvalues)}): choose at most {rank}")
    return k


def _matrix(data: Any, what: str) -> np.ndarray:
    """A float64 2-D array of ``data`` (None as NaN); ``BaselineError`` for anything else."""
    try:
        x = np.asarray(data)
    except Exception as e:  # ragged lists and the like
        raise BaselineError(f"{what}: not a 2-D array of numbers ({e})") from None
    if x.ndim != 2:
        raise BaselineError(f"{what}: expected a 2-D array (rows x columns), "
                            f"got {x.ndim} dimension(s)")
    if x.dtype.kind == "O":
        flat = x.ravel().tolist()
        bad = [v for v in flat if v is not None and not isinstance(
            v, (int, float, np.integer, np.floating))]
        if bad:
            raise BaselineError(f"{what}: holds values that are not numbers, e.g. {bad[0]!r}")
        try:
            return np.array([np.nan if v is None else float(v) for v in flat],
                            dtype=np.float64).reshape(x.shape)
        except OverflowError:
            raise BaselineError(f"{what}: holds an integer too large for a float") from None
    if x.dtype.kind not in _NUMBER_KINDS:
        raise BaselineError(f"{what}: holds {x.dtype} values, not numbers")
    return np.asarray(x, dtype=np.float64)


def _pca(cov: np.ndarray, scaled: bool, n_components: Any = None, k: Optional[int] = None,
         std_ref: Optional[np.ndarray] = None
         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """scale, components (k, dim), their variances and the total variance of a covariance.

    ``scaled``: standardise (PCA of the correlation matrix). A column whose standard
    deviation is not above ``1e-9 * std_ref`` (rounding noise of a column constant in these
    rows) keeps scale 1."""
    if scaled:
        std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        ref = std if std_ref is None else std_ref
        scale = np.where(std > 1e-9 * ref, std, 1.0)
        cov = cov / np.outer(scale, scale)
    else:
        scale = np.ones(len(cov))
    w, vt = _eigen(cov)
    if k is None:
        k = _choose_k(w, n_components)
    return scale, vt[:k], w[:k], float(np.trace(cov))


class Reconstruction:
    """A fitted standardisation and PCA, and the baselines of its derived features. Use a
    subclass: :class:`Multivariate` (tabular rows) or :class:`Embedding` (vectors)."""

    prefix = ""
    kind = ""
    _scaled = True
    #: Derived values before the component scores (the error; for embeddings also more).
    _n_lead = 1

    def __init__(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray,
                 explained_variance: np.ndarray, total_variance: float,
                 features: Sequence[NumericColumn] = (), folds: int = FOLDS):
        self.mean = np.ascontiguousarray(mean, dtype=np.float64)
        self.scale = np.ascontiguousarray(scale, dtype=np.float64)
        self.components = np.ascontiguousarray(components, dtype=np.float64)
        self.explained_variance = np.asarray(explained_variance, dtype=np.float64)
        self.total_variance = float(total_variance)
        #: Baselines of the derived features, in :attr:`names` order.
        self.features: Tuple[NumericColumn, ...] = tuple(features)
        #: Folds of the cross-fitted baseline values.
        self.folds = int(folds)
        self._inv_scale = 1.0 / self.scale
        self._setup()

    def _setup(self) -> None:
        """Precomputed matrices of the transforms: one matrix-vector product gives the row's
        output with the component scores in place (leading rows: zeros here)."""
        lead = self._n_lead
        self._mt = np.zeros((lead + self.n_components, self.dim))
        self._mt[lead:] = self.components
        self._chunk = max(64, (1 << 20) // max(self.dim, 1))  # rows per batch step (~8 MB)

    # ------------------------------------------------------------------ description
    @property
    def dim(self) -> int:
        """Number of inputs (columns, or embedding dimensions)."""
        return int(self.mean.shape[0])

    @property
    def n_components(self) -> int:
        """Number of principal components (one ``…_NN__`` score feature each)."""
        return int(self.components.shape[0])

    @property
    def explained_ratio(self) -> float:
        """Share of the training variance the components explain."""
        return float(self.explained_variance.sum() / self.total_variance)

    @property
    def names(self) -> List[str]:
        """The derived feature names, in the column order of :meth:`transform`."""
        return self._leading_names() + _component_names(self.prefix, self.n_components)

    def _leading_names(self) -> List[str]:
        return [f"{self.prefix}error__"]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dim={self.dim}, n_components={self.n_components}, "
                f"explained={self.explained_ratio:.3f})")

    # ------------------------------------------------------------------ transform
    def _derive(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Derived values of rows ``x`` (n, dim) and whether each row was finite (the
        squared norm is NaN or inf otherwise; such rows' values are meaningless)."""
        z = x - self.mean
        z *= self._inv_scale
        r = np.dot(z, self._mt.T)
        zz = np.einsum("ij,ij->i", z, z)
        e2 = zz - np.einsum("ij,ij->i", r, r)
        r[:, 0] = np.sqrt(np.where(e2 > _RESIDUAL_TOL * zz, e2, 0.0))
        return r, np.isfinite(zz)

    def transform(self, x: Any, reasons: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
        """Derived values of a batch: ``(values, reasons)``.

        ``x``: ``(rows, dim)`` numbers, NaN or ±inf where an input is invalid.
        ``reasons``: optional ``(rows, dim)`` integer codes of ``REASONS`` for inputs the
        caller already knows to be invalid (missing, null, wrong type: stored as NaN in
        ``x``), -1 elsewhere; or ``(rows,)`` codes of whole rows. Returns ``values``
        ``(rows, len(names))``, NaN in invalid rows, and ``reasons`` ``(rows,)``: -1 for a
        valid row, else the row's first reason in ``REASONS`` order (``inf`` for a row of
        finite numbers so large that its squared norm overflows). ``ValueError`` if ``x``
        does not have ``dim`` columns.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of {self.dim} values, got shape {x.shape}")
        n, step = len(x), self._chunk
        with np.errstate(all="ignore"):  # invalid rows are found from the result
            if n <= step:
                values, ok = self._derive(x)
            else:
                values = np.empty((n, self._n_lead + self.n_components))
                ok = np.empty(n, dtype=bool)
                for s in range(0, n, step):
                    values[s:s + step], ok[s:s + step] = self._derive(x[s:s + step])
        out_reasons = np.full(n, -1, dtype=np.int64)
        if not ok.all():
            bad = ~ok
            values[bad] = np.nan
            xb = x[bad]
            codes = np.where(np.isnan(xb), NAN, np.where(np.isinf(xb), INF, _VALID))
            if reasons is not None:
                given = np.asarray(reasons)[bad]
                if given.ndim == 1:
                    given = given[:, None]
                codes = np.where(given >= 0, given, codes)
            worst = codes.min(axis=1)
            out_reasons[bad] = np.where(worst == _VALID, INF, worst)
        return values, out_reasons

    def transform_row(self, x: np.ndarray) -> Optional[np.ndarray]:
        """Derived values of one row (a 1-D float64 array of ``dim`` values), in
        :attr:`names` order; ``None`` when the row has a NaN / ±inf or numbers so large that
        its squared norm overflows (the caller counts it invalid, see :meth:`transform`)."""
        z = x - self.mean
        z *= self._inv_scale
        zz = float(np.vdot(z, z))  # vdot: no overflow warning, the check follows
        if not math.isfinite(zz):
            return None
        r = np.dot(self._mt, z)
        e2 = zz - float(np.vdot(r, r))
        r[0] = math.sqrt(e2) if e2 > _RESIDUAL_TOL * zz else 0.0
        return r

    # ------------------------------------------------------------------ fitting
    def _fold_model(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray
                    ) -> "Reconstruction":
        """A model of the same kind and derived names with other parameters (cross-fitting)."""
        raise NotImplementedError

    @classmethod
    def _fit_matrix(cls, x: np.ndarray, n_components: Any, bins: int, folds: Any,
                    build: Any) -> Any:
        """Fit on the complete rows of ``x``; ``build(mean, scale, components, variances,
        total, features, folds)`` makes the model; derived baselines over every row of
        ``x`` (rows left out count as invalid)."""
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
            raise BaselineError(f"folds must be an integer >= 2, got {folds!r}")
        complete = np.flatnonzero(np.isfinite(x).all(axis=1))
        xc = x if len(complete) == len(x) else x[complete]
        n = len(xc)
        if n < 2:
            raise BaselineError(f"need at least 2 training rows without missing or invalid "
                                f"values, got {n} of {len(x)}")
        # One pass of sufficient statistics per fold (rows f, f + folds, ...), shifted by the
        # mean so that nothing cancels; the model and every fold's complement derive from
        # them. Memory: one fold's rows at a time and one dim x dim matrix per fold.
        folds = min(int(folds), n)
        mean = xc.mean(axis=0)
        stats = []
        for f in range(folds):
            yf = xc[f::folds] - mean
            stats.append((len(yf), yf.sum(axis=0), yf.T @ yf))
        s = sum(st[1] for st in stats)
        q = sum(st[2] for st in stats)
        m = s / n
        scale, comps, ev, tv = _pca(q / n - np.outer(m, m), cls._scaled, n_components)
        model = build(mean + m, scale, comps, ev, tv, (), folds)
        values = np.full((len(x), len(model.names)), np.nan)
        values[complete] = model.transform(xc)[0]
        lead = model._n_lead
        for f, (nf, sf, qf) in enumerate(stats):
            nc = n - nf
            d = (s - sf) / nc
            f_scale, f_comps, _, _ = _pca((q - qf) / nc - np.outer(d, d), cls._scaled,
                                          k=len(comps), std_ref=scale)
            f_model = model._fold_model(mean + d, f_scale, f_comps)
            values[complete[f::folds], :lead] = f_model.transform(xc[f::folds])[0][:, :lead]
        features = [NumericColumn.fit(name, values[:, j], bins)
                    for j, name in enumerate(model.names)]
        return build(mean + m, scale, comps, ev, tv, features, folds)

    # ------------------------------------------------------------------ files
    def _common_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(),
                "explained_variance": self.explained_variance.tolist(),
                "total_variance": self.total_variance, "folds": self.folds,
                "features": [c.to_dict() for c in self.features]}

    @classmethod
    def _common_from_dict(cls, d: Mapping[str, Any], where: str, dim: int
                          ) -> Dict[str, Any]:
        mean = np.array(d["mean"], dtype=np.float64)
        comps = np.array(d["components"], dtype=np.float64)
        ev = np.array(d["explained_variance"], dtype=np.float64)
        tv = float(d["total_variance"])
        folds = d["folds"]
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise BaselineError(f"{where}: folds must be an integer >= 2, got {folds!r}")
        if mean.shape != (dim,):
            raise BaselineError(f"{where}: mean has shape {mean.shape}, expected ({dim},)")
        if comps.ndim != 2 or comps.shape[1] != dim or comps.shape[0] < 1:
            raise BaselineError(f"{where}: components have shape {comps.shape}, expected "
                                f"(k, {dim}) with k >= 1")
        if ev.shape != (comps.shape[0],):
            raise BaselineError(f"{where}: {ev.size} explained variances for "
                                f"{comps.shape[0]} components")
        if not all(np.isfinite(a).all() for a in (mean, comps, ev)) or not math.isfinite(tv) \
                or (ev < 0).any() or tv <= 0:
            raise BaselineError(f"{where}: values must be finite, variances non-negative "
                                f"and the total variance positive")
        if np.abs(comps @ comps.T - np.eye(len(comps))).max() > _ORTHO_TOL:
            raise BaselineError(f"{where}: components are not orthonormal")
        feats = d["features"]
        if not isinstance(feats, list):
            raise BaselineError(f"{where}: features must be a list")
        return {"mean": mean, "components": comps, "explained_variance": ev,
                "total_variance": tv, "folds": folds,
                "features": tuple(_column_from_dict(c, f"{where}: feature {i}")
                                  for i, c in enumerate(feats))}

    def _check_features(self, where: str) -> None:
        got = [c.name for c in self.features]
        if got != self.names or not all(isinstance(c, NumericColumn) for c in self.features):
            raise BaselineError(f"{where}: derived features {got}, expected numeric "
                                f"features {self.names}")


def _loaded(cls: Any, d: Any, where: str, read: Any) -> Any:
    """``read(d)`` with malformed input turned into a ``BaselineError`` naming ``where``."""
    try:
        if not isinstance(d, Mapping) or d.get("kind") != cls.kind:
            raise BaselineError(f"{where}: not a {cls.__name__} model "
                                f"(no \"kind\": \"{cls.kind}\")")
        model = read(d)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BaselineError):
            raise
        raise BaselineError(f"{where}: malformed ({type(e).__name__}: {e})") from None
    model._check_features(where)
    return model


class Multivariate(Reconstruction):
    """Standardisation and PCA of a model's numeric features (tabular rows).

        >>> import numpy as np
        >>> x = np.array([[1.0, 2.0, 5.0], [2.0, 4.1, 5.0], [3.0, 5.9, 5.0], [4.0, 8.0, 5.0],
        ...               [np.nan, 1.0, 5.0]])
        >>> m = Multivariate.fit(x, ["a", "b", "const"], bins=2)
        >>> m.columns, m.n_components, m.names   # "const" has no variance: left out
        (('a', 'b'), 1, ['__pca_error__', '__pca_01__'])
        >>> [(c.count, c.invalid) for c in m.features]   # the row with NaN is not fitted
        [(4, 1), (4, 1)]
        >>> m.transform_row(np.array([2.5, 5.0])).round(3).tolist()
        [0.0, 0.0]

    :meth:`fit` takes the training matrix with one column per name in ``columns``; the model
    keeps the columns that vary among the complete training rows (:attr:`columns`), and
    :meth:`transform` / :meth:`transform_row` take rows of exactly those columns, in that
    order.
    """

    prefix = PCA_PREFIX
    kind = "pca"

    def __init__(self, columns: Sequence[str], mean: np.ndarray, scale: np.ndarray,
                 components: np.ndarray, explained_variance: np.ndarray,
                 total_variance: float, features: Sequence[NumericColumn] = (),
                 folds: int = FOLDS):
        super().__init__(mean, scale, components, explained_variance, total_variance,
                         features, folds)
        #: The input columns, in the order of :meth:`transform`'s columns.
        self.columns: Tuple[str, ...] = tuple(columns)

    @classmethod
    def fit(cls, data: Any, columns: Sequence[str], *, n_components: Any = None,
            bins: int = 20, folds: int = FOLDS) -> "Multivariate":
        """Fit on a ``(rows, len(columns))`` matrix of numbers (NaN / ±inf / None where a
        value is missing or invalid: such rows are left out and counted invalid).

        ``n_components``: an int, or ``None`` for the fewest components explaining 90 % of
        the standardised variance (at most 20). ``bins``: of the derived histograms.
        ``folds``: of the cross-fitted error baseline.
        """
        columns = [str(c) for c in columns]
        x = _matrix(data, "multivariate training data")
        if x.shape[1] != len(columns):
            raise BaselineError(f"multivariate training data has {x.shape[1]} columns for "
                                f"{len(columns)} names")
        if len(set(columns)) != len(columns):
            raise BaselineError("multivariate columns: duplicate names")
        # Keep the columns that vary among the rows complete in the kept columns (leaving a
        # column out can complete more rows, hence the loop; it only ever drops columns).
        keep = list(range(len(columns)))
        while keep:
            rows = x[:, keep][np.isfinite(x[:, keep]).all(axis=1)]
            varies = [j for j, col in zip(keep, rows.T) if col.size and col.min() < col.max()]
            if varies == keep:
                break
            keep = varies
        if not keep:
            raise BaselineError(f"multivariate: no column of {columns} varies among the "
                                f"training rows without missing or invalid values")
        names = tuple(columns[j] for j in keep)

        def build(mean: np.ndarray, scale: np.ndarray, comps: np.ndarray, ev: np.ndarray,
                  tv: float, features: Sequence[NumericColumn], f: int) -> "Multivariate":
            return cls(names, mean, scale, comps, ev, tv, features, f)

        return cls._fit_matrix(x[:, keep], n_components, bins, folds, build)

    def _fold_model(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray
                    ) -> "Multivariate":
        return Multivariate(self.columns, mean, scale, components,
                            self.explained_variance, self.total_variance)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able dict (floats round-trip exactly); :meth:`from_dict` reads it."""
        return {"kind": self.kind, "columns": list(self.columns), **self._common_dict(),
                "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: Any, where: str = "multivariate") -> "Multivariate":
        """Read :meth:`to_dict`'s output (``BaselineError`` naming what is wrong)."""
        def read(d: Mapping[str, Any]) -> "Multivariate":
            columns = d["columns"]
            if not isinstance(columns, list) or not columns \
                    or not all(isinstance(c, str) for c in columns) \
                    or len(set(columns)) != len(columns):
                raise BaselineError(f"{where}: columns must be a list of distinct strings")
            parts = cls._common_from_dict(d, where, len(columns))
            scale = np.array(d["scale"], dtype=np.float64)
            if scale.shape != (len(columns),) or not (np.isfinite(scale) & (scale > 0)).all():
                raise BaselineError(f"{where}: scale must be {len(columns)} positive numbers")
            return cls(columns, parts["mean"], scale, parts["components"],
                       parts["explained_variance"], parts["total_variance"],
                       parts["features"], parts["folds"])
        return _loaded(cls, d, where, read)


class Embedding(Reconstruction):
    """PCA of embedding vectors, their norm and their cosine distance to the training
    centroid.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> train = rng.normal(size=(300, 8)) + 3.0
        >>> e = Embedding.fit(train, n_components=2)
        >>> e.dim, e.names
        (8, ['__emb_error__', '__emb_norm__', '__emb_cosine__', '__emb_01__', '__emb_02__'])
        >>> values, reason = e.transform_vector(train[0].tolist())
        >>> values.round(2).tolist(), reason
        ([1.73, 9.61, 0.01, 0.73, 0.34], -1)
        >>> e.transform_vector([1.0] * 7), e.transform_vector(None)   # wrong length, null
        ((None, 4), (None, 1))
        >>> values, reasons = e.transform_vectors([train[0], [float("nan")] * 8, "x"])
        >>> reasons.tolist()    # valid, nan, wrong_type
        [-1, 2, 4]

    Vectors are centred on the training mean but not scaled: the dimensions of an embedding
    share one unit, and scaling would blow up dimensions that hardly vary. The cosine
    distance is left out when the training centroid is (up to rounding) the zero vector, as
    for embeddings that were centred before: it would measure noise.
    """

    prefix = EMB_PREFIX
    kind = "embedding"
    _scaled = False

    def __init__(self, mean: np.ndarray, components: np.ndarray,
                 explained_variance: np.ndarray, total_variance: float,
                 features: Sequence[NumericColumn] = (), folds: int = FOLDS,
                 cosine: Optional[bool] = None):
        mean = np.ascontiguousarray(mean, dtype=np.float64)
        self._mm = float(mean @ mean)
        self._centroid_norm = math.sqrt(self._mm)
        if cosine is None:
            cosine = self._mm > _CENTROID_TOL * float(total_variance)
        self._cosine = bool(cosine)
        self._n_lead = 3 if self._cosine else 2
        super().__init__(mean, np.ones_like(mean), components, explained_variance,
                         total_variance, features, folds)

    def _setup(self) -> None:
        # Raw vectors go into the product: row 0 gives x . mean (for the centred squared
        # norm and the cosine), the score rows give x @ components.T, minus mean's scores.
        super()._setup()
        self._mt[0] = self.mean
        self._b = np.zeros(len(self._mt))
        self._b[self._n_lead:] = self.components @ self.mean

    def _leading_names(self) -> List[str]:
        return [f"{self.prefix}error__", f"{self.prefix}norm__"] + (
            [f"{self.prefix}cosine__"] if self._cosine else [])

    def _derive(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        r = np.dot(x, self._mt.T)
        r -= self._b
        xx = np.einsum("ij,ij->i", x, x)
        xmu = r[:, 0].copy()
        zz = xx - 2.0 * xmu + self._mm
        scores = r[:, self._n_lead:]
        e2 = zz - np.einsum("ij,ij->i", scores, scores)
        r[:, 0] = np.sqrt(np.where(e2 > _RESIDUAL_TOL * (xx + self._mm), e2, 0.0))
        r[:, 1] = norm = np.sqrt(xx)
        if self._cosine:
            positive = norm > 0
            r[:, 2] = 1.0 - np.where(positive, xmu / np.where(positive, norm, 1.0)
                                     / self._centroid_norm, 0.0)
        return r, np.isfinite(xx)

    def transform_row(self, x: np.ndarray) -> Optional[np.ndarray]:
        xx = float(np.vdot(x, x))  # vdot: no overflow warning, the check follows
        if not math.isfinite(xx):
            return None
        r = np.dot(self._mt, x)
        r -= self._b
        xmu = float(r[0])
        scores = r[self._n_lead:]
        e2 = xx - 2.0 * xmu + self._mm - float(np.vdot(scores, scores))
        r[0] = math.sqrt(e2) if e2 > _RESIDUAL_TOL * (xx + self._mm) else 0.0
        r[1] = norm = math.sqrt(xx)
        if self._cosine:
            r[2] = 1.0 - (xmu / norm / self._centroid_norm if norm > 0 else 0.0)
        return r

    def transform_vector(self, value: Any) -> Tuple[Optional[np.ndarray], int]:
        """Derived values of one embedding: ``(values, -1)``, or ``(None, reason)`` with a
        ``REASONS`` code when ``value`` is not a 1-D sequence of :attr:`dim` finite numbers
        (see the module's documentation). Never raises."""
        try:
            x, reason = self._vector(value)
            if reason >= 0:
                return None, reason
            r = self.transform_row(x)
            if r is None:  # NaN / inf somewhere, or a squared norm beyond float range
                return None, NAN if np.isnan(x).any() else INF
            return r, -1
        except Exception:
            return None, WRONG_TYPE

    def _vector(self, value: Any) -> Tuple[Optional[np.ndarray], int]:
        """A float64 vector of the right length (not yet checked for NaN / inf), or a
        reason."""
        if type(value) is np.ndarray:
            a = value
        elif value is None:
            return None, NULL
        elif value is ABSENT:
            return None, MISSING
        elif isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
            return None, WRONG_TYPE
        else:
            a = np.asarray(value)
        if a.ndim != 1 or a.shape[0] != self.dim:
            return None, WRONG_TYPE
        if a.dtype != np.float64:
            kind = a.dtype.kind
            if kind == "O":
                return _object_vector(a)
            if kind not in _NUMBER_KINDS:
                return None, WRONG_TYPE
            a = a.astype(np.float64)
        return a, -1

    def transform_vectors(self, values: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Derived values of a batch of embeddings (a 2-D array, or a sequence of vectors):
        ``(values, reasons)`` as :meth:`transform` returns them, one row per vector. Never
        raises; a ``values`` that is not a sequence at all is one ``wrong_type`` row."""
        try:
            x, reasons = self._vectors(values)
        except Exception:
            x, reasons = np.full((1, self.dim), np.nan), np.array([WRONG_TYPE])
        return self.transform(x, reasons)

    def _vectors(self, values: Any) -> Tuple[np.ndarray, np.ndarray]:
        if type(values) is np.ndarray and values.ndim == 2 \
                and values.dtype.kind in _NUMBER_KINDS:
            n = len(values)
            if values.shape[1] != self.dim:
                return np.full((n, self.dim), np.nan), np.full(n, WRONG_TYPE, dtype=np.int64)
            return np.asarray(values, dtype=np.float64), np.full(n, -1, dtype=np.int64)
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
            raise TypeError("not a sequence of vectors")
        x = np.full((len(values), self.dim), np.nan)
        reasons = np.full(len(values), -1, dtype=np.int64)
        for i, v in enumerate(values):
            try:
                a, r = self._vector(v)
            except Exception:
                a, r = None, WRONG_TYPE
            if r < 0:
                x[i] = a
            else:
                reasons[i] = r
        return x, reasons

    @classmethod
    def fit(cls, data: Any, *, n_components: Any = None, bins: int = 20,
            folds: int = FOLDS) -> "Embedding":
        """Fit on a ``(rows, dim)`` matrix of training vectors (rows with a NaN / ±inf are
        left out and counted invalid). ``n_components`` as for :meth:`Multivariate.fit`
        (the default explains 90 % of the total variance, at most 20 components)."""
        x = _matrix(data, "embedding training data")
        if x.shape[1] < 1:
            raise BaselineError("embedding training data has no dimensions")

        def build(mean: np.ndarray, scale: np.ndarray, comps: np.ndarray, ev: np.ndarray,
                  tv: float, features: Sequence[NumericColumn], f: int) -> "Embedding":
            return cls(mean, comps, ev, tv, features, f)

        return cls._fit_matrix(x, n_components, bins, folds, build)

    def _fold_model(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray
                    ) -> "Embedding":
        return Embedding(mean, components, self.explained_variance, self.total_variance,
                         cosine=self._cosine)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-able dict (floats round-trip exactly); :meth:`from_dict` reads it."""
        return {"kind": self.kind, "dim": self.dim, **self._common_dict()}

    @classmethod
    def from_dict(cls, d: Any, where: str = "embedding") -> "Embedding":
        """Read :meth:`to_dict`'s output (``BaselineError`` naming what is wrong)."""
        def read(d: Mapping[str, Any]) -> "Embedding":
            dim = d["dim"]
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                raise BaselineError(f"{where}: dim must be a positive integer, got {dim!r}")
            parts = cls._common_from_dict(d, where, dim)
            return cls(parts["mean"], parts["components"], parts["explained_variance"],
                       parts["total_variance"], parts["features"], parts["folds"])
        return _loaded(cls, d, where, read)


#: The cosine distance is left out when the squared centroid norm is below this share of
#: the total variance (embeddings centred before fitting: the centroid is rounding noise).
_CENTROID_TOL = 1e-12


def _object_vector(a: np.ndarray) -> Tuple[Optional[np.ndarray], int]:
    """A 1-D object array checked element by element (None, non-numbers, huge integers)."""
    out = np.empty(len(a))
    reason = _VALID
    for i, v in enumerate(a.tolist()):
        if v is None:
            r = NULL
        elif isinstance(v, (int, float, np.integer, np.floating)):  # bool is an int
            try:
                out[i] = f = float(v)
            except OverflowError:
                r = INF
            else:
                r = _VALID if math.isfinite(f) else (NAN if math.isnan(f) else INF)
        else:
            r = WRONG_TYPE
        reason = min(reason, r)
    return (out, -1) if reason == _VALID else (None, reason)


def reason_name(code: int) -> str:
    """The ``reason`` label of a code returned by :meth:`Reconstruction.transform` or
    :meth:`Embedding.transform_vector`.

        >>> reason_name(NULL), reason_name(WRONG_TYPE)
        ('null', 'wrong_type')
    """
    return REASONS[code]
