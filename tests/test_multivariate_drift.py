"""Proof on real data: what the derived features see that univariate histograms cannot,
and that undrifted rows raise nothing (scenarios in tests/drift_scenarios.py; the numbers:
``python benchmarks/multivariate.py --proof``)."""

import numpy as np
import pytest

import drift_scenarios as ds
from promdrift.instrumentation.multivariate import Embedding, Multivariate

BC_HELD_OUT = "breast cancer, held-out rows"
BC_PERMUTED = "breast cancer, mean_radius permuted"
DIGITS_HELD_OUT = "digits, held-out rows"
DIGITS_FEW_CLASSES = "digits, only classes 0-4"
DIGITS_NOISE = f"digits, pixel noise sd {ds.NOISE_SD:g}"


@pytest.fixture(scope="module")
def results():
    return ds.scenarios()


def _derived(res):
    return {k: v for k, v in res.items() if not k.startswith("univariate:")}


def _univariate(res):
    return {k: v for k, v in res.items() if k.startswith("univariate:")}


def _show(res):
    return ", ".join(f"{k} {ks:.3f}/{crit:.3f}" for k, (ks, crit) in res.items())


def test_the_live_derived_values_match_an_independent_pca():
    """The values behind every KS below, recomputed with an SVD of the training rows."""
    x, names = ds.breast_cancer()
    hold = ds.held_out(len(x))
    train = x[~hold]
    model = Multivariate.fit(train, names)
    mean, std = train.mean(0), train.std(0)
    _, _, vt = np.linalg.svd((train - mean) / std, full_matrices=False)
    vt = vt[:model.n_components]
    live = ds.permuted(x[hold], ds.most_correlated_pair(train)[0])
    z = (live - mean) / std
    values = model.transform(live)[0]
    np.testing.assert_allclose(values[:, 0], np.linalg.norm(z - z @ vt.T @ vt, axis=1),
                               rtol=1e-9)
    np.testing.assert_allclose(np.abs(values[:, 1:]), np.abs(z @ vt.T), atol=1e-9)

    d, _ = ds.digits()
    hold = ds.held_out(len(d))
    emb = Embedding.fit(d[~hold])
    centroid = d[~hold].mean(0)
    _, _, vt = np.linalg.svd(d[~hold] - centroid, full_matrices=False)
    vt = vt[:emb.n_components]
    live = ds.noisy(d[hold])
    c = live - centroid
    values = emb.transform_vectors(live)[0]
    np.testing.assert_allclose(values[:, 0], np.linalg.norm(c - c @ vt.T @ vt, axis=1),
                               rtol=1e-9)
    np.testing.assert_allclose(values[:, 1], np.linalg.norm(live, axis=1), rtol=1e-12)
    cos = live @ centroid / np.linalg.norm(live, axis=1) / np.linalg.norm(centroid)
    np.testing.assert_allclose(values[:, 2], 1 - cos, atol=1e-12)


def test_a_correlation_break_is_seen_only_by_the_reconstruction_error(results):
    """(a) mean_radius permuted among the held-out rows: its marginal is unchanged (every
    univariate KS is exactly the undrifted one), its correlation with mean_perimeter
    (r = 0.998) is gone."""
    x, names = ds.breast_cancer()
    i, j = ds.most_correlated_pair(x[~ds.held_out(len(x))])
    assert (names[i], names[j]) == ("mean_radius", "mean_perimeter")
    assert abs(np.corrcoef(x[:, i], x[:, j])[0, 1]) > 0.99
    res = results[BC_PERMUTED]
    ks, crit = res["__pca_error__"]
    assert ks > crit, _show(_derived(res))  # 0.335 > 0.121
    uni = _univariate(res)
    assert len(uni) == 30
    assert all(k < c for k, c in uni.values()), _show(uni)  # largest 0.103 < 0.121
    assert uni == _univariate(results[BC_HELD_OUT])


def test_a_changed_class_mix_is_seen_by_the_embedding_components(results):
    """(b) only the digits 0-4: the vectors stay on the learned subspace (error unchanged)
    but move within it (component scores, cosine distance)."""
    res = _derived(results[DIGITS_FEW_CLASSES])
    above = [k for k, (ks, crit) in res.items() if ks > crit]
    assert any(k.startswith("__emb_") and k[6:8].isdigit() for k in above), _show(res)
    assert "__emb_cosine__" in above, _show(res)
    strongest = max(res, key=lambda k: res[k][0] / res[k][1])
    assert strongest == "__emb_07__", _show(res)  # 0.208 > 0.088


def test_added_noise_is_seen_by_the_embedding_reconstruction_error(results):
    """(b) Gaussian noise (sd 1 on pixels of 0..16) takes the vectors off the subspace."""
    res = _derived(results[DIGITS_NOISE])
    ks, crit = res["__emb_error__"]
    assert ks > 3 * crit, _show(res)  # 0.219 > 0.068


@pytest.mark.parametrize("scenario", [BC_HELD_OUT, DIGITS_HELD_OUT])
def test_held_out_rows_raise_nothing(results, scenario):
    """(c) every derived feature (and every breast cancer column) below its critical value."""
    res = results[scenario]
    assert all(ks < crit for ks, crit in res.values()), _show(res)
