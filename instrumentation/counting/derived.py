"""The derived numeric features of a monitored model (docs/multivariate.md): where they sit in
its numeric block and how a row, a batch or the deferred rows of the store get their values.

A baseline fitted with ``multivariate=`` or ``embeddings=`` carries a
:class:`~promdrift.instrumentation.training.multivariate.Multivariate` or
:class:`~promdrift.instrumentation.training.multivariate.Embedding` model. Their derived features are
counted as numeric features right after the user's numeric features (and before the numeric
prediction outputs), so every rule, alert, dashboard and the landing page cover them::

    >>> import numpy as np
    >>> from promdrift.instrumentation import Baseline
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=300)
    >>> b = Baseline.fit({"a": a, "b": a + 0.1 * rng.normal(size=300)}, multivariate=1,
    ...                  bins=4)
    >>> d = Derived(b, ["a", "b"])
    >>> d.names, d.start
    (['__pca_error__', '__pca_01__'], 2)
    >>> values, bad = d.row(np.array([1.0, -1.0]), None, ABSENT)
    >>> values.round(2).tolist(), bad             # b no longer follows a: a large error
    ([1.38, 0.06], [])
    >>> d.row(np.array([1.0, np.nan]), [-1, 1], ABSENT)[1]   # b was None: null
    [(2, 1), (3, 1)]

A row's derived values exist only when every input is a finite number; otherwise each
derived feature of the group counts one invalid value with the first reason (in ``REASONS``
order) of the invalid inputs. Embeddings: ``ABSENT`` (none given) is ``missing``; a vector
is judged by ``Embedding.transform_vector``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..training.multivariate import Embedding, Multivariate
from ..values import ABSENT, INF, MISSING, NAN, REASONS, VALID

__all__ = ["Derived", "ABSENT"]

_VALID_CODE = len(REASONS)  # above every reason: the minimum over inputs is the first reason


class Derived:
    """The derived columns of one baseline, given the names of its user numeric features in
    the order of the numeric block (``start`` is their number: the first derived column).

    Groups: the multivariate model's features (``__pca_error__``, ``__pca_01__`` ...), then
    the embedding model's (``__emb_error__``, ...). :meth:`row` and :meth:`batch` return the
    values in :attr:`names` order and the invalid ones as ``(block column, reason)`` pairs
    or per-group reason arrays.
    """

    def __init__(self, baseline: Any, user_numeric: Sequence[str]):
        self.pca: Optional[Multivariate] = baseline.multivariate
        self.emb: Optional[Embedding] = baseline.embedding
        self.start = len(user_numeric)
        pos = {n: i for i, n in enumerate(user_numeric)}
        self.n_pca = len(self.pca.names) if self.pca is not None else 0
        self.n_emb = len(self.emb.names) if self.emb is not None else 0
        #: number of derived columns
        self.count = self.n_pca + self.n_emb
        self.names: List[str] = ((self.pca.names if self.pca is not None else [])
                                 + (self.emb.names if self.emb is not None else []))
        if self.pca is not None:
            missing = [c for c in self.pca.columns if c not in pos]
            if missing:
                raise ValueError(f"multivariate columns {missing} are not numeric features "
                                 f"of the baseline")
            self.pca_in = np.array([pos[c] for c in self.pca.columns], dtype=np.intp)
            #: the inputs are the user numeric columns themselves, in order: a slice
            self._pca_slice = (slice(0, self.start)
                               if self.pca_in.tolist() == list(range(self.start)) else None)

    # ------------------------------------------------------------------ one row
    def _pca_input(self, x: np.ndarray) -> np.ndarray:
        return x[self._pca_slice] if self._pca_slice is not None else x[self.pca_in]

    def row(self, x: np.ndarray, codes: Optional[Sequence[int]], embedding: Any
            ) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """Derived values of one row and its invalid derived columns.

        ``x``: the row's numeric block up to at least :attr:`start` (the user numeric
        features; NaN / ±inf where invalid), ``codes``: ``None`` when every user numeric
        value is a number, else one ``REASONS`` code per user numeric column for the values
        that are not numbers at all (``x`` holds NaN there), -1 elsewhere (NaN and ±inf are
        read from ``x``).
        ``embedding``: the row's vector, or ``ABSENT``. Returns ``values`` (:attr:`count`,
        NaN where invalid) and ``[(block column, reason)]`` of the invalid ones.
        """
        out = np.empty(self.count)
        bad: List[Tuple[int, int]] = []
        if self.pca is not None:
            xi = self._pca_input(x)
            values = self.pca.transform_row(xi)  # None unless every input is finite
            if values is None:
                given = (np.asarray(codes)[self.pca_in] if codes is not None
                         else np.full(len(xi), -1))
                reason = _first_reason(xi, given)
                if reason == VALID:  # finite numbers whose squared norm is beyond range
                    reason = INF
            if values is None:
                out[:self.n_pca] = np.nan
                bad += [(self.start + j, reason) for j in range(self.n_pca)]
            else:
                out[:self.n_pca] = values
        if self.emb is not None:
            values, reason = ((None, MISSING) if embedding is ABSENT
                              else self.emb.transform_vector(embedding))
            lo = self.n_pca
            if values is None:
                out[lo:] = np.nan
                bad += [(self.start + lo + j, reason) for j in range(self.n_emb)]
            else:
                out[lo:] = values
        return out, bad

    # ------------------------------------------------------------------ batches
    def batch(self, x: np.ndarray, codes: Optional[np.ndarray], embeddings: Any
              ) -> Tuple[np.ndarray, List[Tuple[int, int, np.ndarray]]]:
        """Derived values of a batch: ``x`` ``(rows, >= start)`` (NaN / ±inf where invalid),
        ``codes`` ``None`` or ``(rows, start)`` reason codes of the user numeric values that
        are not numbers at all (-1 elsewhere), ``embeddings`` a batch of vectors (one per
        row) or ``ABSENT``. Returns ``values`` ``(rows, count)`` and, per group, ``(first
        block column, columns, reasons)`` with ``reasons`` ``(rows,)``: -1 or a reason."""
        n = len(x)
        out = np.empty((n, self.count))
        groups: List[Tuple[int, int, np.ndarray]] = []
        if self.pca is not None:
            given = codes[:, self.pca_in] if codes is not None else None
            xi = x[:, self._pca_slice] if self._pca_slice is not None else x[:, self.pca_in]
            values, reasons = self.pca.transform(xi, given)
            out[:, :self.n_pca] = values
            groups.append((self.start, self.n_pca, reasons))
        if self.emb is not None:
            if embeddings is ABSENT:
                values = np.full((n, self.n_emb), np.nan)
                reasons = np.full(n, MISSING, dtype=np.int64)
            else:
                given = len(embeddings) if hasattr(embeddings, "__len__") else None
                if given is not None and given != n and not isinstance(embeddings, str):
                    raise ValueError(f"{given} embeddings for {n} rows")
                values, reasons = self.emb.transform_vectors(embeddings)
                if len(reasons) != n:
                    raise ValueError(f"{len(reasons)} embeddings for {n} rows")
            out[:, self.n_pca:] = values
            groups.append((self.start + self.n_pca, self.n_emb, reasons))
        return out, groups

    def complete(self, x: np.ndarray, vectors: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, List[Tuple[int, int, np.ndarray]]]:
        """Deferred rows (``CounterStore.defer``): ``x`` ``(rows, k)`` of finite numbers, the
        user numeric features then any numeric outputs, and for a model with an embedding
        ``vectors`` ``(rows, dim)``, one per row. Returns the numeric block (the features,
        the derived columns, the outputs) and the derived columns' reasons as
        :meth:`batch` does."""
        s = self.start
        if vectors is None:
            vectors = ABSENT
        full = np.empty((len(x), x.shape[1] + self.count))
        full[:, :s] = x[:, :s]
        full[:, s + self.count:] = x[:, s:]
        values, groups = self.batch(x, None, vectors)
        full[:, s:s + self.count] = values
        return full, groups

    # ------------------------------------------------------------------ embeddings
    def received_dimension(self, embedding: Any, batch: bool) -> Optional[int]:
        """The length of a (first) vector whose length is not the embedding's dimension, or
        ``None`` (for the warning that names both)."""
        dim = self.emb.dim if self.emb is not None else 0
        try:
            vectors = embedding if batch else [embedding]
            if isinstance(vectors, np.ndarray) and vectors.ndim == 2:
                return int(vectors.shape[1]) if vectors.shape[1] != dim else None
            for v in vectors:
                if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) and len(v) != dim:
                    return len(v)
        except Exception:
            return None
        return None


def _first_reason(x: np.ndarray, codes: np.ndarray) -> int:
    """The first reason (``REASONS`` order) among inputs ``x`` with known ``codes`` (-1:
    a number, NaN and ±inf read from ``x``); ``VALID`` when every input is finite."""
    if np.isfinite(x).all():
        return VALID
    nums = np.where(np.isnan(x), NAN, np.where(np.isinf(x), INF, _VALID_CODE))
    worst = int(np.where(codes >= 0, codes, nums).min())
    return VALID if worst == _VALID_CODE else worst

