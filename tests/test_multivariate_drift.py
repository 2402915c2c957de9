"""Proof on real data (issue 13): what the derived features see that univariate histograms
cannot, and that undrifted rows raise nothing. Each scenario goes the shipped way:
``Baseline.fit`` of the training rows, ``DriftMonitor.observe`` of the live rows one by one,
and the KS statistic and critical value computed from ``/metrics`` as the recording rules do
(tests/drift_scenarios.py); those numbers are checked against an independent computation
(numpy SVD, scipy) first. The table: ``python benchmarks/multivariate.py --proof``."""

import math

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

import drift_scenarios as ds

BC_HELD_OUT = "breast cancer, held-out rows"
BC_PERMUTED = "breast cancer, mean_radius permuted"
DIGITS_HELD_OUT = "digits, held-out rows"
DIGITS_FEW_CLASSES = "digits, only classes 0-4"
DIGITS_NOISE = f"digits, pixel noise sd {ds.NOISE_SD:g}"


@pytest.fixture(scope="module")
def inputs():
    return ds.scenario_inputs()


@pytest.fixture(scope="module")
def results():
    return ds.scenarios()


def _derived(res):
    return {k: v for k, v in res.items() if k.startswith(("__pca_", "__emb_"))}


def _univariate(res):
    return {k: v for k, v in res.items() if not k.startswith(("__pca_", "__emb_"))}


def _show(res, key="critical"):
    return ", ".join(f"{k} {r['ks']:.3f}/{r[key]:.3f}" for k, r in res.items())


def _reference_values(baseline, live, kind):
    """The derived values of ``live`` from an SVD of the training rows (and scipy's cosine
    distance), in ``baseline.derived`` order; independent of promdrift's transforms."""
    x, names = ds.breast_cancer()
    d, _ = ds.digits()
    if kind == "rows":
        train = x[~ds.held_out(len(x))]
        k = baseline.multivariate.n_components
        mean, scale, vt, _ = ds.reference_pca(train, k)
        z = (live - mean) / scale
        return np.column_stack([ds.reference_error(live, mean, scale, vt), z @ vt.T])
    train = d[~ds.held_out(len(d))]
    k = baseline.embedding.n_components
    mean, _, vt, _ = ds.reference_pca(train, k, scaled=False)
    cosine = scipy.spatial.distance.cdist(live, mean[None, :], "cosine")[:, 0]
    return np.column_stack([ds.reference_error(live, mean, 1.0, vt),
                            np.linalg.norm(live, axis=1), cosine, (live - mean) @ vt.T])


@pytest.mark.parametrize("scenario", [BC_HELD_OUT, BC_PERMUTED, DIGITS_HELD_OUT,
                                      DIGITS_FEW_CLASSES, DIGITS_NOISE])
def test_the_rules_numbers_match_an_independent_computation(inputs, results, scenario):
    """Every KS read from /metrics is the binned KS of independently computed values at the
    baseline's edges; every critical value is scipy's Kolmogorov quantile at ks_alpha / F
    times sqrt(1/n + 1/m)."""
    baseline, live, kind = inputs[scenario]
    res = results[scenario]
    reference = _reference_values(baseline, live, kind)
    columns = list(baseline.derived)
    values = [reference[:, j] for j in range(len(columns))]
    if kind == "rows":
        columns += list(baseline.features)
        values += [live[:, j] for j in range(live.shape[1])]
    assert sorted(res) == sorted(c.name for c in columns)
    tests = len(columns)
    alpha = ds.SPEC.ks_alpha
    for col, v in zip(columns, values):
        r = res[col.name]
        assert (r["n"], r["m"], r["tests"]) == (len(live), col.count, tests)
        assert r["ks"] == pytest.approx(ds.reference_ks(col, v), abs=1e-12), col.name
        root = math.sqrt(1 / len(live) + 1 / col.count)
        assert r["critical"] == pytest.approx(
            scipy.stats.kstwobign.isf(alpha / tests) * root, rel=1e-5)
        assert r["critical_05"] == pytest.approx(scipy.stats.kstwobign.isf(0.05) * root,
                                                 rel=1e-3)


def test_a_correlation_break_is_seen_only_by_the_reconstruction_error(inputs, results):
    """(a) mean_radius permuted among the held-out rows: its marginal is unchanged (every
    univariate KS is exactly the undrifted one), its correlation with mean_perimeter
    (r = 0.998) is gone. The error's KS is above the rules' critical value; every univariate
    KS stays below even the per-feature alpha = 0.05 one."""
    x, names = ds.breast_cancer()
    i, j = ds.most_correlated_pair(x[~ds.held_out(len(x))])
    assert (names[i], names[j]) == ("mean_radius", "mean_perimeter")
    assert abs(np.corrcoef(x[:, i], x[:, j])[0, 1]) > 0.99
    res = results[BC_PERMUTED]
    r = res["__pca_error__"]
    assert r["ks"] > r["critical"] and r["ks"] > ds.SPEC.ks_min_effect, _show(_derived(res))
    uni = _univariate(res)
    assert len(uni) == 30
    assert all(u["ks"] < u["critical_05"] for u in uni.values()), _show(uni, "critical_05")
    assert {k: u["ks"] for k, u in uni.items()} == \
        {k: u["ks"] for k, u in _univariate(results[BC_HELD_OUT]).items()}


def test_a_changed_class_mix_is_seen_by_the_embedding_components(results):
    """(b) only the digits 0-4: the vectors stay on the learned subspace (the error does
    not move) but move within it: a component score above the rules' critical value."""
    res = _derived(results[DIGITS_FEW_CLASSES])
    above = [k for k, r in res.items() if r["ks"] > r["critical"]]
    assert above and all(k[6:8].isdigit() for k in above), _show(res)
    assert res["__emb_error__"]["ks"] < res["__emb_error__"]["critical_05"], _show(res)
    strongest = max(res, key=lambda k: res[k]["ks"] / res[k]["critical"])
    assert strongest == "__emb_07__", _show(res)
    assert res[strongest]["ks"] > ds.SPEC.ks_min_effect


def test_added_noise_is_seen_by_the_embedding_reconstruction_error(results):
    """(b) Gaussian noise (sd 1 on pixels of 0..16) takes the vectors off the subspace."""
    res = _derived(results[DIGITS_NOISE])
    r = res["__emb_error__"]
    assert r["ks"] > 2 * r["critical"] and r["ks"] > ds.SPEC.ks_min_effect, _show(res)


@pytest.mark.parametrize("scenario", [BC_HELD_OUT, DIGITS_HELD_OUT])
def test_held_out_rows_raise_nothing(results, scenario):
    """(c) every derived feature (and every breast cancer column) below its critical value,
    even the per-feature alpha = 0.05 one."""
    res = results[scenario]
    assert all(r["ks"] < r["critical_05"] for r in res.values()), _show(res, "critical_05")
