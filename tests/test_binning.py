"""Binning and drift statistics checked against independent numpy / scipy computations."""

import math

import numpy as np
import pytest
import scipy.stats
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from promdrift.instrumentation import Baseline, DriftMonitor, NumericColumn, binning

from conftest import read_rows, BREAST_CANCER_CSV, PENGUINS_CSV

BINS = 20


def _columns(path):
    rows = read_rows(path)
    cols = {}
    for name in rows[0]:
        vals = [r[name] for r in rows]
        if all(v is None or isinstance(v, float) for v in vals):
            cols[name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
    return cols


def _reference_edges(col):
    q = np.quantile(col, np.arange(1, BINS) / BINS, method="inverted_cdf")
    return binning.round_edges(np.unique(q))


def _reference_counts(edges, col):
    idx = np.searchsorted(np.asarray(edges), col, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


@pytest.fixture(scope="module")
def bc_columns():
    return _columns(BREAST_CANCER_CSV)


def test_breast_cancer_edges_and_counts_match_numpy(bc_columns, breast_cancer_baseline):
    assert len(bc_columns) == 30
    for name, col in bc_columns.items():
        fitted = breast_cancer_baseline.feature(name)
        assert isinstance(fitted, NumericColumn)
        valid = col[np.isfinite(col)]
        ref_edges = _reference_edges(valid)
        assert list(fitted.edges) == ref_edges.tolist(), name
        # Deduplicated and strictly increasing.
        assert np.all(np.diff(fitted.edges) > 0)
        assert len(fitted.edges) <= BINS - 1
        ref_counts = _reference_counts(ref_edges, valid)
        assert list(fitted.counts) == ref_counts.tolist(), name
        assert sum(fitted.counts) == valid.size == fitted.count
        assert fitted.invalid == col.size - valid.size
        assert fitted.min == valid.min() and fitted.max == valid.max()
        assert np.isclose(fitted.sum, valid.sum())
        assert fitted.cumulative() == np.cumsum(ref_counts).tolist()


def test_counts_with_a_plain_python_loop(bc_columns, breast_cancer_baseline):
    name = "mean_area"
    col = bc_columns[name].tolist()
    fitted = breast_cancer_baseline.feature(name)
    edges = list(fitted.edges)
    counts = [0] * (len(edges) + 1)
    for v in col:
        for i, e in enumerate(edges):
            if v <= e:  # Prometheus le semantics
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    assert list(fitted.counts) == counts
    assert sum(counts) == len(col)


def test_round_edges_keep_edges_distinct_and_parse_back(bc_columns):
    for col in bc_columns.values():
        raw = np.unique(np.quantile(col, np.arange(1, BINS) / BINS, method="inverted_cdf"))
        rounded = binning.round_edges(raw)
        assert rounded.size == raw.size
        for e in rounded.tolist():
            assert float(binning.format_le(e)) == e
            # At least 4 significant digits: close to the unrounded edge.
        assert np.allclose(rounded, raw, rtol=1e-3)


def test_discrete_year_gets_an_edge_per_distinct_value(penguins_baseline):
    year = np.array([r["year"] for r in read_rows(PENGUINS_CSV)])
    col = penguins_baseline.feature("year")
    distinct = np.unique(year)
    # Every edge is an actual year, no interpolated or repeated edges.
    assert set(col.edges) <= set(distinct.tolist())
    assert list(col.edges) == _reference_edges(year).tolist()
    assert list(col.counts) == _reference_counts(col.edges, year).tolist()
    # Every distinct value below the max is an edge.
    assert set(distinct[distinct < distinct.max()].tolist()) <= set(col.edges)


def test_discrete_max_is_an_edge_so_new_values_show_as_drift(penguins_baseline):
    # The training maximum (2009) is an edge: the training +Inf bucket is empty, so a later
    # year seen in serving lands in a bucket the baseline never filled, which the KS rule sees.
    year = np.array([r["year"] for r in read_rows(PENGUINS_CSV)])
    col = penguins_baseline.feature("year")
    assert list(col.edges) == np.unique(year).tolist()
    assert col.counts[-1] == 0


def _halves(col):
    return col[0::2], col[1::2]


def test_ks_psi_tv_against_direct_computation(bc_columns, breast_cancer_baseline):
    for name, col in bc_columns.items():
        edges = np.array(breast_cancer_baseline.feature(name).edges)
        a, b = _halves(col)
        ca, cb = binning.bin_counts(edges, a), binning.bin_counts(edges, b)
        assert ca.sum() == a.size and cb.sum() == b.size
        pa, pb = ca / ca.sum(), cb / cb.sum()
        # KS: max |CDF difference| evaluated at every edge (and +Inf, where it is 0).
        direct = max(abs(np.mean(a <= e) - np.mean(b <= e)) for e in edges.tolist() + [np.inf])
        ks = binning.ks_statistic(ca, cb)
        assert math.isclose(ks, direct, abs_tol=1e-12)
        exact = scipy.stats.ks_2samp(a, b).statistic
        bound = max(pa.max(), pb.max())
        assert -1e-12 <= exact - ks <= bound + 1e-12, name
        # PSI with the 1e-4 probability floor.
        p, q = np.maximum(pa, 1e-4), np.maximum(pb, 1e-4)
        assert math.isclose(binning.psi(ca, cb), float(np.sum((p - q) * np.log(p / q))),
                            rel_tol=1e-12, abs_tol=1e-15)
        assert binning.psi(ca, cb) >= 0
        assert math.isclose(binning.total_variation(ca, cb),
                            0.5 * float(np.abs(pa - pb).sum()), rel_tol=1e-12, abs_tol=1e-15)


def test_statistics_of_identical_and_disjoint_samples():
    c = np.array([3, 0, 5, 2])
    assert binning.ks_statistic(c, 2 * c) == 0.0
    assert binning.psi(c, 2 * c) == 0.0
    assert binning.total_variation(c, c) == 0.0
    assert binning.total_variation([1, 0], [0, 1]) == 1.0
    assert binning.ks_statistic([1, 0], [0, 1]) == 1.0
    with pytest.raises(ValueError):
        binning.ks_statistic([0, 0], [1, 1])


def test_ks_critical_value_formula():
    n, m = 200.0, 300.0
    assert math.isclose(binning.ks_critical_value(n, m),
                        1.358 * math.sqrt((n + m) / (n * m)))
    assert binning.ks_critical_value(0, 10) == math.inf
    assert binning.ks_critical_value(n, m, 2.0) == 2.0 * math.sqrt((n + m) / (n * m))
    fw = binning.ks_critical_value(n, m, alpha=0.01, tests=30)
    assert fw == binning.ks_c_alpha(0.01, 30) * math.sqrt((n + m) / (n * m))
    assert binning.ks_critical_value(n, m, tests=30) == binning.ks_critical_value(
        n, m, alpha=0.05, tests=30)
    assert binning.ks_critical_value(0, m, alpha=0.01, tests=30) == math.inf


@pytest.mark.parametrize("alpha", [0.2, 0.1, 0.05, 0.01, 0.001])
@pytest.mark.parametrize("tests", [1, 10, 100, 1000])
def test_ks_c_alpha_against_the_kolmogorov_distribution(alpha, tests):
    """The closed form against scipy's asymptotic Kolmogorov distribution: the exact
    quantile of the per-test level alpha / tests, and the tail at the closed form's c, which
    is alpha / tests times 1 - (alpha / (2 tests))^3 (the series' next terms): slightly
    conservative, never anti-conservative."""
    c = binning.ks_c_alpha(alpha, tests)
    level = alpha / tests
    exact = scipy.stats.kstwobign.isf(level)
    assert c >= exact - 1e-12
    assert c - exact < (3e-6 if level <= 0.05 else 3e-4)
    tail = scipy.stats.kstwobign.sf(c)
    assert tail / level == pytest.approx(1 - (level / 2) ** 3, abs=(level / 2) ** 8 + 1e-12)
    if tests == 1 and alpha == 0.05:
        assert round(c, 3) == binning.C_ALPHA_05


def test_ks_c_alpha_grows_with_the_family():
    cs = [binning.ks_c_alpha(0.01, f) for f in (1, 2, 10, 100, 1000, 10**6)]
    assert cs == sorted(cs) and len(set(cs)) == len(cs)
    # Bonferroni: c(alpha, F) is c(alpha / F, 1).
    assert binning.ks_c_alpha(0.01, 100) == pytest.approx(binning.ks_c_alpha(1e-4), rel=1e-15)


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, float("nan"), True, "0.05", None])
def test_ks_c_alpha_refuses_a_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a probability"):
        binning.ks_c_alpha(alpha)


@pytest.mark.parametrize("tests", [0, -3, 2.5, True, "10", None])
def test_ks_c_alpha_refuses_a_bad_number_of_tests(tests):
    with pytest.raises(ValueError, match="tests .* must be an integer >= 1"):
        binning.ks_c_alpha(0.05, tests)


def test_ks_critical_value_takes_c_alpha_or_alpha_and_tests():
    with pytest.raises(ValueError, match="either c_alpha or alpha and tests"):
        binning.ks_critical_value(100, 100, 1.358, tests=10)
    with pytest.raises(ValueError, match="either c_alpha or alpha and tests"):
        binning.ks_critical_value(100, 100, 1.358, alpha=0.01)
    with pytest.raises(ValueError, match="tests"):
        binning.ks_critical_value(100, 100, alpha=0.01, tests=0)


def test_large_values_get_the_same_le_in_baseline_and_live():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.uniform(1e6, 1e7, 500), np.full(40, 1e16),
                             rng.uniform(2e6, 3e6, 100)])
    baseline = Baseline.fit({"big": values}, model="big", bins=20)
    col = baseline.feature("big")
    assert 1e16 in col.edges and "1e+16" in col.labels
    monitor = DriftMonitor(baseline, registry=CollectorRegistry())
    for v in [5e5, 1e6, 2.5e6, 9.99e6, 1e16, 2e16] + list(col.edges):
        monitor.observe({"big": float(v)})
    les = {"promdrift_feature_value_bucket": set(),
           "promdrift_baseline_feature_value_bucket": set()}
    for fam in text_string_to_metric_families(monitor.render()):
        for s in fam.samples:
            if s.name in les and s.labels.get("feature") == "big":
                les[s.name].add(s.labels["le"])
    live, base = les.values()
    assert live == base
    assert live == set(col.labels)
    finite = sorted(float(le) for le in live if le != "+Inf")
    assert finite == list(col.edges)  # exact float equality
    for e in col.edges:
        le = binning.format_le(e)
        assert float(le) == e
        # Each edge value observed above lands in its own bucket (le semantics: <=).
        below = sum(1 for v in [5e5, 1e6, 2.5e6, 9.99e6, 1e16, 2e16] + list(col.edges) if v <= e)
        assert monitor.sample("promdrift_feature_value_bucket", feature="big", le=le) == below


@pytest.mark.parametrize("shares", ["even", "zipf"])
def test_tvd_noise_is_the_mean_no_drift_tvd(shares):
    """binning.tvd_noise against simulated no-drift windows: the population's category
    shares deviate from the baseline's like a Dirichlet (the baseline is a sample of m), the
    window is multinomial; the mean TVD matches within 2 %."""
    rng = np.random.default_rng(11)
    k, n, m, draws = 20, 1000, 10000, 4000
    w = np.ones(k) if shares == "even" else 1.0 / np.arange(1, k + 1)
    base = np.round(m * w / w.sum())
    pop = rng.dirichlet(base, size=draws)
    live = np.array([rng.multinomial(n, p) for p in pop])
    sim = np.mean(0.5 * np.abs(live / n - base / base.sum()).sum(axis=1))
    assert binning.tvd_noise(base, n) == pytest.approx(sim, rel=0.02)


# What Prometheus 3.5 stores for these scraped `le` strings (it parses a histogram bucket's
# label and formats it with Go's shortest %g, adding ".0" when there is no point or exponent):
# read off a real Prometheus 3.5.3 scraping them; tests/integration checks it again live.
PROMETHEUS_3_LE = {
    0.25: "0.25", 5.0: "5.0", 1.0: "1.0", 0.0: "0.0", -3.0: "-3.0", 0.1: "0.1",
    100000.0: "100000.0", 99999.99: "99999.99", 123456.7: "123456.7", 999999.9: "999999.9",
    1068000.0: "1.068e+06", 1234567.0: "1.234567e+06", 2.5e6: "2.5e+06", -2.5e6: "-2.5e+06",
    1e16: "1e+16", 1e21: "1e+21", 7e22: "7e+22", 3e300: "3e+300",
    1.7976931348623157e308: "1.7976931348623157e+308",
    0.0001: "0.0001", -0.0001: "-0.0001", 0.00012345: "0.00012345", 1.5e-4: "0.00015",
    1e-05: "1e-05", -1e-07: "-1e-07", 5e-324: "5e-324",
}


@pytest.mark.parametrize("edge", sorted(PROMETHEUS_3_LE))
def test_format_le_is_prometheus_3s_normal_form(edge):
    assert binning.format_le(edge) == PROMETHEUS_3_LE[edge]
    assert float(binning.format_le(edge)) == edge


def test_format_le_round_trips_random_edges():
    rng = np.random.default_rng(11)
    for x in np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 18, 2000),
                             np.round(rng.uniform(-1e7, 1e7, 500))]):
        label = binning.format_le(float(x))
        assert float(label) == float(x)
        assert ("e" in label) == (abs(x) != 0 and not 1e-4 <= abs(x) < 1e6), label
