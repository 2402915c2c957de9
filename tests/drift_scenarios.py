"""Real-data drift scenarios for the multivariate and embedding paths (shared by
tests/test_multivariate_drift.py and benchmarks/multivariate.py --proof).

Every split and every perturbation is deterministic: held-out rows are every third row
(``i % 3 == 2``), permutations and noise come from generators with a fixed seed. The
scenarios go the shipped way (``Baseline.fit``, ``DriftMonitor.observe``, ``/metrics``) and
compute the KS statistic and its critical value from the exposition text as the recording
rules do (:func:`rules_ks`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from promdrift.instrumentation import Baseline, DriftMonitor, NumericColumn, binning
from promdrift.instrumentation.spec import Thresholds

from conftest import BREAST_CANCER_CSV, DIGITS_CSV, read_rows
from exporter_helpers import samples

#: The thresholds the shipped rules use (their defaults).
SPEC = Thresholds()

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


def reference_pca(x, k, scaled=True):
    """Independent reference: mean, scale, components (sign as documented), variances of an
    SVD of the rows."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) if scaled else np.ones(x.shape[1])
    _, s, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
    vt = vt[:k]
    vt = vt * np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])[:, None]
    return mean, scale, vt, s ** 2 / len(x)


def reference_error(x, mean, scale, vt):
    """Independent reference: the reconstruction error of rows ``x``."""
    z = (x - mean) / scale
    return np.linalg.norm(z - (z @ vt.T) @ vt, axis=1)


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


#: What the proof reads for one feature: the KS statistic and critical values as the recording
#: rules compute them from ``/metrics``, and the window and baseline counts.
Result = Dict[str, float]


def rules_ks(text: str, model: str) -> Dict[str, Result]:
    """Every numeric feature's KS as ``model_feature:promdrift_ks_statistic`` computes it
    from an exposition text (``/metrics``): the live CDF at each ``le`` (the cumulative
    bucket over ``_count``) against the baseline gauges' CDF, the largest difference; the
    critical values ``model_feature:promdrift_ks_critical`` with the default thresholds
    (family-wise at ``ks_alpha`` over F, the model's numeric features: ``critical``) and
    per feature at alpha = 0.05 (``critical_05``, the stricter test for undrifted rows)."""
    got = samples(text)
    live: Dict[str, Dict[str, float]] = {}
    base: Dict[str, Dict[str, float]] = {}
    counts: Dict[Tuple[str, str], float] = {}
    for (name, labels), value in got.items():
        lab = dict(labels)
        if lab.get("model") != model or "feature" not in lab:
            continue
        f = lab["feature"]
        if name == "promdrift_feature_value_bucket":
            live.setdefault(f, {})[lab["le"]] = value
        elif name == "promdrift_baseline_feature_value_bucket":
            base.setdefault(f, {})[lab["le"]] = value
        elif name in ("promdrift_feature_value_count",
                      "promdrift_baseline_feature_value_count"):
            counts[name, f] = value
    tests = len(base)  # F: count by (model) of the baseline counts
    out: Dict[str, Result] = {}
    for f, b in base.items():
        n = counts["promdrift_feature_value_count", f]
        m = counts["promdrift_baseline_feature_value_count", f]
        assert live[f].keys() == b.keys(), f
        ks = max(abs(live[f][le] / n - b[le] / m) for le in b)
        out[f] = {"ks": ks, "critical": SPEC.ks_critical(n, m, tests=tests),
                  "critical_05": binning.ks_critical_value(n, m, alpha=0.05), "n": n, "m": m,
                  "tests": tests}
    return out


def reference_ks(column: NumericColumn, live: np.ndarray) -> float:
    """Independent binned KS: the share of ``live`` values ``<=`` each baseline edge against
    the baseline's cumulative share there."""
    live = np.sort(live)
    edges = np.asarray(column.edges)
    live_cdf = np.searchsorted(live, edges, side="right") / live.size
    base_cdf = np.cumsum(column.counts)[:-1] / column.count
    return float(np.max(np.abs(live_cdf - base_cdf)))


def shipped(baseline: Baseline, rows: List[Any], embeddings: Any = None) -> Dict[str, Result]:
    """Rows (and vectors) through ``DriftMonitor.observe`` one at a time, as a model server
    counts them, then :func:`rules_ks` of its ``/metrics`` text."""
    monitor = DriftMonitor(baseline, registry=None)
    for i, row in enumerate(rows):
        if embeddings is None:
            monitor.observe(row)
        else:
            monitor.observe(row, embedding=embeddings[i])
    return rules_ks(monitor.render(), baseline.model)


def scenario_inputs() -> Dict[str, Tuple[Baseline, np.ndarray, str]]:
    """Every scenario: its baseline (``Baseline.fit`` of the training rows: ``multivariate=
    True`` on the 30 breast cancer columns, ``embeddings=`` the digits), its live rows and
    whether they are table rows (``"rows"``) or embedding vectors (``"vectors"``)."""
    x, names = breast_cancer()
    hold = held_out(len(x))
    train, test = x[~hold], x[hold]
    bc = Baseline.fit(dict(zip(names, train.T)), model="bc", multivariate=True)
    a, _ = most_correlated_pair(train)
    out = {"breast cancer, held-out rows": (bc, test, "rows"),
           f"breast cancer, {names[a]} permuted": (bc, permuted(test, a), "rows")}
    d, y = digits()
    hold = held_out(len(d))
    digits_baseline = Baseline.fit(None, model="digits", embeddings=d[~hold])
    test, labels = d[hold], y[hold]
    out.update({"digits, held-out rows": (digits_baseline, test, "vectors"),
                "digits, only classes 0-4": (digits_baseline,
                                             test[np.isin(labels, FEW_CLASSES)], "vectors"),
                f"digits, pixel noise sd {NOISE_SD:g}": (digits_baseline, noisy(test),
                                                        "vectors")})
    return out


def scenarios() -> Dict[str, Dict[str, Result]]:
    """Every scenario's KS and critical values through the shipped path: the rows of
    :func:`scenario_inputs` through ``DriftMonitor.observe`` one at a time (a dict row; an
    empty row with its vector), then the rules' computation over ``/metrics``
    (:func:`rules_ks`). Keys are feature names: derived ones and, for the breast cancer
    scenarios, the 30 original columns."""
    out = {}
    for label, (baseline, live, kind) in scenario_inputs().items():
        if kind == "rows":
            names = baseline.feature_names
            out[label] = shipped(baseline, [dict(zip(names, r)) for r in live.tolist()])
        else:
            out[label] = shipped(baseline, [{}] * len(live), list(live))
    return out
