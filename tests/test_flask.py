"""Flask end to end through app.test_client()."""

import numpy as np
import pytest
from flask import Flask, request
from prometheus_client.parser import text_string_to_metric_families

from promdrift.instrumentation import Baseline, DriftMonitor, NumericColumn

from conftest import PENGUINS_CSV, read_rows

pytest.importorskip("flask")


@pytest.fixture
def rows():
    return read_rows(PENGUINS_CSV)


@pytest.fixture
def app_and_monitor(registry, rows):
    data = {k: [r[k] for r in rows] for k in rows[0]}
    baseline = Baseline.fit(data, model="penguins", predictions="species")
    monitor = DriftMonitor(baseline, registry=registry)
    app = monitor.instrument(Flask("penguins"))

    @app.post("/predict")
    @monitor.track(features="features", prediction="prediction")
    def predict():
        body = request.get_json()
        return {"prediction": body["truth"]}

    @app.post("/broken")
    @monitor.track(features=lambda req: 1 / 0, prediction="prediction")
    def broken():
        return {"prediction": "Adelie"}, 201

    return app, monitor


def _scrape(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200
    values = {}
    for fam in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return resp, values


def _v(values, name, **labels):
    return values[(name, tuple(sorted(labels.items())))]


def test_predict_and_scrape(app_and_monitor, rows):
    app, monitor = app_and_monitor
    client = app.test_client()
    for r in rows:
        feats = {k: v for k, v in r.items() if k != "species"}
        resp = client.post("/predict", json={"features": feats, "truth": r["species"]})
        assert resp.status_code == 200
        assert resp.get_json() == {"prediction": r["species"]}
    resp, values = _scrape(client)
    assert resp.mimetype == "text/plain"
    m = dict(monitor.plan_labels)  # model and baseline
    assert m["model"] == "penguins" and m["baseline"] == monitor.baseline.digest
    assert _v(values, "promdrift_inferences_total", **m) == len(rows)
    assert _v(values, "promdrift_instrumentation_errors_total", **m) == 0
    for cls in ("Adelie", "Gentoo", "Chinstrap"):
        assert _v(values, "promdrift_prediction_class_total", **m, output="species",
                  **{"class": cls}) == sum(r["species"] == cls for r in rows)
    for col in monitor.baseline.features:
        vals = [r[col.name] for r in rows]
        if isinstance(col, NumericColumn):
            valid = np.array([v for v in vals if v is not None])
            for e, le in zip(list(col.edges) + [np.inf], col.labels):
                assert _v(values, "promdrift_feature_value_bucket", **m, feature=col.name,
                          le=le) == np.count_nonzero(valid <= e)
            assert _v(values, "promdrift_feature_invalid_total", **m, feature=col.name,
                      reason="null") == vals.count(None)
        else:
            for cat in col.categories:
                assert _v(values, "promdrift_feature_category_total", **m,
                          feature=col.name, category=cat) == vals.count(cat)


def test_metrics_content_type_is_text_0_0_4(app_and_monitor):
    app, _ = app_and_monitor
    resp = app.test_client().get("/metrics")
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_failing_extractor_does_not_change_the_response(app_and_monitor):
    app, monitor = app_and_monitor
    client = app.test_client()
    resp = client.post("/broken", json={"features": {}})
    assert resp.status_code == 201
    assert resp.get_json() == {"prediction": "Adelie"}
    _, values = _scrape(client)
    m = dict(monitor.plan_labels)
    assert _v(values, "promdrift_instrumentation_errors_total", **m) == 1
    assert _v(values, "promdrift_inferences_total", **m) == 0


def test_missing_features_key_is_the_clients_error_not_a_failure(app_and_monitor):
    app, monitor = app_and_monitor
    resp = app.test_client().post("/predict", json={"truth": "Gentoo"})
    assert resp.status_code == 200
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0
    assert monitor.sample("promdrift_requests_invalid_total", reason="no_features") == 1
    assert monitor.sample("promdrift_requests_total") == 1
    assert monitor.sample("promdrift_inferences_total") == 0


def test_inference_id_reaches_the_label_store(registry, rows):
    data = {k: [r[k] for r in rows] for k in rows[0]}
    baseline = Baseline.fit(data, model="penguins", predictions="species")
    monitor = DriftMonitor(baseline, registry=registry).track_labels(":memory:")
    app = monitor.instrument(Flask("penguins"))

    @app.post("/predict")
    @monitor.track(features="features", prediction="prediction", inference_id="request_id")
    def predict():
        return {"prediction": "Adelie"}

    client = app.test_client()
    feats = {k: v for k, v in rows[0].items() if k != "species"}
    assert client.post("/predict", json={"features": feats, "request_id": "r1"}).status_code == 200
    assert client.post("/predict", json={"features": feats}).status_code == 200  # no id: counted
    assert monitor.record_label("r1", "Gentoo") == "matched"
    assert monitor.record_label("r2", "Gentoo") == "held"       # never observed with that id
    assert monitor.sample("promdrift_inferences_total") == 2.0
    assert monitor.sample("promdrift_quality_confusion_total", output="species",
                          actual="Gentoo", predicted="Adelie") == 1.0
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0.0
    monitor.close()


def test_a_failing_view_counts_its_features_without_a_prediction(registry, penguins_species):
    monitor = DriftMonitor(penguins_species, registry=registry)
    app = monitor.instrument(Flask("failing"))

    @app.post("/predict")
    @monitor.track(features="features", prediction="species")
    def predict():
        raise RuntimeError("the model broke")

    resp = app.test_client().post("/predict", json={"features": {"island": "Dream"}})
    assert resp.status_code == 500
    assert monitor.sample("promdrift_feature_category_total", feature="island",
                          category="Dream") == 1
    assert monitor.sample("promdrift_inferences_total") == 1
    assert monitor.sample("promdrift_prediction_invalid_total", output="species",
                          reason="missing") == 0  # no prediction: not counted at all


#: The bodies of issue 17, and the reason each one is refused for.
CLIENT_ERRORS = [
    (b"{}", "application/json", "no_features"),
    (b'{"features": null, "truth": "Adelie"}', "application/json", "no_features"),
    (b"not json", "application/json", "not_json"),
    (b"", "application/json", "not_json"),
    (b'{"features": {"island": "Dream"}}', "text/plain", "not_json"),
    (b"[1, 2]", "application/json", "not_object"),
    (b"null", "application/json", "not_object"),
    (b'"hello"', "application/json", "not_object"),
    (b'{"features": "hello"}', "application/json", "bad_shape"),
    (b'{"features": 3}', "application/json", "bad_shape"),
    (b'{"features": [1.0, 2.0]}', "application/json", "bad_shape"),
    (b'{"features": [{"island": "Dream"}, "x"]}', "application/json", "bad_shape"),
]


def _penguins_app(monitor):
    """A model server as one is written: its own 400 for a body it cannot use."""
    app = Flask("penguins")

    def predict():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
            return {"error": "expected {\"features\": {...}}"}, 400
        return {"prediction": "Gentoo" if body["features"].get("island") == "Biscoe"
                else "Adelie"}

    if monitor is not None:
        monitor.instrument(app)
        predict = monitor.track(features="features", prediction="prediction")(predict)
    app.add_url_rule("/predict", view_func=predict, methods=["POST"])
    return app.test_client()


def test_bad_clients_are_counted_as_theirs_and_answered_as_without_promdrift(
        registry, penguins_species, caplog):
    monitor = DriftMonitor(penguins_species, registry=registry)
    client, plain = _penguins_app(monitor), _penguins_app(None)
    with caplog.at_level("WARNING", logger="promdrift"):
        for body, ctype, _ in CLIENT_ERRORS:
            got = client.post("/predict", data=body, headers={"Content-Type": ctype})
            want = plain.post("/predict", data=body, headers={"Content-Type": ctype})
            assert (got.status_code, got.get_data()) == (want.status_code, want.get_data())
            assert got.status_code == 400
        # a number sent as text is the number pydantic would serve; a list row in baseline
        # order is a row, answered 400 by this app and counted without a prediction
        ok = client.post("/predict", json={"features": {"island": "Biscoe",
                                                        "bill_length_mm": " 39.1 "}})
        assert ok.get_json() == {"prediction": "Gentoo"}
        row = [None] * len(penguins_species.feature_names)
        assert client.post("/predict", json={"features": row}).status_code == 400
    s = monitor.sample
    for reason in ("not_json", "not_object", "no_features", "bad_shape"):
        assert s("promdrift_requests_invalid_total", reason=reason) == \
            sum(r == reason for _, _, r in CLIENT_ERRORS), reason
    assert s("promdrift_requests_total") == len(CLIENT_ERRORS) + 2
    assert s("promdrift_instrumentation_errors_total") == 0
    assert s("promdrift_inferences_total") == 2
    assert s("promdrift_feature_value_sum", feature="bill_length_mm") == 39.1
    assert s("promdrift_feature_coerced_total", feature="bill_length_mm") == 1
    assert s("promdrift_prediction_class_total", output="species", **{"class": "Gentoo"}) == 1
    assert s("promdrift_feature_invalid_total", feature="island", reason="null") == 1
    (record,) = caplog.records  # one line, no traceback
    assert record.exc_info is None and "promdrift_requests_invalid_total" in record.getMessage()


def test_an_error_answer_counts_the_features_without_a_prediction(registry, penguins_species):
    monitor = DriftMonitor(penguins_species, registry=registry)
    app = Flask("penguins")

    @app.post("/predict")
    @monitor.track(features="features", prediction="prediction")
    def predict():
        if request.get_json()["features"].get("island") == "Atlantis":
            return {"error": "no such island"}, "422 UNPROCESSABLE ENTITY"
        return {"error": "model unavailable"}, 503

    client = app.test_client()
    assert client.post("/predict", json={"features": {"island": "Atlantis"}}).status_code == 422
    assert client.post("/predict", json={"features": {"island": "Dream"}}).status_code == 503
    s = monitor.sample
    assert s("promdrift_feature_category_total", feature="island", category="__other__") == 1
    assert s("promdrift_feature_category_total", feature="island", category="Dream") == 1
    assert s("promdrift_inferences_total") == 2
    assert sum(s("promdrift_prediction_class_total", output="species", **{"class": c})
               for c in ("Adelie", "Gentoo", "Chinstrap", "__other__")) == 0
    assert s("promdrift_instrumentation_errors_total") == 0
