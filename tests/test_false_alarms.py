"""The false-alarm benchmark's shortcut for numeric features is the real thing.

benchmarks/ks_false_alarms.py does not fit baselines: it draws the population's mass in the
baseline's equal-mass bins from Dirichlet(m/bins, ...) and takes the baseline counts as m/bins
each. Here the same probabilities come from a direct simulation of what promdrift does:
a training sample of m standard normal values, quantile edges and counts fitted by
``Baseline.fit``, a live window of n new values from the same population binned on those
edges, and the statistics computed as the rules do (cumulative counts / count on each side).

Each compared probability is a binomial proportion on each side; the tolerance is 4.5
standard errors of their difference (a false failure has probability below 1e-5 per
comparison, and the seeds are fixed). The direct side has 5,000 trials, so the check is
sharpest for probabilities near one half: the KS tail at two thresholds between the KS
statistic's possible values, then the alert condition itself and a PSI tail.
"""

import importlib.util
import math
import pathlib

import numpy as np
import pytest

from promdrift.instrumentation import Baseline

ROOT = pathlib.Path(__file__).resolve().parents[1]
BINS = 20
DIRECT = 5000
SHORTCUT = 400_000


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "ks_false_alarms", ROOT / "benchmarks" / "ks_false_alarms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def direct(m: int, n: int, trials: int, seed: int):
    """KS and PSI of ``trials`` undrifted features with baselines fitted by promdrift."""
    rng = np.random.default_rng(seed)
    ks = np.empty(trials)
    psi = np.empty(trials)
    for i in range(trials):
        col = Baseline.fit({"x": rng.standard_normal(m)}, bins=BINS).feature("x")
        edges = np.asarray(col.edges)
        base = np.asarray(col.counts, dtype=np.float64)
        assert base.sum() == m and len(base) == BINS
        live = np.bincount(np.searchsorted(edges, rng.standard_normal(n), side="left"),
                           minlength=BINS)
        ks[i] = np.max(np.abs(np.cumsum(live) / n - np.cumsum(base) / m))
        p = np.maximum(live / n, 1e-4)
        q = np.maximum(base / m, 1e-4)
        psi[i] = np.sum((p - q) * np.log(p / q))
    return ks, psi


def tolerance(p_a: float, n_a: int, p_b: float, n_b: int) -> float:
    pooled = (p_a * n_a + p_b * n_b) / (n_a + n_b)
    return 4.5 * math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))


def assert_close(p_direct: float, p_shortcut: float, what: str) -> None:
    tol = tolerance(p_direct, DIRECT, p_shortcut, SHORTCUT)
    assert abs(p_direct - p_shortcut) <= tol, (what, p_direct, p_shortcut, tol)


def test_the_dirichlet_shortcut_matches_fitted_baselines(bench):
    """m = 10,000 and n = 200, the benchmark's first row, where the alerts misfire most."""
    m, n = 10000, 200
    ks_d, psi_d = direct(m, n, DIRECT, seed=11)
    crit = bench.C_ALPHA * math.sqrt(1 / n + 1 / m)
    cond_d = (ks_d > crit) & (ks_d > bench.KS_MIN_EFFECT)
    rng = np.random.default_rng(12)
    ks_s, cond_s, psi_s = bench.ks_psi_numeric(n, m, BINS, SHORTCUT, rng, psi_max=0.1)
    # KS tails between grid points of j/200 - k/20 (0.005 apart), where ties cannot matter.
    for t in (0.0625, 0.0825):
        assert 0.05 < np.mean(ks_s > t) < 0.5
        assert_close(np.mean(ks_d > t), np.mean(ks_s > t), f"P(KS > {t})")
    # The alert condition itself (the table's first cell), and a PSI tail.
    assert 0.005 < np.mean(cond_s) < 0.05
    assert_close(np.mean(cond_d), np.mean(cond_s), "P(KS condition)")
    assert 0.05 < np.mean(psi_s) < 0.95
    assert_close(np.mean(psi_d > 0.1), np.mean(psi_s), "P(PSI > 0.1)")


def test_the_check_tells_a_wrong_shortcut_apart(bench):
    """With a smaller training sample (m = 1,000) the baseline's own sampling error is a
    sixth of the KS statistic's variance: the shortcut that drops it (live values drawn from
    the baseline's shares themselves) fails the same comparison, the Dirichlet one passes."""
    m, n = 1000, 200
    ks_d, _ = direct(m, n, DIRECT, seed=21)
    rng = np.random.default_rng(22)
    ks_s = bench.ks_psi_numeric(n, m, BINS, SHORTCUT, rng)[0]
    ks_w = bench.ks_psi_numeric(n, m, BINS, SHORTCUT, rng, dirichlet=False)[0]
    for t in (0.0625, 0.0825):
        p_d, p_s, p_w = np.mean(ks_d > t), np.mean(ks_s > t), np.mean(ks_w > t)
        assert_close(p_d, p_s, f"P(KS > {t})")
        assert abs(p_d - p_w) > tolerance(p_d, DIRECT, p_w, SHORTCUT), (t, p_d, p_w)


def expected_tvd(q: np.ndarray, n: int, m: int) -> float:
    """The no-drift TVD of the recording rule model_feature:promdrift_category_tvd_noise."""
    return 0.5 * math.sqrt(2 / math.pi) * float(np.sum(np.sqrt(q * (1 - q) * (1 / n + 1 / m))))


@pytest.mark.parametrize("k", [3, 10, 50])
@pytest.mark.parametrize("kind", ["even", "zipf"])
def test_no_drift_tvd_formula_matches_simulation(bench, k, kind):
    """Mean TVD of undrifted features (baseline of m and live window of n values, both
    multinomial from the same shares) against the formula the alerts subtract. The
    simulation's standard error is about 0.2% of the mean; the formula is within 2%, and
    leaving out the baseline's own noise (the 1/m term, 5% at m = 10 n) would not be."""
    n, m, draws = 1000, 10000, 20_000
    q = np.full(k, 1.0 / k) if kind == "even" else bench.zipf(k)
    rng = np.random.default_rng(100 + k)
    tvd, noise = bench.tvd_categorical(n, m, q, draws, rng)
    formula = expected_tvd(q, n, m)
    assert tvd.mean() == pytest.approx(formula, rel=0.02), (tvd.mean(), formula)
    assert abs(tvd.mean() / (formula / math.sqrt(1 + n / m)) - 1) > 0.03
    # The benchmark (like the rule) takes q from the fitted baseline, not the population.
    assert noise.mean() == pytest.approx(formula, rel=0.01)
    if k == 50 and kind == "even":   # the case of the rules.yml header
        assert 0.09 < formula < 0.095 and np.mean(tvd > 0.1) > 0.1
        assert np.mean(tvd - noise > 0.1) == 0
