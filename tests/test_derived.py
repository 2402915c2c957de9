"""Derived features in the baseline, its file and DriftMonitor.observe (docs/multivariate.md):
every way of observing rows gives the counts of an independent numpy computation of the
derived values, invalid inputs count by reason, the file stays version 1 without them."""

import dataclasses
import json
import logging

import numpy as np
import pytest
import scipy.spatial.distance

from promdrift.instrumentation import Baseline, BaselineError, DriftMonitor, Layout, REASONS
from promdrift.instrumentation.training import baseline as baseline_module
from promdrift.instrumentation.web.landing import landing_page
from promdrift.instrumentation.training.multivariate import Embedding, Multivariate

from conftest import BREAST_CANCER_CSV, FIXED_CREATED, PENGUINS_CSV, read_rows
from drift_scenarios import breast_cancer, digits, held_out, reference_error, reference_pca

R = {name: code for code, name in enumerate(REASONS)}
V1_KEYS = {"kind", "schema_version", "model", "created", "rows", "metadata", "features",
           "predictions"}


@pytest.fixture(scope="module")
def bc():
    """Breast cancer as columns: 29 numeric features and worst_area as a numeric output."""
    x, names = breast_cancer()
    return x, names


@pytest.fixture(scope="module")
def bc_baseline(bc):
    x, names = bc
    return Baseline.fit(dict(zip(names, x.T)), model="bc", predictions="worst_area",
                        multivariate=True)


@pytest.fixture(scope="module")
def digit_split():
    d, y = digits()
    hold = held_out(len(d))
    return d[~hold], d[hold], y[hold]


@pytest.fixture(scope="module")
def digits_baseline(digit_split):
    train, _, _ = digit_split
    return Baseline.fit(None, model="digits", embeddings=train)


def cumulative(monitor, name):
    """The live cumulative bucket counts and the sum of a numeric feature (from the store)."""
    lay = monitor.layout
    i = [c.name for _, c in lay.numeric].index(name)
    col = lay.numeric[i][1]
    counts = monitor.store.snapshot()
    return ([counts[lay.bucket_slot(i, b)] for b in range(len(col.edges) + 1)],
            counts[lay.sum_base + i])


def invalid(monitor, name):
    return {r: monitor.sample("promdrift_feature_invalid_total", feature=name, reason=r)
            for r in REASONS}


def reference_cumulative(edges, values):
    """Independent binning: bucket ``le`` counts values <= the edge (NaN nowhere)."""
    values = values[np.isfinite(values)]
    return [float(np.sum(values <= e)) for e in edges] + [float(values.size)]


# ------------------------------------------------------------------------------ baseline
def test_multivariate_true_is_the_pca_of_the_numeric_features_in_baseline_order(bc, bc_baseline):
    x, names = bc
    out = names.index("worst_area")
    feats = [n for n in names if n != "worst_area"]
    assert bc_baseline.feature_names == feats
    ref = Multivariate.fit(np.delete(x, out, axis=1), feats)
    assert bc_baseline.multivariate == ref
    assert [c.name for c in bc_baseline.derived] == ref.names
    assert bc_baseline.multivariate.n_components == 7 and bc_baseline.schema_version == 2


def test_multivariate_as_a_number_of_components_checks_bool_first(bc):
    x, names = bc
    data = dict(zip(names, x.T))
    assert Baseline.fit(data, multivariate=3).multivariate.n_components == 3
    assert Baseline.fit(data, multivariate=True).multivariate.n_components == 7  # not 1
    assert Baseline.fit(data, multivariate=1).multivariate.n_components == 1
    assert Baseline.fit(data).multivariate is None
    for bad in (0, -2, 1.5, "3", None):
        with pytest.raises(BaselineError, match="multivariate must be True, False or"):
            Baseline.fit(data, multivariate=bad)


def test_categorical_columns_and_outputs_are_not_pca_inputs():
    rows = read_rows(PENGUINS_CSV)
    data = {k: [r[k] for r in rows] for k in rows[0]}
    b = Baseline.fit(data, predictions="body_mass_g", multivariate=True)
    assert b.multivariate.columns == ("bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                      "year")
    # penguins rows with a missing measurement are left out of the fit and counted invalid
    complete = sum(all(r[c] is not None for c in b.multivariate.columns) for r in rows)
    assert b.derived[0].count == complete and b.derived[0].invalid == len(rows) - complete


@pytest.mark.parametrize("kwargs, message", [
    ({"data": {"__pca_error__": [1.0, 2.0], "b": [2.0, 1.0]}}, "reserved for derived"),
    ({"data": {"a": [1.0, 2.0], "__emb_x": [2.0, 1.0]}, "predictions": "__emb_x"},
     "reserved for derived"),
    ({"data": {"a": [1.0, 2.0, 3.0], "c": ["x", "y", "z"]}, "multivariate": True},
     "at least 2 numeric features, the data has 1"),
    ({"data": {"a": [1.0, 2.0, 3.0], "b": [5.0, 5.0, 5.0]}, "multivariate": True},
     "only ['a'] do"),
    ({"data": {"a": [1.0, 2.0, 3.0]}, "embeddings": np.ones((2, 4))},
     "embeddings have 2 rows, the data has 3"),
    ({"data": {"a": [1.0, 2.0, 3.0]}, "embedding_components": 2}, "needs embeddings"),
    ({"data": None, "embeddings": []}, "no training rows"),
    ({"data": None, "embeddings": 7}, "must be a (rows, dim) matrix"),
    ({"data": None, "embeddings": [["a", "b"], ["c", "d"]]}, "not numbers"),
])
def test_fit_errors_name_the_problem(kwargs, message):
    data = kwargs.pop("data")
    with pytest.raises(BaselineError) as info:
        Baseline.fit(data, **kwargs)
    assert message in str(info.value)


def test_a_baseline_of_embeddings_alone(digit_split):
    train, _, _ = digit_split
    classes = np.arange(len(train)) % 3
    b = Baseline.fit(None, model="text", embeddings=train, embedding_components=5,
                     predictions=classes, categorical=None)
    assert b.features == () and b.rows == len(train) and b.prediction_names == ["prediction"]
    assert b.embedding == Embedding.fit(train, n_components=5)
    assert [c.name for c in b.derived][:3] == ["__emb_error__", "__emb_norm__",
                                               "__emb_cosine__"]
    assert Baseline.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_without_derived_features_the_file_is_version_1_as_before(penguins_baseline):
    b = dataclasses.replace(penguins_baseline, created=FIXED_CREATED)
    d = b.to_dict()
    assert set(d) == V1_KEYS and d["schema_version"] == 1 and b.schema_version == 1
    # the digest of tests/data/golden_metrics.txt (whose file format predates derived
    # features)
    with open(BREAST_CANCER_CSV.replace("breast_cancer.csv", "golden_metrics.txt")) as f:
        assert f'baseline="{b.digest}",created="{FIXED_CREATED}",schema_version="1"' in f.read()
    # schema_version follows the sections whatever is passed
    assert dataclasses.replace(b, schema_version=2).to_dict() == d


def test_derived_sections_round_trip_as_version_2(tmp_path, bc_baseline, digit_split):
    train, _, _ = digit_split
    both = Baseline.fit({f"p{i}": train[:, i] for i in range(20, 30)}, embeddings=train,
                        multivariate=2, model="both")
    for b in (bc_baseline, both):
        path = str(tmp_path / f"{b.model}.json")
        b.save(path)
        with open(path) as f:
            d = json.load(f)
        assert d["schema_version"] == 2
        assert set(d) - V1_KEYS == {k for k in ("multivariate", "embedding")
                                    if getattr(b, k) is not None}
        loaded = Baseline.load(path)
        assert loaded == b and loaded.digest == b.digest
        assert loaded.multivariate == b.multivariate and loaded.embedding == b.embedding
    assert both.derived == both.multivariate.features + both.embedding.features


def test_an_older_promdrift_refuses_a_version_2_file(tmp_path, bc_baseline, monkeypatch):
    path = str(tmp_path / "b.json")
    bc_baseline.save(path)
    monkeypatch.setattr(baseline_module, "SCHEMA_VERSION", 1)  # what releases before read
    with pytest.raises(BaselineError, match="schema_version 2 is newer than this promdrift "
                                            "reads"):
        Baseline.load(path)


def _broken(d, change):
    d = json.loads(json.dumps(d))
    change(d)
    return d


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=1), "need schema_version 2, the file says 1"),
    (lambda d: d["multivariate"].update(columns=["mean_radius", "nope"] +
                                        d["multivariate"]["columns"][2:]),
     "multivariate columns ['nope'] are not numeric features"),
    (lambda d: d["multivariate"].update(kind="embedding"), "multivariate: not a Multivariate"),
    (lambda d: d["multivariate"]["features"].pop(), "multivariate: derived features"),
    (lambda d: d["predictions"][0].update(name="__pca_error__"), "duplicate feature or output"),
])
def test_bad_sections_are_named(bc_baseline, change, message):
    with pytest.raises(BaselineError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(")):
        Baseline.from_dict(_broken(bc_baseline.to_dict(), change), source="f.json")


# ------------------------------------------------------------------------------ monitor
def test_derived_columns_follow_the_user_features_in_every_family(bc_baseline):
    m = DriftMonitor(bc_baseline, registry=None)
    names = [(r, c.name) for r, c in m.layout.numeric]
    derived = bc_baseline.multivariate.names
    assert names[29:29 + len(derived)] == [("feature", n) for n in derived]
    assert names[-1] == ("prediction", "worst_area")
    text = m.render()
    mb = f'model="bc",baseline="{bc_baseline.digest}"'
    for c in bc_baseline.derived:
        assert f'promdrift_baseline_feature_value_count{{{mb},feature="{c.name}"}} ' \
               f'{c.count}' in text
        assert f'promdrift_feature_invalid_total{{{mb},feature="{c.name}",' \
               f'reason="missing"}} 0' in text
    page = landing_page(m)
    order = [page.index(f'data-column="{n}"') for n in
             bc_baseline.feature_names + derived + ["worst_area"]]
    assert order == sorted(order)


def _observe_every_way(baseline, x, names):
    """Monitors fed the same rows and outputs by every path of observe."""
    out = names.index("worst_area")
    feats = [n for n in names if n != "worst_area"]
    xf, y = np.delete(x, out, axis=1), x[:, out]
    dict_rows = [dict(zip(feats, r.tolist())) for r in xf]
    monitors = {k: DriftMonitor(baseline, registry=None) for k in
                ("dict rows (deferred)", "list rows (deferred)", "1-D array rows (deferred)",
                 "array batch", "dict batch", "dict rows with a categorical-path value")}
    for row, p in zip(dict_rows, y.tolist()):
        monitors["dict rows (deferred)"].observe(row, p)
    for row, p in zip(xf.tolist(), y.tolist()):
        monitors["list rows (deferred)"].observe(row, p)
    for row, p in zip(xf, y.tolist()):
        monitors["1-D array rows (deferred)"].observe(row, p)
    monitors["array batch"].observe(xf, y)
    monitors["dict batch"].observe(dict_rows, y.tolist())
    for row, p in zip(dict_rows, y.tolist()):  # an int output: not the fast path
        monitors["dict rows with a categorical-path value"].observe(row, {"worst_area": p})
    return monitors


def test_every_observe_path_counts_the_derived_values_of_a_numpy_reference(bc, bc_baseline):
    x, names = bc
    live = x[held_out(len(x))] * 1.01  # some live rows, slightly off the training ones
    monitors = _observe_every_way(bc_baseline, live, names)
    feats = np.delete(live, names.index("worst_area"), axis=1)
    train = np.delete(x, names.index("worst_area"), axis=1)
    pca = bc_baseline.multivariate
    mean, scale, vt, _ = reference_pca(train, pca.n_components)
    reference = np.column_stack([reference_error(feats, mean, scale, vt),
                                 ((feats - mean) / scale) @ vt.T])
    for j, col in enumerate(bc_baseline.derived):
        expected = reference_cumulative(col.edges, reference[:, j])
        for path, m in monitors.items():
            got, total = cumulative(m, col.name)
            assert got == expected, (path, col.name)
            assert total == pytest.approx(reference[:, j].sum(), rel=1e-9, abs=1e-9)
    first = monitors["array batch"].store.snapshot()
    for path, m in monitors.items():
        snap = m.store.snapshot()
        # one request per observe call: a batch is one
        assert snap[Layout.REQUESTS] == (1 if path.endswith("batch") else len(live)), path
        snap[Layout.REQUESTS] = first[Layout.REQUESTS]
        np.testing.assert_allclose(snap, first, rtol=1e-12, atol=1e-9, err_msg=path)
        assert m.sample("promdrift_inferences_total") == len(live)


@pytest.fixture(scope="module")
def small():
    """a and b strongly correlated, c independent, k constant (left out of the PCA), g a
    category."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=2000)
    data = {"a": a, "b": a + 0.1 * rng.normal(size=2000), "c": rng.normal(size=2000),
            "k": np.full(2000, 4.0), "g": rng.choice(["x", "y"], size=2000)}
    return Baseline.fit(data, multivariate=2, bins=5, model="small")


@pytest.mark.parametrize("row, reason", [
    ({"a": None, "b": 1.0, "c": 0.0}, "null"),
    ({"b": 1.0, "c": 0.0}, "missing"),
    ({"a": float("nan"), "b": 1.0, "c": 0.0}, "nan"),
    ({"a": float("-inf"), "b": 1.0, "c": 0.0}, "inf"),
    ({"a": "1.0 cm", "b": 1.0, "c": 0.0}, "wrong_type"),
    ({"a": float("nan"), "b": None, "c": "x"}, "null"),   # the first reason in REASONS order
    ({"b": float("nan"), "c": "x"}, "missing"),
    ({"a": 1e200, "b": 1e200, "c": 0.0}, "inf"),           # finite, but its norm overflows
])
def test_a_row_with_an_invalid_input_counts_every_derived_feature_invalid(small, row, reason):
    for form in ("dict", "list", "batch"):
        m = DriftMonitor(small, registry=None)
        full = {"k": 4.0, "g": "x", **row}
        if form == "dict":
            m.observe(full)
        elif form == "list":
            m.observe([full.get(n, None) for n in small.feature_names])
        else:
            m.observe([full, {"a": 0.5, "b": 0.5, "c": 0.0, "k": 4.0, "g": "y"}])
        for name in small.multivariate.names:
            want = dict.fromkeys(REASONS, 0.0)
            if not (form == "list" and reason == "missing"):  # a list has no absent value
                want[reason] = 1.0
                assert invalid(m, name) == want, (form, name)
            assert m.sample("promdrift_feature_value_count", feature=name) == \
                (1.0 if form == "batch" else 0.0)


def test_inputs_outside_the_pca_do_not_make_its_features_invalid(small):
    m = DriftMonitor(small, registry=None)
    m.observe({"a": 0.1, "b": 0.2, "c": 0.3, "k": None, "g": None})
    assert small.multivariate.columns == ("a", "b", "c")  # k is constant in training
    for name in small.multivariate.names:
        assert m.sample("promdrift_feature_value_count", feature=name) == 1.0
    assert m.sample("promdrift_feature_invalid_total", feature="k", reason="null") == 1.0


def test_deferred_rows_count_an_overflowing_row_as_inf():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    b = Baseline.fit({"a": a, "b": a + rng.normal(size=500)}, multivariate=True, bins=4)
    m = DriftMonitor(b, registry=None)
    m.observe({"a": 1e200, "b": -1e200})  # finite numbers: the fast path defers it
    m.observe({"a": 0.5, "b": 0.25})
    assert invalid(m, "__pca_error__")["inf"] == 1.0
    assert m.sample("promdrift_feature_value_count", feature="__pca_error__") == 1.0
    assert m.sample("promdrift_feature_value_sum", feature="__pca_error__") == \
        pytest.approx(float(b.multivariate.transform_row(np.array([0.5, 0.25]))[0]))
    assert m.sample("promdrift_feature_value_count", feature="a") == 2.0


# ------------------------------------------------------------------------------ embeddings
def test_embedding_features_count_a_numpy_and_scipy_reference(digits_baseline, digit_split):
    train, test, _ = digit_split
    emb = digits_baseline.embedding
    mean, _, vt, _ = reference_pca(train, emb.n_components, scaled=False)
    live = test[:300]
    reference = np.column_stack([
        reference_error(live, mean, 1.0, vt), np.linalg.norm(live, axis=1),
        [scipy.spatial.distance.cosine(v, mean) for v in live], (live - mean) @ vt.T])
    # rows with a valid vector are deferred (binned in bulk), the others take the row path
    monitors = {form: DriftMonitor(digits_baseline, registry=None) for form in
                ("list", "float64 array", "float32 array", "int array", "batch")}
    for v in live:
        monitors["list"].observe(None, embedding=v.tolist())
        monitors["float64 array"].observe({}, embedding=v)
        monitors["float32 array"].observe({}, embedding=v.astype(np.float32))
        monitors["int array"].observe({}, embedding=v.astype(np.int64))
    monitors["batch"].observe([{}] * len(live), embedding=live)
    for j, col in enumerate(digits_baseline.derived):
        expected = reference_cumulative(col.edges, reference[:, j])
        for form, m in monitors.items():
            assert cumulative(m, col.name)[0] == expected, (form, col.name)
            assert m.sample("promdrift_inferences_total") == len(live)


def test_integers_too_large_for_a_float_never_reach_the_bulk_conversion(digits_baseline):
    """Two such integers cancel out in an integer sum: the fast path must not defer them
    (their conversion would fail in the store's drain, and every row deferred with them
    would be lost). They count as invalid, the next row as usual."""
    b = Baseline.fit({"a": np.arange(100.0), "b": np.arange(100.0)[::-1]}, multivariate=True)
    huge = 10 ** 400
    cases = [(b, ({"a": huge, "b": -huge}, {}), ({"a": 1.0, "b": 2.0}, {})),
             (b, ([huge, -huge], {}), ([1.0, 2.0], {})),
             (digits_baseline, ({}, {"embedding": [huge, -huge] + [0] * 62}),
              ({}, {"embedding": [1.0] * 64}))]
    for baseline, (bad, bad_kw), (good, good_kw) in cases:
        m = DriftMonitor(baseline, registry=None)
        m.observe(bad, **bad_kw)
        m.observe(good, **good_kw)
        assert "promdrift_feature_value_bucket" in m.render()
        assert m.sample("promdrift_inferences_total") == 2.0, bad
        assert m.sample("promdrift_instrumentation_errors_total") == 0.0, bad
        name = baseline.derived[0].name
        assert invalid(m, name)["inf"] == 1.0, bad
        assert m.sample("promdrift_feature_value_count", feature=name) == 1.0, bad


def test_deferred_and_row_path_embeddings_mix_in_one_window(digits_baseline, digit_split):
    """Valid vectors are deferred with their row, bad ones counted at once: the totals are
    those of one batch of the same rows."""
    _, test, _ = digit_split
    vectors = [test[0].tolist(), None, test[1], [float("nan")] * 64, test[2].tolist(),
               [1.0] * 63]
    rows = DriftMonitor(digits_baseline, registry=None)
    for v in vectors:
        rows.observe({}, embedding=v)
    batch = DriftMonitor(digits_baseline, registry=None)
    batch.observe([{}] * len(vectors), embedding=vectors)
    by_row, at_once = rows.store.snapshot(), batch.store.snapshot()
    assert (by_row[Layout.REQUESTS], at_once[Layout.REQUESTS]) == (len(vectors), 1)
    by_row[Layout.REQUESTS] = 1
    np.testing.assert_allclose(by_row, at_once, rtol=1e-12)
    assert invalid(rows, "__emb_norm__") == {"missing": 0.0, "null": 1.0, "nan": 1.0,
                                             "inf": 0.0, "wrong_type": 1.0}


@pytest.mark.parametrize("vector, reason", [
    (None, "null"),
    ("abc", "wrong_type"),
    ([1.0] * 63, "wrong_type"),
    ([[1.0] * 64], "wrong_type"),
    ([float("nan")] + [1.0] * 63, "nan"),
    ([float("inf")] + [1.0] * 63, "inf"),
    ([None] + [1.0] * 63, "null"),
    (["1"] + [1.0] * 63, "wrong_type"),
    ({"x": 1.0}, "wrong_type"),
    (7.5, "wrong_type"),
])
def test_a_bad_embedding_counts_invalid_by_reason_and_never_raises(digits_baseline, vector,
                                                                   reason):
    for batch in (False, True):
        m = DriftMonitor(digits_baseline, registry=None)
        if batch:
            m.observe([{}, {}], embedding=[vector, [2.0] * 64])
        else:
            m.observe({}, embedding=vector)
        want = dict.fromkeys(REASONS, 0.0)
        want[reason] = 1.0
        for name in digits_baseline.embedding.names:
            assert invalid(m, name) == want, (batch, name)
        assert m.sample("promdrift_instrumentation_errors_total") == 0.0
        assert m.sample("promdrift_inferences_total") == (2.0 if batch else 1.0)


def test_no_embedding_counts_missing_and_a_wrong_dimension_is_logged_once(
        digits_baseline, caplog):
    m = DriftMonitor(digits_baseline, registry=None)
    m.observe({})
    m.observe([{}, {}, {}])
    assert invalid(m, "__emb_norm__")["missing"] == 4.0
    with caplog.at_level(logging.WARNING, logger="promdrift"):
        m.observe({}, embedding=np.ones(384))
        m.observe([{}, {}], embedding=np.ones((2, 100)))
    warnings = [r.getMessage() for r in caplog.records if "dimensions" in r.getMessage()]
    assert warnings == ["promdrift: model 'digits': an embedding of 384 dimensions, the "
                        "baseline's have 64 (counted as wrong_type; logged once)"]
    assert invalid(m, "__emb_error__")["wrong_type"] == 3.0


def test_a_batch_with_another_number_of_embeddings_is_an_instrumentation_error(
        digits_baseline, digit_split):
    _, test, _ = digit_split
    m = DriftMonitor(digits_baseline, registry=None)
    m.observe([{}] * 3, embedding=test[:2])
    m.observe([{}] * 3, embedding=test[:4].tolist())
    assert m.sample("promdrift_instrumentation_errors_total") == 2.0
    assert m.sample("promdrift_inferences_total") == 0.0


def test_an_embedding_for_a_model_without_one_is_ignored_with_a_warning(small, caplog):
    m = DriftMonitor(small, registry=None)
    with caplog.at_level(logging.WARNING, logger="promdrift"):
        m.observe({"a": 0.1, "b": 0.2, "c": 0.3, "k": 4.0, "g": "x"}, embedding=[1.0, 2.0])
    assert m.sample("promdrift_inferences_total") == 1.0
    assert m.sample("promdrift_instrumentation_errors_total") == 0.0
    assert any("has no embedding baseline" in r.getMessage() for r in caplog.records)


def test_the_exporter_takes_an_embedding_per_observation(digits_baseline, digit_split):
    from promdrift.exporter.service.app import create_app
    _, test, _ = digit_split
    m = DriftMonitor(digits_baseline, registry=None)
    client = create_app([m]).test_client()
    url = "/v1/models/digits/observations"
    assert client.post(url, json={"features": {}, "embedding": test[0].tolist()}).status_code \
        == 200
    body = [{"features": {}, "embedding": test[1].tolist()}, {"features": {}},
            {"features": {}, "embedding": None}, {"features": {}, "embedding": "x"}]
    assert client.post(url, json=body).get_json() == {"accepted": 4}
    assert m.sample("promdrift_feature_value_count", feature="__emb_norm__") == 2.0
    assert invalid(m, "__emb_norm__") == {"missing": 1.0, "null": 1.0, "nan": 0.0, "inf": 0.0,
                                          "wrong_type": 1.0}
    assert client.post(url, json={"features": {}, "embeddings": []}).status_code == 400


def test_cli_baseline_with_derived_features_and_show(tmp_path, capsys, digit_split):
    from promdrift.exporter.cli import main
    train, _, _ = digit_split
    out = str(tmp_path / "b.json")
    assert main(["baseline", BREAST_CANCER_CSV, "-o", out, "--model", "bc",
                 "--prediction", "diagnosis", "--multivariate", "4", "-q"]) == 0
    b = Baseline.load(out)
    assert b.multivariate.n_components == 4 and b.embedding is None
    assert main(["show", out]) == 0
    shown = capsys.readouterr().out
    assert "multivariate: PCA of 30 numeric features, 4 components" in shown
    assert "  derived __pca_error__: numeric" in shown and "  derived __pca_04__:" in shown
    csv = str(tmp_path / "pixels.csv")
    np.savetxt(csv, train[:100], delimiter=",")
    npy = str(tmp_path / "pixels.npy")
    np.save(npy, train[:100])
    small_csv = str(tmp_path / "t.csv")
    with open(small_csv, "w") as f:
        f.write("x\n" + "\n".join(str(i % 7) for i in range(100)) + "\n")
    for path in (csv, npy):
        assert main(["baseline", small_csv, "-o", out, "--model", "d", "--embeddings", path,
                     "--embedding-components", "3", "-q"]) == 0
        assert Baseline.load(out).embedding == Embedding.fit(train[:100], n_components=3)
    assert main(["baseline", small_csv, "-o", out, "--model", "d", "--embeddings",
                 str(tmp_path / "nope.npy")]) == 2
    assert "cannot read embeddings" in capsys.readouterr().err


def test_deferred_rows_with_vectors_count_in_a_multiprocess_store(tmp_path, digits_baseline,
                                                                  digit_split):
    """Two worker stores of one directory: each defers its rows with their vectors and
    counts them into its file (a process's scrape drains its own store, its background
    thread the others); a scrape of either sums both, as one in-memory monitor of every
    row counts them."""
    from promdrift.instrumentation.counting.multiprocess import MultiprocessCounterStore
    from promdrift.instrumentation.counting.store import Layout
    _, test, _ = digit_split
    workers = [DriftMonitor(digits_baseline, registry=None,
                            store=MultiprocessCounterStore(Layout(digits_baseline),
                                                           str(tmp_path), ident=f"w{i}"))
               for i in range(2)]
    one = DriftMonitor(digits_baseline, registry=None)
    for i, v in enumerate(test[:40]):
        workers[i % 2].observe({}, embedding=v if i % 3 else v.tolist())
        one.observe({}, embedding=v)
    workers[1].store.drain()  # what the other process's drain thread does
    np.testing.assert_allclose(workers[0].store.snapshot(), one.store.snapshot(), rtol=1e-12)
    assert workers[1].sample("promdrift_feature_value_count", feature="__emb_error__") == 40.0


def test_a_decimal_is_wrong_type_on_every_path():
    """The value rules (``values.number``): a Decimal is not a number, also on the fast
    path of a dict row of otherwise finite numbers."""
    from decimal import Decimal
    b = Baseline.fit({"a": np.arange(50.0), "b": np.arange(50.0) % 7}, bins=4)
    for row in ({"a": Decimal("1.5"), "b": 2.0}, [Decimal("1.5"), 2.0]):
        m = DriftMonitor(b, registry=None)
        m.observe(row)
        assert invalid(m, "a")["wrong_type"] == 1.0, row
        assert m.sample("promdrift_feature_value_count", feature="b") == 1.0, row
