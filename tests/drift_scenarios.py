"""Real-data drift scenarios for the multivariate and embedding paths (shared by
tests/test_multivariate_drift.py and benchmarks/multivariate.py --proof).

Every split and every perturbation is deterministic: held-out rows are every third row
(``i % 3 == 2``), permutations and noise come from generators with a fixed seed. The KS
statistic is the binned one the recording rules compute (live CDF at the baseline's edges
against the baseline CDF), with the two-sample critical value at alpha = 0.05.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from promdrift.instrumentation import NumericColumn, binning
from promdrift.instrumentation.multivariate import Embedding, Multivariate

from conftest import BREAST_CANCER_CSV, DIGITS_CSV, read_rows

SEED = 13
#: Standard deviation of the noise added to the digits' pixels (range 0..16).
NOISE_SD = 1.0
#: The classes kept in the "changed class mix" scenario.
FEW_CLASSES = (0, 1, 2, 3, 4)


def breast_cancer() -> Tuple[np.ndarray, List[str]]:
    """The 30 numeric columns of tests/data/breast_cancer.csv and their names."""
    rows = read_rows(BREAST_CANCER_CSV)
    names = [k for k in rows[0] if k != "diagnosis"]
    return np.array([[r[k] for k in names] for r in rows], dtype=np.float64), names


def digits() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digit images of tests/data/digits.csv as 64-dim vectors, and labels."""
    rows = read_rows(DIGITS_CSV)
    pixels = [k for k in rows[0] if k != "target"]
    x = np.array([[r[k] for k in pixels] for r in rows], dtype=np.float64)
    return x, np.array([int(r["target"]) for r in rows])


def held_out(n: int) -> np.ndarray:
    """Mask of the held-out rows: every third row."""
    return np.arange(n) % 3 == 2


def binned_ks(column: NumericColumn, live: np.ndarray) -> Tuple[float, float]:
    """(KS, critical value) of live values against a baseline column, as the rules do."""
    live = live[np.isfinite(live)]
    counts = binning.bin_counts(np.asarray(column.edges), live)
    return (binning.ks_statistic(np.asarray(column.counts), counts),
            binning.ks_critical_value(live.size, column.count))


def derived_ks(model, live_values: np.ndarray) -> Dict[str, Tuple[float, float]]:
    """{derived feature: (KS, critical value)} of derived values against the baseline."""
    return {c.name: binned_ks(c, live_values[:, j]) for j, c in enumerate(model.features)}


def most_correlated_pair(x: np.ndarray) -> Tuple[int, int]:
    c = np.corrcoef(x.T)
    np.fill_diagonal(c, 0.0)
    i, j = np.unravel_index(np.argmax(np.abs(c)), c.shape)
    return int(min(i, j)), int(max(i, j))


def permuted(x: np.ndarray, column: int) -> np.ndarray:
    """``x`` with one column's values permuted among the rows: same marginal, broken
    correlations."""
    out = x.copy()
    out[:, column] = np.random.default_rng(SEED).permutation(out[:, column])
    return out


def noisy(x: np.ndarray) -> np.ndarray:
    """Digits with Gaussian pixel noise, clipped to the valid pixel range 0..16."""
    return np.clip(x + np.random.default_rng(SEED).normal(0.0, NOISE_SD, x.shape), 0.0, 16.0)


def scenarios() -> Dict[str, Dict[str, Tuple[float, float]]]:
    """Every scenario's KS and critical values: derived features, and for the breast cancer
    ones also each original column (``univariate:<name>``)."""
    x, names = breast_cancer()
    hold = held_out(len(x))
    train, test = x[~hold], x[hold]
    model = Multivariate.fit(train, names)
    univariate = [NumericColumn.fit(n, train[:, j], 20) for j, n in enumerate(names)]
    a, _ = most_correlated_pair(train)
    out = {}
    for label, live in (("breast cancer, held-out rows", test),
                        (f"breast cancer, {names[a]} permuted", permuted(test, a))):
        res = derived_ks(model, model.transform(live)[0])
        for j, col in enumerate(univariate):
            res[f"univariate:{col.name}"] = binned_ks(col, live[:, j])
        out[label] = res
    d, y = digits()
    hold = held_out(len(d))
    emb = Embedding.fit(d[~hold])
    test, labels = d[hold], y[hold]
    for label, live in (("digits, held-out rows", test),
                        ("digits, only classes 0-4", test[np.isin(labels, FEW_CLASSES)]),
                        (f"digits, pixel noise sd {NOISE_SD:g}", noisy(test))):
        out[label] = derived_ks(emb, emb.transform_vectors(live)[0])
    return out
