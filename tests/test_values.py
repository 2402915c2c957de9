"""One set of value rules (promdrift.instrumentation.values) for every caller: observe, the
label join, facets, attributions, the exporter and the offline report judge a value alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promdrift.exporter.report import build_report
from promdrift.exporter.service import create_app
from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.capture import DataCapture
from promdrift.instrumentation.plugins import Call
from promdrift.instrumentation.values import (ABSENT, INF, MISSING, NAN, NULL, REASONS,
                                              VALID, WRONG_TYPE, category, category_key,
                                              is_batch, number)

#: (value, reason as a number, reason as a category)
CASES = [
    (2, VALID, VALID), (2.5, VALID, VALID), (np.float32(0.5), VALID, VALID),
    (np.int64(7), VALID, VALID), (True, VALID, VALID), (np.bool_(False), VALID, VALID),
    ("2", WRONG_TYPE, VALID), (None, NULL, NULL), (ABSENT, MISSING, MISSING),
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
