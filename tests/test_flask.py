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


def test_missing_features_key_is_an_error_not_a_failure(app_and_monitor):
    app, monitor = app_and_monitor
    resp = app.test_client().post("/predict", json={"truth": "Gentoo"})
    assert resp.status_code == 200
    assert monitor.sample("promdrift_instrumentation_errors_total") == 1
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
