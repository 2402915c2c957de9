"""The exporter app through Flask's test client: ingest semantics equal to in-process
``DriftMonitor``, security (token, limits, 404), field-naming 400s, and an ingest fuzz test."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from promdrift.exporter.service.app import (UNSUPPORTED_TYPE, PayloadError, create_app,
                                            landing_page, parse_observations)
from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.values import ABSENT

from exporter_helpers import drift_samples, samples

URL = "/v1/models/{}/observations"


def split(row):
    feats = {k: v for k, v in row.items() if k != "species"}
    return feats, row["species"]


def make(*baselines, **kwargs):
    registry = CollectorRegistry()
    monitors = [DriftMonitor(b, registry=registry) for b in baselines]
    app = create_app(monitors, **kwargs)
    return app.test_client(), monitors


def test_json_ndjson_and_single_rows_count_exactly_like_in_process(penguins_species,
                                                                   penguins_rows):
    client, (monitor,) = make(penguins_species)
    reference = DriftMonitor(penguins_species, registry=CollectorRegistry())
    third = len(penguins_rows) // 3
    posted = 0  # requests
    # JSON array batches of 25
    for s in range(0, third, 25):
        posted += 1
        batch = [{"features": f, "prediction": p, "id": f"r{s + i}"}
                 for i, (f, p) in enumerate(map(split, penguins_rows[s:min(s + 25, third)]))]
        assert client.post(URL.format("penguins"), json=batch).get_json() == {
            "accepted": len(batch)}
    # NDJSON batches of 50, blank lines allowed
    for s in range(third, 2 * third, 50):
        posted += 1
        lines = [json.dumps({"features": f, "prediction": p}) for f, p in
                 map(split, penguins_rows[s:min(s + 50, 2 * third)])]
        resp = client.post(URL.format("penguins"), data="\n".join(lines) + "\n\n",
                           content_type="application/x-ndjson")
        assert resp.status_code == 200 and resp.get_json()["accepted"] == len(lines)
    # one object per request, some without a prediction
    for i, row in enumerate(penguins_rows[2 * third:]):
        f, p = split(row)
        body = {"features": f} if i % 3 == 0 else {"features": f, "prediction": p}
        assert client.post(URL.format("penguins"), json=body).status_code == 200
        posted += 1
    for i, row in enumerate(penguins_rows):
        f, p = split(row)
        reference.observe(f, None if i >= 2 * third and (i - 2 * third) % 3 == 0 else p)
    served = drift_samples(client.get("/metrics").get_data(as_text=True))
    expected = samples(reference.render())
    assert served.keys() == expected.keys()
    # one request per post (the reference counts one per row)
    (requests,) = [k for k in expected if k[0] == "promdrift_requests_total"]
    assert served.pop(requests) == posted and expected.pop(requests) == len(penguins_rows)
    for key, value in expected.items():
        if key[0].endswith("_sum"):  # float sums: batches add in another order
            assert served[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert served[key] == value, key
    assert monitor.sample("promdrift_inferences_total") == len(penguins_rows)
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0


def test_wrong_types_missing_and_extra_features_are_counted_not_refused(penguins_species):
    client, (m,) = make(penguins_species)
    body = [{"features": {"bill_length_mm": {"nested": [1, 2]}, "island": ["Dream"],
                          "bill_depth_mm": "NaN", "flipper_length_mm": 1e400,
                          "body_mass_g": 10 ** 400, "sex": None, "unknown": 5}},
            {"features": {}}]
    data = json.dumps(body).replace("1e+400", "1e400")
    resp = client.post(URL.format("penguins"), data=data, content_type="application/json")
    assert resp.status_code == 200, resp.get_json()
    v = lambda f, r: m.sample("promdrift_feature_invalid_total", feature=f, reason=r)  # noqa
    assert v("bill_length_mm", "wrong_type") == 1
    assert v("island", "wrong_type") == 1
    assert v("bill_depth_mm", "nan") == 1  # the string "NaN" spells NaN, as pydantic reads it
    assert m.sample("promdrift_feature_coerced_total", feature="bill_depth_mm") == 1
    assert v("flipper_length_mm", "inf") == 1      # 1e400 parses as inf
    assert v("body_mass_g", "inf") == 1            # an integer beyond float range
    assert v("sex", "null") == 1
    for f in ("bill_length_mm", "island", "sex"):
        assert v(f, "missing") == 1                # the empty row
    assert v("year", "missing") == 2
    assert m.sample("promdrift_inferences_total") == 2
    assert m.sample("promdrift_instrumentation_errors_total") == 0
    assert 'feature="unknown"' not in client.get("/metrics").get_data(as_text=True)


def test_json_nan_literals_count_as_nan(penguins_species):
    client, (m,) = make(penguins_species)
    resp = client.post(URL.format("penguins"), data='{"features": {"year": NaN, "bill_length_mm":'
                       ' -Infinity}}', content_type="application/json")
    assert resp.status_code == 200
    assert m.sample("promdrift_feature_invalid_total", feature="year", reason="nan") == 1
    assert m.sample("promdrift_feature_invalid_total", feature="bill_length_mm", reason="inf") == 1


@pytest.mark.parametrize("body, field", [
    ('[{"features": {"year": 1}}, 3]', "rows[1]"),
    ('[{"features": {"year": 1}}, {"features": [1, 2]}]', "rows[1].features"),
    ('{"features": "x"}', "rows[0].features"),
    ('{"prediction": 1}', "rows[0].features"),
    ('{"features": null}', "rows[0].features"),
    ('{"features": {}, "feature": {}}', "rows[0].feature"),
    ('{"features": {}, "a b": 1}', 'rows[0]."a b"'),
    ('{"features": {}, "id": {"x": 1}}', "rows[0].id"),
    ('{"features": {}, "id": true}', "rows[0].id"),
    ('{"features": {}, "id": 1e3}', "rows[0].id"),
    ('{"features": {}, "id": 99999999999999999999}', "rows[0].id"),
    ('"just a string"', "body"),
    ("42", "body"),
    ("{not json", "body"),
    ('{"features": {"x": ' + "[" * 65 + "]" * 65 + "}}", "body"),
    ('[' * 100000 + ']' * 100000, "body"),
    (b'{"features": {"x": "\xff"}}', "body"),
])
def test_structural_errors_are_400_naming_the_field(penguins_species, body, field):
    client, (m,) = make(penguins_species)
    resp = client.post(URL.format("penguins"), data=body, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["field"] == field
    assert m.sample("promdrift_inferences_total") == 0  # nothing of a refused batch counts


def test_id_limits(penguins_species):
    client, _ = make(penguins_species)
    ok = client.post(URL.format("penguins"), json={"features": {}, "id": "x" * 256})
    assert ok.status_code == 200
    long = client.post(URL.format("penguins"), json={"features": {}, "id": "x" * 257})
    assert long.status_code == 400 and long.get_json()["field"] == "rows[0].id"
    assert client.post(URL.format("penguins"), json={"features": {}, "id": -2 ** 63 + 1}
                       ).status_code == 200


def test_ndjson_errors_name_the_row(penguins_species):
    client, _ = make(penguins_species)
    body = '{"features": {}}\n\n{"features": {}}\n{"features": 1}\n'
    resp = client.post(URL.format("penguins"), data=body, content_type="application/x-ndjson")
    assert resp.status_code == 400 and resp.get_json()["field"] == "rows[2].features"
    resp = client.post(URL.format("penguins"), data='{"features": {}}\n{oops\n',
                       content_type="application/x-ndjson")
    assert resp.status_code == 400 and resp.get_json()["field"] == "rows[1]"


def test_multi_output_predictions(penguins_multi):
    client, (m,) = make(penguins_multi)
    ok = [{"features": {}, "prediction": {"species": "Adelie", "body_mass_g": 4000}},
          {"features": {}, "prediction": ["Gentoo", 5000]},
          {"features": {}, "prediction": {"species": "Adelie"}}]
    assert client.post(URL.format("multi"), json=ok).status_code == 200
    assert m.sample("promdrift_prediction_class_total", output="species", **{"class": "Adelie"}) == 2
    assert m.sample("promdrift_prediction_invalid_total", output="body_mass_g",
                    reason="missing") == 1
    for bad in ("Adelie", ["Adelie"], 3):
        resp = client.post(URL.format("multi"), json={"features": {}, "prediction": bad})
        assert resp.status_code == 400 and resp.get_json()["field"] == "rows[0].prediction"


def test_bearer_token(penguins_species):
    client, (m,) = make(penguins_species, token="s3cret-token")
    url = URL.format("penguins")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"},
                    {"Authorization": "Bearer s3cret-token-and-more"},
                    {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
        resp = client.post(url, json={"features": {}}, headers=headers)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # authentication comes before everything else: no model enumeration, no body parsing
    assert client.post(URL.format("nope"), json={}).status_code == 401
    assert client.post(url, data="x" * (2 << 20)).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.post(url, json={"features": {}}, headers=good).status_code == 200
    for scheme in ("bearer", "BEARER", "bEaReR"):  # RFC 7235: the scheme is case-insensitive
        assert client.post(url, json={"features": {}}, headers={
            "Authorization": f"{scheme} s3cret-token"}).status_code == 200
    assert client.post(url, json={"features": {}}, headers={
        "Authorization": "Bearer S3CRET-TOKEN"}).status_code == 401  # the token is not
    assert m.sample("promdrift_inferences_total") == 4
    assert client.post(URL.format("nope"), json={}, headers=good).status_code == 404
    # scrapes stay open unless protect_metrics
    assert client.get("/metrics").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_protect_metrics(penguins_species):
    client, _ = make(penguins_species, token="t0k", protect_metrics=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_body_and_row_limits(penguins_species):
    client, (m,) = make(penguins_species, max_body=1000, max_rows=3)
    url = URL.format("penguins")
    big = json.dumps({"features": {"island": "x" * 1000}})
    resp = client.post(url, data=big, content_type="application/json")
    assert resp.status_code == 413 and "1000 bytes" in resp.get_json()["error"]
    # no Content-Length (chunked): the limit holds while reading
    resp = client.post(url, input_stream=__import__("io").BytesIO(big.encode()),
                       content_type="application/json")
    assert resp.status_code == 413
    four = [{"features": {}}] * 4
    resp = client.post(url, json=four)
    assert resp.status_code == 413 and resp.get_json()["field"] == "rows"
    resp = client.post(url, data="\n".join(map(json.dumps, four)),
                       content_type="application/x-ndjson")
    assert resp.status_code == 413
    assert client.post(url, json=four[:3]).status_code == 200
    assert m.sample("promdrift_inferences_total") == 3


def test_unknown_model_path_method_and_content_type(penguins_species):
    client, _ = make(penguins_species)
    resp = client.post(URL.format("other"), json={"features": {}})
    assert resp.status_code == 404 and resp.get_json()["field"] == "model"
    assert client.get("/nothing").status_code == 404
    assert client.get(URL.format("penguins")).status_code == 405
    resp = client.post(URL.format("penguins"), data="{}", content_type="text/plain")
    assert resp.status_code == 415
    assert resp.get_json() == {"error": UNSUPPORTED_TYPE, "field": "Content-Type"}
    assert "'Content-Type: application/json'" in UNSUPPORTED_TYPE
    # no content type at all is read as JSON
    resp = client.post(URL.format("penguins"), data='{"features": {}}')
    assert resp.status_code == 200


def test_empty_batches(penguins_species):
    client, (m,) = make(penguins_species)
    assert client.post(URL.format("penguins"), json=[]).get_json() == {"accepted": 0}
    assert client.post(URL.format("penguins"), data="\n\n",
                       content_type="application/x-ndjson").get_json() == {"accepted": 0}
    assert m.sample("promdrift_inferences_total") == 0


def test_payload_values_never_reach_logs_responses_or_labels(penguins_species, caplog):
    marker = "VALUE-7f3a9c"
    client, _ = make(penguins_species)
    caplog.set_level(logging.DEBUG)
    url = URL.format("penguins")
    bodies = [{"features": {"island": marker, "bill_length_mm": marker}, "prediction": marker},
              {"features": {"island": marker}, "id": {"x": marker}},
              {"features": marker}, [marker], marker,
              {"features": {"sex": {marker: marker}}, "prediction": [marker]}]
    texts = []
    for body in bodies:
        texts.append(client.post(url, json=body).get_data(as_text=True))
    texts.append(client.post(url, data=marker + "{", content_type="application/json")
                 .get_data(as_text=True))
    texts.append(client.post(url, data=marker, content_type="text/plain").get_data(as_text=True))
    texts.append(client.get("/metrics").get_data(as_text=True))
    texts.append(client.get("/").get_data(as_text=True))
    assert any("400" in r.getMessage() for r in caplog.records)  # rejections are logged ...
    assert marker not in caplog.text                               # ... without values
    assert not any(marker in t for t in texts)


def test_landing_page_and_healthz(penguins_species, penguins_multi):
    client, (m, _) = make(penguins_species, penguins_multi)
    m.observe({"year": 2008})
    resp = client.get("/")
    assert resp.content_type.startswith("text/html")
    page = resp.get_data(as_text=True)
    assert page.startswith("<!DOCTYPE html>") and "<title>promdrift exporter</title>" in page
    assert 'data-model="penguins"' in page and 'data-model="multi"' in page
    assert re.search(r'data-model="penguins".*?data-fact="inferences">1<', page, re.S)
    assert 'href="metrics"' in page and 'href="healthz"' in page
    assert client.get("/healthz").get_json() == {"status": "ok", "models": ["multi", "penguins"]}
    evil = Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="<script>", bins=2)
    html = landing_page([DriftMonitor(evil, registry=None, model_version="<b>")])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


def test_metrics_has_every_model_once(penguins_species, penguins_multi):
    client, _ = make(penguins_species, penguins_multi)
    text = client.get("/metrics").get_data(as_text=True)
    assert text.count("# TYPE promdrift_inferences_total counter") == 1
    values = samples(text)
    for b in (penguins_species, penguins_multi):
        key = (("baseline", b.digest), ("model", b.model))
        assert values[("promdrift_inferences_total", key)] == 0


def test_monitors_without_a_shared_registry(penguins_species, penguins_multi):
    monitors = [DriftMonitor(penguins_species, registry=None),
                DriftMonitor(penguins_multi, registry=None)]
    client = create_app({"a": monitors[0], "b": monitors[1]}).test_client()
    assert client.post(URL.format("multi"), json={"features": {}}).status_code == 200
    values = samples(client.get("/metrics").get_data(as_text=True))
    key = (("baseline", penguins_multi.digest), ("model", "multi"))
    assert values[("promdrift_inferences_total", key)] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"token": ""}, "token"), ({"token": "  "}, "token"), ({"max_body": 0}, "max_body"),
    ({"max_rows": -1}, "max_rows"), ({"max_rows": 1.5}, "max_rows")])
def test_create_app_rejects_bad_settings(penguins_species, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_app([DriftMonitor(penguins_species, registry=None)], **kwargs)


def test_create_app_rejects_a_model_twice(penguins_species):
    with pytest.raises(ValueError, match="twice"):
        create_app([DriftMonitor(penguins_species, registry=None),
                    DriftMonitor(penguins_species, registry=None)])


def test_parse_observations_directly():
    assert parse_observations(b'[{"features": {"a": 1}, "id": 7}, {"features": {}}]', False, 0,
                              5) == ([{"a": 1}, {}], [None, None], [7, None], [ABSENT, ABSENT])
    with pytest.raises(PayloadError) as e:
        parse_observations(b"[]" + b" " * 3, True, 0, 5)
    assert e.value.status == 400 and e.value.field == "rows[0]"


def test_inference_ids_reach_capture_and_the_label_store(penguins_species, tmp_path):
    from promdrift.instrumentation.capture import DataCapture, read_capture
    monitor = DriftMonitor(penguins_species, registry=None,
                           capture=DataCapture(str(tmp_path), registry=None))
    monitor.track_labels(":memory:")
    client = create_app([monitor]).test_client()
    body = [{"features": {"year": 2008}, "prediction": "Adelie", "id": "a"},
            {"features": {"year": 2009}, "prediction": "Gentoo", "id": 7},
            {"features": {"year": 2007}, "prediction": "Adelie"}]
    assert client.post(URL.format("penguins"), json=body).get_json() == {"accepted": 3}
    assert monitor.record_label("a", "Adelie") == "matched"
    assert monitor.record_label("7", "Adelie") == "matched"
    monitor.capture.flush()
    captured = sorted(str(r.get("inference_id")) for r in read_capture(str(tmp_path)))
    assert captured == ["7", "None", "a"]  # the row without an id is captured without one
    assert monitor.sample("promdrift_inferences_total") == 3
    monitor.close()


LABELS_URL = "/v1/models/{}/labels"


def test_labels_join_observations_sent_with_ids(penguins_species, penguins_rows):
    registry = CollectorRegistry()
    monitor = DriftMonitor(penguins_species, registry=registry).track_labels(":memory:")
    client = create_app([monitor], token="t0k").test_client()
    auth = {"Authorization": "Bearer t0k"}
    sent = penguins_rows[:30]
    body = [{"features": split(r)[0], "prediction": "Adelie", "id": f"r{i}"}
            for i, r in enumerate(sent)]
    assert client.post(URL.format("penguins"), json=body, headers=auth).status_code == 200
    labels = [{"inference_id": f"r{i}", "label": r["species"]} for i, r in enumerate(sent)]
    labels.append({"inference_id": "never-seen", "label": "Adelie"})
    r = client.post(LABELS_URL.format("penguins"), json=labels, headers=auth)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["matched"] == 30 and r.get_json()["held"] == 1
    # every prediction was "Adelie": the confusion column "Adelie" holds the true classes
    truth = {c: sum(1 for x in sent if x["species"] == c) for c in {x["species"] for x in sent}}
    for cls, n in truth.items():
        assert monitor.sample("promdrift_quality_confusion_total", output="species",
                              actual=cls, predicted="Adelie") == float(n)
    # a duplicate is counted, never joined twice
    again = client.post(LABELS_URL.format("penguins"), json=labels[:1], headers=auth)
    assert again.status_code == 200 and again.get_json()["duplicate"] == 1
    monitor.close()


def test_labels_route_errors(penguins_species):
    tracked = DriftMonitor(penguins_species, model="tracked",
                           registry=None).track_labels(":memory:")
    plain = DriftMonitor(penguins_species, model="plain", registry=None)
    client = create_app([tracked, plain], token="t0k", max_body=2000).test_client()
    auth = {"Authorization": "Bearer t0k"}
    ok = [{"inference_id": "a", "label": "Adelie"}]
    assert client.post(LABELS_URL.format("tracked"), json=ok).status_code == 401
    assert client.post(LABELS_URL.format("nope"), json=ok, headers=auth).status_code == 404
    assert client.post(LABELS_URL.format("plain"), json=ok, headers=auth).status_code == 409
    bad = client.post(LABELS_URL.format("tracked"), json=[{"label": 1}], headers=auth)
    assert bad.status_code == 400 and "inference_id" in bad.get_json()["error"]
    big = [{"inference_id": f"id{i}", "label": "Adelie"} for i in range(200)]
    assert client.post(LABELS_URL.format("tracked"), json=big, headers=auth).status_code == 413
    tracked.close()


def test_own_metrics_count_every_answer_and_refusal_by_reason(penguins_species):
    client, (m,) = make(penguins_species, token="t0k", max_rows=2)
    auth = {"Authorization": "Bearer t0k"}
    url = URL.format("penguins")
    assert client.post(url, json={"features": {}}).status_code == 401
    assert client.post(URL.format("nope"), json={"features": {}}, headers=auth).status_code == 404
    assert client.post(url, data="{", content_type="application/json",
                       headers=auth).status_code == 400
    assert client.post(url, json=[{"features": {}}] * 3, headers=auth).status_code == 413
    assert client.post(url, data="x", content_type="text/plain", headers=auth).status_code == 415
    assert client.post(url, json=[{"features": {"year": 2008}}] * 2, headers=auth).get_json() == {
        "accepted": 2}
    assert client.post("/v1/models/penguins/labels", json={"inference_id": "a", "label": "x"},
                       headers=auth).status_code == 409
    values = samples(client.get("/metrics").get_data(as_text=True))

    def v(name, **labels):
        return values.get((name, tuple(sorted(labels.items()))))

    for reason in ("unauthorized", "unknown_model", "bad_payload", "too_many_rows",
                   "unsupported_type"):
        assert v("promdrift_exporter_rejected_total", route="observations", reason=reason) == 1
    assert v("promdrift_exporter_rejected_total", route="labels",
             reason="not_tracking_labels") == 1
    for code, n in (("200", 1), ("401", 1), ("404", 1), ("400", 1), ("413", 1), ("415", 1)):
        assert v("promdrift_exporter_requests_total", route="observations", code=code) == n
    assert v("promdrift_exporter_rows_total", route="observations", model="penguins") == 2
    assert m.sample("promdrift_inferences_total") == 2
    # durations of every answered ingest request, body sizes of every body read
    assert v("promdrift_exporter_request_duration_seconds_count", route="observations") == 6
    body = len(json.dumps([{"features": {"year": 2008}}] * 2))
    assert body <= 256 and v("promdrift_exporter_request_body_bytes_bucket",
                             route="observations", le="256.0") >= 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the documented sum
def test_sums_near_the_float_limit_are_approximate_and_counts_exact(penguins_species):
    """docs/metrics.md: a ``_sum`` over values near ±1.8e308 overflows (±Inf, then NaN);
    buckets and ``_count`` stay exact and nothing fails."""
    client, (m,) = make(penguins_species)
    rows = [{"features": {"body_mass_g": x}} for x in (1.7e308, 1.7e308, -1.7e308, -1.7e308)]
    assert client.post(URL.format("penguins"), json=rows).get_json() == {"accepted": 4}
    count = m.sample("promdrift_feature_value_count", feature="body_mass_g")
    first = m.sample("promdrift_feature_value_bucket", feature="body_mass_g",
                     le=m.baseline.feature("body_mass_g").labels[0])
    assert (count, first) == (4, 2)
    total = m.sample("promdrift_feature_value_sum", feature="body_mass_g")
    assert not np.isfinite(total)
    assert m.sample("promdrift_instrumentation_errors_total") == 0


def test_numbers_as_text_count_as_numbers_unless_no_coerce_numbers(penguins_species, tmp_path):
    from promdrift.exporter.cli import build_parser
    from promdrift.exporter.service.command import make_app
    path = str(tmp_path / "penguins.json")
    penguins_species.save(path)
    body = [{"features": {"bill_length_mm": " 39.1 ", "bill_depth_mm": "1e400",
                          "year": "2008 AD"}, "prediction": "Adelie"}]
    got = {}
    for coerce in (True, False):
        client = make_app([path], coerce_numbers=coerce).test_client()
        assert client.post(URL.format("penguins"), json=body).status_code == 200
        got[coerce] = samples(client.get("/metrics").get_data(as_text=True))

    def v(coerce, name, feature, **labels):
        """The one sample of ``name`` with these labels (and the model's own)."""
        want = {"feature": feature, **labels}.items()
        (value,) = [x for (n, lab), x in got[coerce].items()
                    if n == name and want <= dict(lab).items()]
        return value

    assert v(True, "promdrift_feature_value_sum", "bill_length_mm") == 39.1
    assert v(True, "promdrift_feature_coerced_total", "bill_length_mm") == 1
    assert v(True, "promdrift_feature_invalid_total", "bill_depth_mm", reason="inf") == 1
    assert v(True, "promdrift_feature_invalid_total", "year", reason="wrong_type") == 1
    for f in ("bill_length_mm", "bill_depth_mm", "year"):
        assert v(False, "promdrift_feature_invalid_total", f, reason="wrong_type") == 1
        assert v(False, "promdrift_feature_coerced_total", f) == 0
    parse = build_parser().parse_args
    assert parse(["exporter", "--baseline", path]).coerce_numbers is True
    assert parse(["exporter", "--baseline", path, "--no-coerce-numbers"]).coerce_numbers is False
    assert parse(["report", "d", "--baseline", path, "-o", "r.html",
                  "--no-coerce-numbers"]).coerce_numbers is False


def test_unreadable_bodies_are_counted_for_the_model_by_reason(penguins_species):
    client, (m,) = make(penguins_species)
    cases = [(b"not json", "application/json", "not_json"),
             (b"\xff", "application/json", "not_json"),
             (b'{"features": {}}', "text/plain", "not_json"),
             (b'"hello"', "application/json", "not_object"),
             (b"[1, 2]", "application/json", "not_object"),
             (b"{}", "application/json", "no_features"),
             (b'{"features": null}', "application/json", "no_features"),
             (b'{"features": "hello"}', "application/json", "bad_shape"),
             (b'{"features": [1.0, 2.0]}', "application/json", "bad_shape"),
             (b'{"features": {}, "truth": 1}', "application/json", "bad_shape")]
    for body, ctype, _ in cases:
        resp = client.post(URL.format("penguins"), data=body, headers={"Content-Type": ctype})
        assert resp.status_code == (415 if ctype == "text/plain" else 400), body
    assert client.post(URL.format("penguins"), json=[]).get_json() == {"accepted": 0}
    assert client.post(URL.format("nope"), data=b"x").status_code == 404  # no model: not counted
    for reason in ("not_json", "not_object", "no_features", "bad_shape"):
        assert m.sample("promdrift_requests_invalid_total", reason=reason) == \
            sum(r == reason for _, _, r in cases), reason
    assert m.sample("promdrift_requests_total") == len(cases) + 1
    assert m.sample("promdrift_inferences_total") == 0
    assert m.sample("promdrift_instrumentation_errors_total") == 0
