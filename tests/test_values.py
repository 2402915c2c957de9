"""One set of value rules (promdrift.instrumentation.values) for every caller: observe, the
label join, facets, attributions, the exporter and the offline report judge a value alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promdrift.exporter.report import build_report
from promdrift.exporter.service.app import create_app
from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.capture import DataCapture
from promdrift.instrumentation.counting.plugins import Call
from promdrift.instrumentation.values import (ABSENT, INF, MISSING, NAN, NULL, REASONS,
                                              VALID, WRONG_TYPE, category, category_key,
                                              finite_number, is_batch, number, text_number)

#: (value, reason as a number, reason as a category)
CASES = [
    (2, VALID, VALID), (2.5, VALID, VALID), (np.float32(0.5), VALID, VALID),
    (np.int64(7), VALID, VALID), (True, VALID, VALID), (np.bool_(False), VALID, VALID),
    ("2", VALID, VALID), (" 2.5\n", VALID, VALID), ("1_000", VALID, VALID),
    ("2x", WRONG_TYPE, VALID), ("", WRONG_TYPE, VALID), ("nan", NAN, VALID),
    ("-Infinity", INF, VALID), ("1e400", INF, VALID),
    (None, NULL, NULL), (ABSENT, MISSING, MISSING),
    (math.nan, NAN, NAN), (np.float64("nan"), NAN, NAN), (math.inf, INF, INF),
    (-math.inf, INF, INF), (10 ** 400, INF, VALID), ([1], WRONG_TYPE, WRONG_TYPE),
    ({"a": 1}, WRONG_TYPE, WRONG_TYPE), (object(), WRONG_TYPE, WRONG_TYPE),
]


@pytest.mark.parametrize("value,as_number,as_category", CASES)
def test_the_rules(value, as_number, as_category):
    assert number(value)[0] == as_number
    assert category(value)[0] == as_category


@pytest.mark.parametrize("value,as_number,as_category", CASES)
def test_observe_counts_by_the_rules(value, as_number, as_category):
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}, bins=2, model="v")
    m = DriftMonitor(b, registry=None)
    row = {} if value is ABSENT else {"x": value, "c": value}
    m.observe(row)
    m.observe([row, row])  # the batch path judges alike
    for feature, reason in (("x", as_number), ("c", as_category)):
        for i, name in enumerate(REASONS):
            assert m.sample("promdrift_feature_invalid_total", feature=feature,
                            reason=name) == (3.0 if i == reason else 0.0), (feature, name)
    assert m.sample("promdrift_feature_value_count", feature="x") == (
        3.0 if as_number == VALID else 0.0)


def test_batch_or_row_is_one_rule():
    for features, batch in (({"x": 1}, False), ([{"x": 1}], True), ([1.0, 2.0], False),
                            (np.zeros(3), False), (np.zeros((2, 3)), True), ([], False),
                            ([[1.0], [2.0]], True), (((1.0,), (2.0,)), True)):
        assert is_batch(features) is batch
        assert Call(None, features, None, None, None).batch is batch


def test_a_bool_is_the_number_one_for_every_caller():
    """The same True: counted 1.0 in the prediction histogram, joined with a numeric label
    (not invalid), counted 1.0 as an attribution and as a captured value in the report."""
    b = Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.5, 1.0, 1.5]}, predictions="y",
                     bins=2, model="bools")
    b = b.with_attributions({"x": [1.0, 2.0]})
    m = DriftMonitor(b, registry=None).track_labels(":memory:").track_attributions()
    m.observe({"x": True}, True, inference_id="a", attributions={"x": True})
    assert m.sample("promdrift_prediction_value_sum", output="y") == 1.0
    assert m.sample("promdrift_feature_value_sum", feature="x") == 1.0
    assert m.record_label("a", True) == "matched"
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="invalid") == 0
    assert m.sample("promdrift_quality_error_count", output="y") == 1
    assert m.sample("promdrift_quality_error_sum", output="y") == 0.0  # |True - True|
    assert m.sample("promdrift_attribution_abs_sum_total", feature="x") == 1.0
    m.close()


def test_a_bool_class_and_an_integer_class_are_one_category():
    ints = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 1, 0]}, predictions="y",
                        categorical=["y"], model="ints")
    bools = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0], "y": [False, True, True, False]},
                         predictions="y", model="bools")
    assert ints.prediction("y").categories == ("0", "1")
    assert bools.prediction("y").categories == ("False", "True")
    for b, sent in ((ints, [True, np.bool_(True), 1, 1.0, "1"]),
                    (bools, [True, 1, np.int64(1), 1.0, "True"])):
        m = DriftMonitor(b, registry=None)
        for p in sent:
            m.observe({"x": 1.0}, p)
        one = b.prediction("y").categories[1]
        assert m.sample("promdrift_prediction_class_total", output="y",
                        **{"class": one}) == len(sent)
        assert m.sample("promdrift_prediction_class_total", output="y",
                        **{"class": "__other__"}) == 0


def test_a_class_is_keyed_by_value_whatever_json_type_a_client_sends(tmp_path):
    """A categorical output fitted from the integers 0, 1, 2: the number 2, 2.0, numpy's 2
    and the string "2" are class "2" for observe, the label join, facets, the exporter and
    the offline report; the string "2.0" is another category (strings are never parsed)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    b = Baseline.fit({"x": rng.normal(size=300), "g": rng.choice(["a", "b"], size=300),
                      "y": y}, predictions="y", categorical=["y"], model="classes")
    assert sorted(b.prediction("y").categories) == ["0", "1", "2"]
    assert [category_key(v) for v in (2, 2.0, np.int64(2), np.float32(2.0), "2", "2.0")] == [
        "2", "2", "2", "2", "2", "2.0"]
    sent = [2, 2.0, np.int64(2), "2", "2.0"]
    capture = DataCapture(str(tmp_path), registry=None)
    m = DriftMonitor(b, registry=None, capture=capture).track_labels(":memory:").track_facets("g")
    for i, p in enumerate(sent):
        m.observe({"x": 0.1, "g": "a"}, p, inference_id=f"r{i}")
        m.record_label(f"r{i}", 2)
    cls = {"output": "y"}
    assert m.sample("promdrift_prediction_class_total", **cls, **{"class": "2"}) == 4
    assert m.sample("promdrift_prediction_class_total", **cls, **{"class": "__other__"}) == 1
    assert m.sample("promdrift_quality_confusion_total", **cls, actual="2", predicted="2") == 4
    assert m.sample("promdrift_quality_confusion_total", **cls, actual="2",
                    predicted="__other__") == 1
    assert m.sample("promdrift_bias_predictions_total", facet="g", group="a", **cls,
                    **{"class": "2"}) == 4
    capture.flush()
    report = build_report(b, str(tmp_path))
    (out,) = [f for f in report.features if f.name == "y"]
    two = b.prediction("y").categories.index("2")
    assert out.counts[two] == 4 and out.counts[-1] == 1 and out.counts.sum() == 5
    # the exporter: JSON numbers and strings as clients send them
    e = DriftMonitor(b, registry=None)
    client = create_app([e]).test_client()
    assert client.post("/v1/models/classes/observations", json=[
        {"features": {"x": 0.1}, "prediction": p} for p in (2, 2.0, "2", "2.0")]).status_code \
        == 200
    assert e.sample("promdrift_prediction_class_total", **cls, **{"class": "2"}) == 3
    m.close()
    capture.close()


# ---------------------------------------------------------------------- numbers as text

#: (string, the number it spells or None): what pydantic v2 reads for a float field
TEXT_NUMBERS = [
    ("27", 27.0), ("2.5", 2.5), ("1e3", 1000.0), ("1E+05", 1e5), (" 27 ", 27.0),
    ("\t27\n", 27.0), ("\u00a027\u3000", 27.0), ("+5", 5.0), ("-.5", -0.5), ("5.", 5.0),
    ("00012", 12.0), ("-0", -0.0), ("1_000", 1000.0), ("1_000.5", 1000.5), ("in_f", math.inf),
    ("nan", math.nan), ("NaN", math.nan), ("-nan", math.nan), ("inf", math.inf),
    ("-Infinity", -math.inf), ("1e400", math.inf), ("1e-400", 0.0),
    ("", None), (" ", None), ("27 kg", None), ("1,5", None), ("0x1F", None), ("1__0", None),
    ("_1", None), ("1_", None), (" 1_000", None), ("\u00b9", None), ("\uff11\uff12", None),
    ("\u0663", None), ("\x1c1", None), ("\u200b1", None), ("e5", None), ("1e", None),
    (".", None), ("--1", None), ("infinit", None), ("None", None), ("null", None),
    ("true", None),
]


@pytest.mark.parametrize("text, value", TEXT_NUMBERS)
def test_text_number_reads_what_pydantic_reads(text, value):
    got = text_number(text)
    if value is None:
        assert got is None
    elif math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value and math.copysign(1, got) == math.copysign(1, value)


def test_text_number_agrees_with_pydantic_on_generated_strings():
    """Seeded strings of digits, signs, points, exponents, underscores, letters of inf and
    nan, and white space of every kind: text_number accepts exactly what pydantic's float
    field accepts, as the same number."""
    pydantic = pytest.importorskip("pydantic")
    adapter = pydantic.TypeAdapter(float)
    rng = np.random.default_rng(17)
    alphabet = list("0123456789._eE+-_infatyINFATY") + [
        " ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000",
        "\u200b", "\ufeff", "\uff11", "\x00"]
    fixed = [t for t, _ in TEXT_NUMBERS]
    generated = ["".join(rng.choice(alphabet, size=rng.integers(0, 10))) for _ in range(20_000)]
    accepted = 0
    for text in fixed + generated:
        try:
            want = adapter.validate_python(text)
        except pydantic.ValidationError:
            want = None
        got = text_number(text)
        if want is None or got is None:
            assert got is want, repr(text)
        else:
            accepted += 1
            assert got == want or (math.isnan(got) and math.isnan(want)), repr(text)
    assert accepted > 500  # the generated strings reach the accepting side too


def test_strings_are_wrong_type_when_coercion_is_off():
    assert number("27")[0] == VALID and number("27", coerce=False)[0] == WRONG_TYPE
    assert finite_number("27") == 27.0 and finite_number("27", coerce=False) is None
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "y": [0.5, 1.0, 1.5]}, predictions="y", bins=2,
                     model="strict")
    lax, strict = (DriftMonitor(b, registry=None, coerce_numbers=c) for c in (True, False))
    for m in (lax, strict):
        m.observe({"x": "2.5"}, "1.0")
        m.observe([{"x": " 2 "}, {"x": "nan"}], ["1.5", 1.0])
    s = lax.sample
    assert s("promdrift_feature_value_count", feature="x") == 2
    assert s("promdrift_feature_value_sum", feature="x") == 4.5
    assert s("promdrift_feature_invalid_total", feature="x", reason="nan") == 1
    assert s("promdrift_feature_coerced_total", feature="x") == 3  # "nan" too: read as NaN
    assert s("promdrift_prediction_value_sum", output="y") == 3.5
    assert s("promdrift_prediction_coerced_total", output="y") == 2
    s = strict.sample
    assert s("promdrift_feature_value_count", feature="x") == 0
    assert s("promdrift_feature_invalid_total", feature="x", reason="wrong_type") == 3
    assert s("promdrift_feature_coerced_total", feature="x") == 0
    assert s("promdrift_prediction_invalid_total", output="y", reason="wrong_type") == 2
    assert s("promdrift_prediction_value_count", output="y") == 1
    assert s("promdrift_prediction_coerced_total", output="y") == 0


def test_a_number_as_text_counts_as_the_number_on_every_path():
    """dict and list rows, dict, list and object-array batches, with derived features or
    not: "27" is binned as 27 and counted as coerced, exactly as the number 27 would be."""
    rng = np.random.default_rng(5)
    data = {"a": rng.normal(size=200), "b": rng.normal(size=200)}
    for extra in ({}, {"multivariate": 1}):
        b = Baseline.fit(data, bins=4, model="paths", **extra)
        text, numbers = DriftMonitor(b, registry=None), DriftMonitor(b, registry=None)
        values = [0.25, -1.5, 3.0]
        for v in values:
            text.observe({"a": f" {v!r} ", "b": v})
            numbers.observe({"a": v, "b": v})
            text.observe([repr(v), v])
            numbers.observe([v, v])
        text.observe([{"a": repr(v), "b": v} for v in values])
        numbers.observe([{"a": v, "b": v} for v in values])
        text.observe(np.array([[repr(v), v] for v in values], dtype=object))
        numbers.observe(np.array([[v, v] for v in values]))
        assert text.sample("promdrift_feature_coerced_total", feature="a") == 4 * len(values)
        assert numbers.sample("promdrift_feature_coerced_total", feature="a") == 0
        assert text.sample("promdrift_feature_coerced_total", feature="b") == 0
        for name in b.feature_names + [c.name for c in b.derived]:
            for le in (["+Inf"] + [lab for lab in b.feature(name).labels]
                       if name in b.feature_names else ["+Inf"]):
                assert text.sample("promdrift_feature_value_bucket", feature=name, le=le) == \
                    numbers.sample("promdrift_feature_value_bucket", feature=name, le=le), \
                    (extra, name, le)
        assert text.sample("promdrift_instrumentation_errors_total") == 0


def test_numbers_as_text_for_labels_attributions_and_the_report(tmp_path):
    """The label join, attributions and ``promdrift report`` read a number sent as text as
    the monitor does, and keep it wrong_type when coercion is off."""
    b = Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.5, 1.0, 1.5]}, predictions="y",
                     bins=2, model="text").with_attributions({"x": [1.0, 2.0]})
    for coerce in (True, False):
        directory = tmp_path / str(coerce)
        capture = DataCapture(str(directory), registry=None)
        m = DriftMonitor(b, registry=None, capture=capture, coerce_numbers=coerce)
        m.track_labels(":memory:").track_attributions()
        m.observe({"x": "1.5"}, "0.5", inference_id="a", attributions={"x": "-0.25"})
        m.observe({"x": 1.5}, 0.5, inference_id="b", attributions={"x": -0.25})
        assert m.record_label("a", "1.0") == "matched"
        assert m.record_label("b", 1.0) == "matched"
        unmatched = m.sample("promdrift_quality_labels_unmatched_total", reason="invalid")
        assert unmatched == (0 if coerce else 1)
        assert m.sample("promdrift_quality_error_sum", output="y") == (1.0 if coerce else 0.5)
        assert m.sample("promdrift_attribution_values_total", feature="x") == \
            (2 if coerce else 1)
        capture.flush()
        report = build_report(b, str(directory), coerce_numbers=coerce)
        (x,) = [f for f in report.features if f.name == "x"]
        assert (x.wrong_type, int(x.counts.sum())) == ((0, 2) if coerce else (1, 1))
        m.close()
        capture.close()
