"""The multivariate (PCA) and embedding models against independent numpy / scipy
computations on real data (breast cancer, penguins, digits)."""

import json
import re

import numpy as np
import pytest
import scipy.spatial.distance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promdrift.instrumentation import BaselineError, NumericColumn, REASONS
from promdrift.instrumentation.training.multivariate import (
    DEFAULT_VARIANCE, MAX_DEFAULT_COMPONENTS, Embedding, Multivariate, is_reserved,
    reason_name)

from conftest import PENGUINS_CSV, read_rows
from drift_scenarios import breast_cancer, digits, reference_error as _reference_error, \
    reference_pca as _reference_pca

R = {name: code for code, name in enumerate(REASONS)}


@pytest.fixture(scope="module")
def bc():
    return breast_cancer()


@pytest.fixture(scope="module")
def bc_model(bc):
    x, names = bc
    return Multivariate.fit(x, names)


@pytest.fixture(scope="module")
def digit_vectors():
    return digits()[0]


@pytest.fixture(scope="module")
def emb_model(digit_vectors):
    return Embedding.fit(digit_vectors)


def _default_k(variances):
    ratio = np.cumsum(variances) / variances.sum()
    return min(int(np.argmax(ratio >= DEFAULT_VARIANCE)) + 1, MAX_DEFAULT_COMPONENTS)


# ---------------------------------------------------------------------------- tabular
def test_fit_matches_an_svd_of_the_standardised_rows(bc, bc_model):
    x, names = bc
    _, s, _ = np.linalg.svd((x - x.mean(0)) / x.std(0), full_matrices=False)
    k = _default_k(s ** 2)
    assert k == bc_model.n_components == 7
    mean, scale, vt, var = _reference_pca(x, k)
    assert bc_model.columns == tuple(names)
    np.testing.assert_allclose(bc_model.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(bc_model.scale, scale, rtol=1e-12)
    np.testing.assert_allclose(bc_model.components, vt, atol=1e-9)
    np.testing.assert_allclose(bc_model.explained_variance, var[:k], rtol=1e-9)
    assert bc_model.total_variance == pytest.approx(len(names))  # standardised: 1 per column
    assert bc_model.explained_ratio == pytest.approx(var[:k].sum() / var.sum())
    assert bc_model.explained_ratio >= DEFAULT_VARIANCE > var[:k - 1].sum() / var.sum()
    assert bc_model.names == ["__pca_error__"] + [f"__pca_{i:02d}__" for i in range(1, 8)]


def test_transform_matches_numpy_and_row_equals_batch(bc, bc_model):
    x, _ = bc
    mean, scale, vt, _ = _reference_pca(x, bc_model.n_components)
    values, reasons = bc_model.transform(x)
    assert values.shape == (len(x), 8) and (reasons == -1).all()
    np.testing.assert_allclose(values[:, 1:], ((x - mean) / scale) @ vt.T, atol=1e-9)
    np.testing.assert_allclose(values[:, 0], _reference_error(x, mean, scale, vt), rtol=1e-9)
    rows = np.array([bc_model.transform_row(r) for r in x])
    np.testing.assert_allclose(rows, values, rtol=1e-12, atol=1e-12)


def test_batches_larger_than_a_chunk_equal_the_rows(bc, bc_model):
    x, _ = bc
    big = np.tile(x, (70, 1))  # 39,830 rows: two chunks
    assert len(big) > bc_model._chunk
    values, reasons = bc_model.transform(big)
    np.testing.assert_allclose(values, np.tile(bc_model.transform(x)[0], (70, 1)),
                               rtol=1e-12, atol=1e-12)
    assert (reasons == -1).all()


def test_derived_baselines_bin_like_every_feature(bc, bc_model):
    """Scores: binned from the training rows themselves; error: cross-fitted, each fold's
    value from a model fitted (here with an SVD) on the other folds."""
    x, _ = bc
    k = bc_model.n_components
    scores = bc_model.transform(x)[0][:, 1:]
    fold = np.arange(len(x)) % bc_model.folds
    error = np.empty(len(x))
    for f in range(bc_model.folds):
        mean, scale, vt, _ = _reference_pca(x[fold != f], k)
        error[fold == f] = _reference_error(x[fold == f], mean, scale, vt)
    expected = [NumericColumn.fit("__pca_error__", error, 20)] + [
        NumericColumn.fit(n, scores[:, j], 20) for j, n in enumerate(bc_model.names[1:])]
    assert bc_model.folds == 10
    for got, want in zip(bc_model.features, expected, strict=True):
        assert got.name == want.name
        assert got.edges == want.edges and got.counts == want.counts, got.name
        assert got.invalid == 0 and got.count == len(x)
        assert got.min == pytest.approx(want.min) and got.max == pytest.approx(want.max)
        assert got.mean == pytest.approx(want.mean) and got.std == pytest.approx(want.std)


def test_rows_with_missing_values_are_left_out_and_counted_invalid():
    rows = read_rows(PENGUINS_CSV)
    names = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    x = np.array([[np.nan if r[n] is None else r[n] for n in names] for r in rows])
    complete = np.isfinite(x).all(axis=1)
    assert 0 < (~complete).sum() < len(x)
    m = Multivariate.fit(x, names, n_components=2)
    mean, scale, vt, _ = _reference_pca(x[complete], 2)
    np.testing.assert_allclose(m.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(m.components, vt, atol=1e-9)
    for c in m.features:
        assert (c.count, c.invalid) == (complete.sum(), (~complete).sum())
    values, reasons = m.transform(x)
    assert np.isnan(values[~complete]).all() and np.isfinite(values[complete]).all()
    assert (reasons[~complete] == R["nan"]).all() and (reasons[complete] == -1).all()


def test_the_reason_of_an_invalid_row_is_its_first_in_reasons_order(bc_model):
    x = np.tile(bc_model.mean, (6, 1))
    x[1, 3] = np.inf
    x[2, [0, 4]] = [np.nan, -np.inf]
    x[3, 5] = np.nan  # the caller knows this one was missing
    x[4, [6, 7]] = np.nan  # null and wrong_type: null comes first
    x[5, 8] = 1e200  # a finite number whose square overflows
    given = np.full(x.shape, -1)
    given[3, 5] = R["missing"]
    given[4, 6:8] = [R["wrong_type"], R["null"]]
    values, reasons = bc_model.transform(x, given)
    assert [reason_name(r) if r >= 0 else None for r in reasons] == [
        None, "inf", "nan", "missing", "null", "inf"]
    assert np.isfinite(values[0]).all() and np.isnan(values[1:]).all()
    assert all(bc_model.transform_row(r) is None for r in x[[1, 2, 5]])


def test_constant_columns_are_left_out(bc):
    x, names = bc
    with_constant = np.column_stack([x[:, :5], np.full(len(x), 7.0), x[:, 5:10]])
    cols = names[:5] + ["constant"] + names[5:10]
    m = Multivariate.fit(with_constant, cols)
    assert m.columns == tuple(names[:10])
    ref = Multivariate.fit(x[:, :10], names[:10])
    assert m.to_dict() == ref.to_dict()


def test_a_column_constant_among_complete_rows_is_left_out():
    x = np.array([[1.0, 5.0, 2.0], [2.0, 5.0, 3.9], [3.0, 5.0, 6.2], [4.0, np.nan, 8.1],
                  [5.0, 5.0, 9.8]])
    m = Multivariate.fit(x, ["a", "flat", "b"])
    assert m.columns == ("a", "b")
    assert [c.invalid for c in m.features] == [0, 0]  # the NaN was in the dropped column


@pytest.mark.parametrize("k", [1, 3, 30])
def test_n_components_as_an_integer(bc, k):
    x, names = bc
    m = Multivariate.fit(x, names, n_components=k)
    _, _, vt, var = _reference_pca(x, k)
    assert m.n_components == k and len(m.names) == k + 1
    np.testing.assert_allclose(np.abs(np.sum(m.components * vt, axis=1)), 1.0, atol=1e-9)
    if k == 30:  # every component: nothing left to reconstruct
        assert m.explained_ratio == pytest.approx(1.0)
        assert (m.transform(x)[0][:, 0] == 0).all()


def test_the_default_is_at_most_twenty_components(digit_vectors):
    varying = digit_vectors[:, digit_vectors.std(0) > 0]
    _, s, _ = np.linalg.svd((varying - varying.mean(0)) / varying.std(0), full_matrices=False)
    ratio = np.cumsum(s ** 2) / np.sum(s ** 2)
    assert ratio[19] < DEFAULT_VARIANCE  # 90 % would take more than 20
    m = Multivariate.fit(digit_vectors, [f"p{i}" for i in range(64)], folds=2)
    assert m.n_components == 20 and m.dim == varying.shape[1]
    assert m.names[-1] == "__pca_20__"


@pytest.mark.parametrize("bad, message", [
    (0, "at least 1"), (-2, "at least 1"), (True, "integer"), (2.5, "integer"),
    ("3", "integer"), (31, "span only 30")])
def test_bad_n_components_are_named(bc, bad, message):
    x, names = bc
    with pytest.raises(BaselineError, match=message):
        Multivariate.fit(x, names, n_components=bad)


def test_n_components_beyond_the_rank_of_collinear_columns(bc):
    x, names = bc
    x3 = np.column_stack([x[:, 0], x[:, 1], x[:, 0] + x[:, 1]])
    with pytest.raises(BaselineError, match="span only 2 dimension"):
        Multivariate.fit(x3, ["a", "b", "a_plus_b"], n_components=3)
    assert Multivariate.fit(x3, ["a", "b", "a_plus_b"]).n_components <= 2


@pytest.mark.parametrize("data, columns, message", [
    (np.ones((5, 2)), ["a"], "2 columns for 1 names"),
    (np.ones(5), ["a"], "2-D"),
    (np.array([["1", "2"], ["3", "4"]]), ["a", "b"], "not numbers"),
    ([[1.0, "x"], [2.0, 3.0]], ["a", "b"], "not numbers"),
    ([[1.0, 2.0], [2.0, 3.0]], ["a", "a"], "duplicate"),
    (np.ones((5, 2)), ["a", "b"], "no column"),
    (np.array([[1.0, 2.0], [np.nan, 3.0], [2.0, np.inf]]), ["a", "b"], "no column"),
])
def test_bad_training_data_is_named(data, columns, message):
    with pytest.raises(BaselineError, match=message):
        Multivariate.fit(data, columns)


def test_none_in_training_rows_counts_as_missing():
    x = [[1.0, 2.0], [2.0, 4.5], [None, 1.0], [3.0, 5.5], [4.0, 8.0]]
    m = Multivariate.fit(x, ["a", "b"], bins=2, n_components=2)
    assert [(c.count, c.invalid) for c in m.features] == [(4, 1), (4, 1), (4, 1)]


# ---------------------------------------------------------------------------- files
def test_refits_write_identical_files_and_round_trip(bc, bc_model, emb_model, digit_vectors):
    x, names = bc
    for model, refit in ((bc_model, lambda: Multivariate.fit(x, names)),
                         (emb_model, lambda: Embedding.fit(digit_vectors))):
        text = json.dumps(model.to_dict(), allow_nan=False)
        assert json.dumps(refit().to_dict(), allow_nan=False) == text
        loaded = type(model).from_dict(json.loads(text))
        assert loaded == model
        np.testing.assert_array_equal(loaded.components, model.components)
        rows = x if model is bc_model else digit_vectors
        np.testing.assert_array_equal(loaded.transform(rows)[0], model.transform(rows)[0])


def test_sign_convention_largest_loading_positive(bc_model, emb_model):
    for m in (bc_model, emb_model):
        c = m.components
        assert (c[np.arange(len(c)), np.argmax(np.abs(c), axis=1)] > 0).all()
        np.testing.assert_allclose(c @ c.T, np.eye(len(c)), atol=1e-12)


def _broken(d, **changes):
    d = json.loads(json.dumps(d))
    for key, value in changes.items():
        if value is KeyError:
            del d[key]
        else:
            d[key] = value
    return d


@pytest.mark.parametrize("change, message", [
    ({"kind": "embedding"}, "not a Multivariate model"),
    ({"mean": [0.0, 1.0]}, "mean has shape"),
    ({"components": [[1.0] * 30]}, "1 components|explained variances"),
    ({"scale": [0.0] * 30}, "scale must be 30 positive"),
    ({"explained_variance": [-1.0] * 7}, "non-negative"),
    ({"total_variance": 0}, "total variance positive"),
    ({"columns": ["a"] * 30}, "distinct strings"),
    ({"folds": 1}, "folds"),
    ({"features": []}, "derived features"),
    ({"mean": KeyError}, "malformed"),
    ({"mean": "zero"}, "malformed"),
])
def test_from_dict_names_what_is_wrong(bc_model, change, message):
    with pytest.raises(BaselineError, match=message):
        Multivariate.from_dict(_broken(bc_model.to_dict(), **change))


def test_from_dict_rejects_non_orthonormal_components(bc_model):
    d = bc_model.to_dict()
    d["components"][0] = [2 * v for v in d["components"][0]]
    with pytest.raises(BaselineError, match="orthonormal"):
        Multivariate.from_dict(d, where="baseline.json: multivariate")
    with pytest.raises(BaselineError, match="dim must be"):
        Embedding.from_dict(_broken(Embedding.fit(np.eye(5)[:, :3] + np.arange(5)[:, None],
                                                  folds=2).to_dict(), dim="3"))


def test_reserved_names():
    names = Multivariate(("a", "b"), np.zeros(2), np.ones(2), np.eye(2), [1.0, 1.0], 2.0).names
    assert names == ["__pca_error__", "__pca_01__", "__pca_02__"]
    many = Multivariate([f"c{i}" for i in range(120)], np.zeros(120), np.ones(120),
                        np.eye(120), np.ones(120), 120.0).names
    assert many[1] == "__pca_001__" and many[-1] == "__pca_120__"
    assert sorted(many[1:]) == many[1:]  # zero-padded: dashboards sort them in order
    for n in names + many:
        assert is_reserved(n) and re.fullmatch(r"__(pca|emb)_[a-z0-9]+__", n)
    assert not any(is_reserved(n) for n in ("pca_error", "__other__", "_pca_1", "", None))


# ---------------------------------------------------------------------------- embeddings
def test_embedding_matches_numpy_and_scipy(digit_vectors, emb_model):
    x = digit_vectors
    _, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    k = _default_k(s ** 2)
    assert k == emb_model.n_components == 20
    mean, _, vt, var = _reference_pca(x, k, scaled=False)
    np.testing.assert_allclose(emb_model.components, vt, atol=1e-9)
    np.testing.assert_allclose(emb_model.explained_variance, var[:k], rtol=1e-9)
    values, reasons = emb_model.transform_vectors(x)
    assert (reasons == -1).all()
    assert emb_model.names[:3] == ["__emb_error__", "__emb_norm__", "__emb_cosine__"]
    np.testing.assert_allclose(values[:, 0], _reference_error(x, mean, 1.0, vt), rtol=1e-9)
    np.testing.assert_allclose(values[:, 1], np.linalg.norm(x, axis=1), rtol=1e-12)
    cosine = [scipy.spatial.distance.cosine(v, mean) for v in x]
    np.testing.assert_allclose(values[:, 2], cosine, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(values[:, 3:], (x - mean) @ vt.T, atol=1e-9)
    for i in range(0, len(x), 97):
        for form in (x[i], x[i].tolist(), x[i].astype(np.float32).astype(np.float64),
                     x[i].astype(np.int64), tuple(x[i].tolist())):
            row, reason = emb_model.transform_vector(form)
            assert reason == -1
            np.testing.assert_allclose(row, values[i], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(emb_model.transform_row(x[i]), values[i], rtol=1e-12,
                                   atol=1e-12)


def test_embedding_baselines_cross_fit_error_and_cosine(digit_vectors, emb_model):
    x = digit_vectors
    k = emb_model.n_components
    fold = np.arange(len(x)) % emb_model.folds
    error, cosine = np.empty(len(x)), np.empty(len(x))
    for f in range(emb_model.folds):
        mean, _, vt, _ = _reference_pca(x[fold != f], k, scaled=False)
        error[fold == f] = _reference_error(x[fold == f], mean, 1.0, vt)
        cosine[fold == f] = [scipy.spatial.distance.cosine(v, mean) for v in x[fold == f]]
    values = emb_model.transform(x)[0]
    expected = {"__emb_error__": error, "__emb_norm__": np.linalg.norm(x, axis=1),
                "__emb_cosine__": cosine}
    for j, c in enumerate(emb_model.features):
        want = NumericColumn.fit(c.name, expected.get(c.name, values[:, j]), 20)
        assert (c.edges, c.counts, c.invalid) == (want.edges, want.counts, 0), c.name


def test_zero_vector_and_centred_embeddings(digit_vectors):
    e = Embedding.fit(digit_vectors, n_components=5, folds=2)
    values, reason = e.transform_vector(np.zeros(64))
    assert reason == -1 and values[1] == 0.0 and values[2] == 1.0  # cosine of nothing: 1
    centred = Embedding.fit(digit_vectors - digit_vectors.mean(0), n_components=5, folds=2)
    assert "__emb_cosine__" not in centred.names and len(centred.names) == 7
    values, reason = centred.transform_vector(digit_vectors[0] - digit_vectors.mean(0))
    assert reason == -1 and len(values) == 7
    assert Embedding.from_dict(centred.to_dict()) == centred


class _NoLen:
    def __len__(self):
        raise RuntimeError("broken")


@pytest.mark.parametrize("value, reason", [
    (None, "null"),
    ("0.5", "wrong_type"),
    (b"\x00" * 64, "wrong_type"),
    ({"a": 1}, "wrong_type"),
    (3.0, "wrong_type"),
    ([0.0] * 63, "wrong_type"),
    ([0.0] * 65, "wrong_type"),
    (np.zeros((8, 8)), "wrong_type"),
    ([[0.0] * 64], "wrong_type"),
    (["0.5"] * 64, "wrong_type"),
    ([0.0] * 63 + ["x"], "wrong_type"),
    ([0.0] * 63 + [[1.0]], "wrong_type"),
    ([0.0] * 63 + [1j], "wrong_type"),
    (np.zeros(64, dtype=complex), "wrong_type"),
    ([0.0] * 63 + [None], "null"),
    ([0.0] * 62 + [None, "x"], "null"),
    ([0.0] * 63 + [float("nan")], "nan"),
    (np.r_[np.zeros(63), np.nan], "nan"),
    ([0.0] * 62 + [float("inf"), float("nan")], "nan"),
    ([0.0] * 63 + [-float("inf")], "inf"),
    ([0.0] * 63 + [10 ** 400], "inf"),
    (np.full(64, 1e200), "inf"),  # finite numbers whose squared norm overflows
    (_NoLen(), "wrong_type"),
    (object(), "wrong_type"),
])
def test_invalid_embeddings_are_counted_by_reason_and_never_raise(emb_model, value, reason):
    assert emb_model.transform_vector(value) == (None, R[reason])
    values, reasons = emb_model.transform_vectors([value, np.ones(64)])
    assert reasons.tolist() == [R[reason], -1]
    assert np.isnan(values[0]).all() and np.isfinite(values[1]).all()


@pytest.mark.parametrize("value", [[True] * 64, np.ones(64, dtype=np.float32),
                                   np.arange(64, dtype=np.uint8), [1] * 64, (1.0,) * 64])
def test_numbers_of_any_numeric_type_are_valid(emb_model, value):
    values, reason = emb_model.transform_vector(value)
    assert reason == -1
    np.testing.assert_allclose(values, emb_model.transform_row(np.asarray(value, float)),
                               rtol=1e-12)


def test_batches_of_embeddings(emb_model, digit_vectors):
    good = digit_vectors[:10]
    bad = good.copy()
    bad[2, 5], bad[4, 0] = np.nan, np.inf
    values, reasons = emb_model.transform_vectors(bad)
    assert reasons.tolist() == [-1, -1, R["nan"], -1, R["inf"]] + [-1] * 5
    np.testing.assert_array_equal(values[reasons == -1],
                                  emb_model.transform_vectors(good)[0][reasons == -1])
    values, reasons = emb_model.transform_vectors(np.zeros((3, 63)))
    assert reasons.tolist() == [R["wrong_type"]] * 3 and np.isnan(values).all()
    for not_a_batch in (None, "text", 7, {"a": [1.0] * 64}):
        values, reasons = emb_model.transform_vectors(not_a_batch)
        assert reasons.tolist() == [R["wrong_type"]] and values.shape == (1, 23)
    values, reasons = emb_model.transform_vectors([])
    assert values.shape == (0, 23) and reasons.shape == (0,)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)
    | st.binary(max_size=3),
    lambda inner: st.lists(inner, max_size=70) | st.dictionaries(st.text(max_size=2), inner,
                                                                 max_size=3),
    max_leaves=80))
def test_no_input_makes_the_embedding_path_raise(value):
    e = _fuzz_model()
    values, reason = e.transform_vector(value)
    assert (values is None) == (reason >= 0)
    if values is not None:
        assert values.shape == (len(e.names),) and np.isfinite(values).all()
    batch, reasons = e.transform_vectors(value)
    assert batch.shape == (len(reasons), len(e.names))
    assert (np.isnan(batch[reasons >= 0]).all()
            and np.isfinite(batch[reasons < 0]).all())


_FUZZ = []


def _fuzz_model():
    if not _FUZZ:
        rng = np.random.default_rng(0)
        _FUZZ.append(Embedding.fit(rng.normal(size=(100, 3)) + 1.0, n_components=2))
    return _FUZZ[0]


def test_embeddings_of_1024_dimensions():
    """Serving at the largest documented dimension, on a model built from its parameters
    (fitting is the same code at any dimension; benchmarks/multivariate.py times a 1024-dim
    fit)."""
    rng = np.random.default_rng(0)
    components = np.linalg.qr(rng.normal(size=(1024, 20)))[0].T
    mean = rng.normal(size=1024) * 0.1 + 0.2
    e = Embedding(mean, components, np.linspace(5, 1, 20), 100.0)
    assert e.dim == 1024 and len(e.names) == 23
    live = rng.normal(size=(50, 1024)) + 0.2
    values, reasons = e.transform_vectors(live)
    assert (reasons == -1).all()
    c = live - mean
    np.testing.assert_allclose(values[:, 0], np.linalg.norm(c - c @ components.T @ components,
                                                            axis=1), rtol=1e-10)
    np.testing.assert_allclose(values[:, 1], np.linalg.norm(live, axis=1), rtol=1e-12)
    np.testing.assert_allclose(values[:, 2], [scipy.spatial.distance.cosine(v, mean)
                                              for v in live], rtol=1e-10)
    np.testing.assert_allclose(values[:, 3:], c @ components.T, atol=1e-10)
    for row, v in zip(values, live):
        np.testing.assert_allclose(e.transform_vector(v.tolist())[0], row, rtol=1e-10,
                                   atol=1e-10)
    assert e.transform_vector(live[0][:1023]) == (None, R["wrong_type"])
    assert e.transform_vector(np.r_[live[0], 0.0]) == (None, R["wrong_type"])
