"""DriftMonitor: exact counts, invalid values, bounded categories, threads, arbitrary input."""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor, NumericColumn, binning

from conftest import BREAST_CANCER_CSV, read_rows


def _sample(registry, name, **labels):
    """A sample of ``registry``; the labels every series of the ``model``'s monitor starts
    with (its baseline digest) are filled in."""
    from promdrift.instrumentation.counting.exposition import collector_for
    monitor = next(m for m in collector_for(registry).monitors if m.model == labels["model"])
    return registry.get_sample_value(name, {**dict(monitor.plan_labels), **labels})


def _check_numeric(monitor, registry, name, values, times=1, role="feature"):
    """Buckets, _count and _sum of one numeric column against a numpy reference."""
    col = (monitor.baseline.feature(name) if role == "feature"
           else monitor.baseline.prediction(name))
    key = "feature" if role == "feature" else "output"
    fam = f"promdrift_{role}_value"
    valid = np.array([v for v in values if v is not None], dtype=np.float64)
    valid = valid[np.isfinite(valid)]
    for e, le in zip(list(col.edges) + [np.inf], col.labels):
        ref = times * int(np.count_nonzero(valid <= e))
        labels = {"model": monitor.model, key: name, "le": le}
        assert monitor.sample(fam + "_bucket", **{key: name, "le": le}) == ref, (name, le)
        assert _sample(registry, fam + "_bucket", **labels) == ref
    assert _sample(registry, fam + "_count", model=monitor.model, **{key: name}) \
        == times * valid.size
    assert np.isclose(_sample(registry, fam + "_sum", model=monitor.model, **{key: name}),
                      times * valid.sum())


def test_exact_counts_penguins_rows_then_batch(registry, penguins_baseline, penguins_rows):
    m = DriftMonitor(penguins_baseline, registry=registry)
    features = [{k: v for k, v in r.items()} for r in penguins_rows]
    for row in features:
        assert m.observe(row) is None
    n = len(features)
    assert _sample(registry, "promdrift_inferences_total", model="penguins") == n

    def check(times):
        for col in penguins_baseline.features:
            values = [r[col.name] for r in features]
            if isinstance(col, NumericColumn):
                _check_numeric(m, registry, col.name, values, times)
                missing = sum(v is None for v in values)
                assert m.sample("promdrift_feature_invalid_total", feature=col.name,
                                reason="null") == times * missing
            else:
                for cat in col.categories:
                    assert m.sample("promdrift_feature_category_total", feature=col.name,
                                    category=cat) == times * values.count(cat)
                assert m.sample("promdrift_feature_category_total", feature=col.name,
                                category="__other__") == 0
                assert m.sample("promdrift_feature_invalid_total", feature=col.name,
                                reason="null") == times * values.count(None)
        assert _sample(registry, "promdrift_inferences_total", model="penguins") == times * n
        assert _sample(registry, "promdrift_instrumentation_errors_total", model="penguins") == 0

    check(1)
    m.observe(features)  # the same rows as one batch
    check(2)


def test_exact_counts_breast_cancer_array(registry, breast_cancer_baseline, breast_cancer_rows):
    names = breast_cancer_baseline.feature_names
    x = np.array([[r[n] for n in names] for r in breast_cancer_rows], dtype=np.float64)
    diagnosis = [r["diagnosis"] for r in breast_cancer_rows]
    m = DriftMonitor(breast_cancer_baseline, registry=registry)
    m.observe(x, diagnosis)
    m.observe(x[0], diagnosis[0])  # one row as a 1-D array
    for j, name in enumerate(names):
        _check_numeric(m, registry, name, list(x[:, j]) + [x[0, j]])
    for cls in ("benign", "malignant"):
        assert _sample(registry, "promdrift_prediction_class_total", model="breast_cancer",
                       output="diagnosis", **{"class": cls}) == \
            diagnosis.count(cls) + (diagnosis[0] == cls)
    assert _sample(registry, "promdrift_inferences_total", model="breast_cancer") == len(x) + 1


def test_batch_equals_rows(breast_cancer_baseline):
    x = np.array([[r[n] for n in breast_cancer_baseline.feature_names]
                  for r in read_rows(BREAST_CANCER_CSV)])
    a = DriftMonitor(breast_cancer_baseline, registry=None)
    b = DriftMonitor(breast_cancer_baseline, registry=None)
    a.observe(x)
    for row in x:
        b.observe(row)
    c = DriftMonitor(breast_cancer_baseline, registry=None)
    c.observe([dict(zip(breast_cancer_baseline.feature_names, row)) for row in x.tolist()])
    assert _counts(a) == _counts(b) == _counts(c)
    # a request per observe call: a batch is one
    assert [m.sample("promdrift_requests_total") for m in (a, b, c)] == [1, len(x), 1]


def _counts(m):
    """The exposition of ``m`` without ``promdrift_requests_total`` (one per observe call,
    so a batch and its rows differ there only)."""
    return [line for line in m.render().splitlines()
            if not line.startswith("promdrift_requests_total{")]


NUMERIC_INVALID = [
    ("missing", None), ("null", None), ("nan", float("nan")), ("inf", float("inf")),
    ("inf", float("-inf")), ("wrong_type", "3.5 mm"), ("wrong_type", [1.0]),
    ("wrong_type", {"v": 1.0}), ("inf", 10 ** 400),
]
CAT_INVALID = [("missing", None), ("null", None), ("nan", float("nan")),
               ("wrong_type", ["a"])]


def _invalid_rows():
    rows = []
    for i, (reason, value) in enumerate(NUMERIC_INVALID):
        row = {"c": "a"}
        if reason != "missing":
            row["x"] = value
        rows.append(row)
    for reason, value in CAT_INVALID:
        row = {"x": 2.0}
        if reason != "missing":
            row["c"] = value
        rows.append(row)
    return rows


@pytest.fixture
def small_baseline():
    return Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
                         "c": ["a", "b", "a", "a", "b", "c", "a", "b"]}, model="small", bins=4)


@pytest.mark.parametrize("mode", ["rows", "batch"])
def test_every_invalid_kind(small_baseline, mode):
    m = DriftMonitor(small_baseline, registry=None)
    rows = _invalid_rows()
    if mode == "rows":
        for r in rows:
            m.observe(r)
    else:
        m.observe(rows)
    expected_x = {}
    for reason, _ in NUMERIC_INVALID:
        expected_x[reason] = expected_x.get(reason, 0) + 1
    for reason in ("missing", "null", "nan", "inf", "wrong_type"):
        assert m.sample("promdrift_feature_invalid_total", feature="x", reason=reason) == \
            expected_x.get(reason, 0), reason
        want_c = sum(1 for r, _ in CAT_INVALID if r == reason)
        assert m.sample("promdrift_feature_invalid_total", feature="c", reason=reason) == \
            want_c, reason
    # Only the rows with a valid x (2.0, one per categorical-invalid row) are binned.
    n_valid_x = len(CAT_INVALID)
    assert m.sample("promdrift_feature_value_count", feature="x") == n_valid_x
    assert m.sample("promdrift_feature_value_bucket", feature="x", le="+Inf") == n_valid_x
    assert m.sample("promdrift_feature_value_sum", feature="x") == 2.0 * n_valid_x
    assert m.sample("promdrift_feature_category_total", feature="c", category="a") == \
        len(NUMERIC_INVALID)
    total_c = sum(m.sample("promdrift_feature_category_total", feature="c", category=k)
                  for k in small_baseline.feature("c").labels)
    assert total_c == len(NUMERIC_INVALID)
    assert m.sample("promdrift_inferences_total") == len(rows)
    assert m.sample("promdrift_instrumentation_errors_total") == 0


#: calls of a shape no row or batch has (the small baseline: features x, c; no output)
BAD_SHAPES = ["hello", 5, 2.5, None, True, object(), [1.0], [1.0, "a", 3.0],
              [{"x": 1.0}, "x"], [{"x": 1.0}, 3], [[1.0, "a"], [1.0]], [["x", "y", "z"]],
              np.zeros((2, 3)), np.zeros((2, 2, 2)), np.float64(1.0), np.zeros(3)]


def test_a_call_of_the_wrong_shape_is_the_callers_error(small_baseline, caplog):
    """Counted as a refused request (bad_shape), never as an instrumentation error, none of
    its values counted; logged as one line without a traceback, at most once a minute."""
    m = DriftMonitor(small_baseline, registry=None)
    with caplog.at_level("WARNING", logger="promdrift"):
        for features in BAD_SHAPES:
            m.observe(features)
    s = m.sample
    assert s("promdrift_requests_invalid_total", reason="bad_shape") == len(BAD_SHAPES)
    assert s("promdrift_requests_total") == len(BAD_SHAPES)
    assert s("promdrift_instrumentation_errors_total") == 0
    assert s("promdrift_inferences_total") == 0
    assert s("promdrift_feature_value_count", feature="x") == 0
    assert sum(s("promdrift_feature_invalid_total", feature=f, reason=r)
               for f in ("x", "c") for r in ("missing", "null", "nan", "inf", "wrong_type")) == 0
    (record,) = caplog.records  # one line for the first minute
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "1 request(s)" in record.getMessage() and "bad_shape: 1" in record.getMessage()
    # the next line, once the interval is over, has every request refused since the first
    caplog.clear()
    m.REFUSED_LOG_INTERVAL = 0.0
    with caplog.at_level("WARNING", logger="promdrift"):
        m.invalid_request("not_json")
    (record,) = caplog.records
    assert f"{len(BAD_SHAPES)} request(s)" in record.getMessage()
    assert f"bad_shape: {len(BAD_SHAPES) - 1}, not_json: 1" in record.getMessage()
    with pytest.raises(ValueError):
        m.invalid_request("too_large")
    # valid calls next to them count as ever, a request each
    m.observe({"x": 2.0, "c": "a"})
    m.observe([[2.0, "a"], [3.0, "b"]])
    m.observe([])  # an empty batch: a request of no rows
    assert s("promdrift_inferences_total") == 3
    assert s("promdrift_requests_total") == len(BAD_SHAPES) + 1 + 3


def test_a_prediction_of_the_wrong_shape_is_the_callers_error(penguins_multi):
    m = DriftMonitor(penguins_multi, registry=None)
    row = {"island": "Dream", "bill_length_mm": 40.0}
    m.observe(row, ["Adelie", 4000.0, 1.0])      # three values for two outputs
    m.observe([row, row], [{"species": "Adelie"}])  # one prediction for two rows
    m.observe([row, row], "Adelie")               # no sequence of predictions
    m.observe(row, {"species": "Adelie", "body_mass_g": "4000"})  # fine: a number as text
    assert m.sample("promdrift_requests_invalid_total", reason="bad_shape") == 3
    assert m.sample("promdrift_instrumentation_errors_total") == 0
    assert m.sample("promdrift_inferences_total") == 1
    assert m.sample("promdrift_prediction_coerced_total", output="body_mass_g") == 1
    assert m.sample("promdrift_prediction_value_sum", output="body_mass_g") == 4000.0


@pytest.mark.parametrize("mode", ["rows", "batch"])
def test_bools_are_numbers(small_baseline, mode):
    m = DriftMonitor(small_baseline, registry=None)
    rows = [{"x": True, "c": "a"}, {"x": False, "c": True}]
    if mode == "rows":
        for r in rows:
            m.observe(r)
    else:
        m.observe(rows)
    edges = small_baseline.feature("x").edges
    assert m.sample("promdrift_feature_value_count", feature="x") == 2
    assert m.sample("promdrift_feature_value_sum", feature="x") == 1.0
    assert m.sample("promdrift_feature_value_bucket", feature="x",
                    le=binning.format_le(edges[0])) == 2  # 0 and 1 are below the first edge
    assert sum(m.sample("promdrift_feature_invalid_total", feature="x", reason=r)
               for r in ("missing", "null", "nan", "inf", "wrong_type")) == 0
    # A bool category is "True": unseen here, so __other__.
    assert m.sample("promdrift_feature_category_total", feature="c", category="__other__") == 1


def test_bounded_categories(registry, penguins_baseline):
    m = DriftMonitor(penguins_baseline, registry=registry)
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    unseen = ["".join(rng.choice(letters, 12)) + "#" for _ in range(100_000)]
    m.observe([{"island": s} for s in unseen[:99_000]])
    for s in unseen[99_000:]:
        m.observe({"island": s})
    cats = set()
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "promdrift_feature_category_total" and s.labels["feature"] == "island":
                cats.add(s.labels["category"])
    assert cats == set(penguins_baseline.feature("island").categories) | {"__other__"}
    assert _sample(registry, "promdrift_feature_category_total", model="penguins",
                   feature="island", category="__other__") == 100_000
    prefix = ('promdrift_feature_category_total{model="penguins",'
              f'baseline="{penguins_baseline.digest}",feature="island",category=')
    assert m.render().count(prefix) == len(cats)


def test_thread_safety():
    baseline = Baseline.fit({"x": np.arange(100.0), "y": np.arange(100.0)[::-1]},
                            model="threads", bins=10)
    m = DriftMonitor(baseline, registry=None)
    values = [float(v) for v in np.random.default_rng(1).uniform(-10, 110, 500)]

    def work(t):
        for i, v in enumerate(values):
            if t % 2 and i % 5 == 0:
                m.observe([{"x": v, "y": None}])
            else:
                m.observe({"x": v, "y": v})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.sample("promdrift_inferences_total") == 4000
    assert m.sample("promdrift_instrumentation_errors_total") == 0
    assert m.sample("promdrift_feature_value_bucket", feature="x", le="+Inf") == 4000
    col = baseline.feature("x")
    v = np.array(values)
    for e, le in zip(col.edges, col.labels):
        assert m.sample("promdrift_feature_value_bucket", feature="x", le=le) == \
            8 * np.count_nonzero(v <= e)
    assert np.isclose(m.sample("promdrift_feature_value_sum", feature="x"), 8 * v.sum())
    n_null = 4 * sum(1 for i in range(500) if i % 5 == 0)
    assert m.sample("promdrift_feature_invalid_total", feature="y", reason="null") == n_null
    assert m.sample("promdrift_feature_value_bucket", feature="y", le="+Inf") == 4000 - n_null


# ------------------------------------------------------------------ properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)

PROP_BASELINE = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "c": ["a", "b", "a", "c", "a"],
                              "p": [0.1, 0.5, 0.2, 0.9, 0.3]},
                             model="prop", predictions="p", bins=3)
FEATURES = ["x", "c"]
row_dicts = st.dictionaries(st.sampled_from(FEATURES + ["other"]), json_values, max_size=3)
PROP = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _consistent(m):
    inf = m.sample("promdrift_inferences_total")
    err = m.sample("promdrift_instrumentation_errors_total")
    assert inf is not None and err is not None
    for name in ("x",):
        count = m.sample("promdrift_feature_value_count", feature=name)
        assert count == m.sample("promdrift_feature_value_bucket", feature=name, le="+Inf")
        buckets = [m.sample("promdrift_feature_value_bucket", feature=name, le=le)
                   for le in PROP_BASELINE.feature(name).labels]
        assert buckets == sorted(buckets)
        invalid = sum(m.sample("promdrift_feature_invalid_total", feature=name, reason=r)
                      for r in ("missing", "null", "nan", "inf", "wrong_type"))
        # Every observed row puts x either in the histogram or in an invalid reason.
        assert count + invalid == inf
    return inf, err


@PROP
@given(features=json_values, prediction=json_values)
def test_observe_never_raises_on_anything(features, prediction):
    m = DriftMonitor(PROP_BASELINE, registry=None)
    m.observe(features)
    m.observe(features, prediction)
    m.observe([features, features], [prediction, prediction])
    inf, err = _consistent(m)
    assert err == 0  # whatever the shape: counted, or refused as the caller's error
    assert m.sample("promdrift_requests_total") == 3
    refused = sum(m.sample("promdrift_requests_invalid_total", reason=r)
                  for r in ("not_json", "not_object", "no_features", "bad_shape"))
    assert refused == m.sample("promdrift_requests_invalid_total", reason="bad_shape") <= 3


@PROP
@given(row=row_dicts, prediction=json_values)
def test_dict_rows_with_any_values_are_counted_without_errors(row, prediction):
    m = DriftMonitor(PROP_BASELINE, registry=None)
    m.observe(row)
    m.observe(row, prediction)
    inf, err = _consistent(m)
    assert (inf, err) == (2, 0)


@PROP
@given(rows=st.lists(row_dicts, min_size=1, max_size=5), data=st.data())
def test_dict_batches_with_any_values_are_counted_without_errors(rows, data):
    preds = data.draw(st.lists(json_values, min_size=len(rows), max_size=len(rows)))
    m = DriftMonitor(PROP_BASELINE, registry=None)
    m.observe(rows)
    m.observe(rows, preds)
    inf, err = _consistent(m)
    assert (inf, err) == (2 * len(rows), 0)
    # Batch and row by row give the same counts.
    r = DriftMonitor(PROP_BASELINE, registry=None)
    for row, p in zip(rows, preds):
        r.observe(row)
        r.observe(row, p)
    assert (r.sample("promdrift_requests_total"), m.sample("promdrift_requests_total")) == \
        (2 * len(rows), 2)
    assert _counts(r) == _counts(m) or _same_up_to_sum(r, m)


def _same_up_to_sum(a, b):
    """Renders equal except float rounding of _sum lines (and the requests, see _counts)."""
    la, lb = _counts(a), _counts(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb):
        if x != y:
            if "_sum{" not in x:
                return False
            if not np.isclose(float(x.rsplit(" ", 1)[1]), float(y.rsplit(" ", 1)[1])):
                return False
    return True
