"""The ASGI integration: FastAPI and Starlette through their test client, any ASGI callable,
the lifespan, and real uvicorn servers on 127.0.0.1 (several workers, restarts, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
from typing import Any, Dict, Optional

import pytest

from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.web import asgi as asgi_module
from promdrift.instrumentation.capture import DataCapture, read_capture
from promdrift.instrumentation.counting.exposition import PER_PROCESS_FAMILIES

from exporter_helpers import GunicornProcess, samples, wait_until
from exporter_helpers import http as http_request
from served_scenario import (assert_exact_totals, exercise, families, free_port, server_env,
                             split, uvicorn_argv)

fastapi = pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402


class Features(BaseModel):
    """The usual typed request model: a coerced float, an aliased name."""
    model_config = ConfigDict(populate_by_name=True)
    bill_length_mm: Optional[float] = None
    flipper_length_mm: Optional[float] = None
    island: Optional[str] = None
    body_mass_g: Optional[float] = Field(None, alias="body mass (g)")


class Observation(BaseModel):
    features: Features
    truth: str = "Adelie"


def aliased(penguins_species):
    """The penguins baseline with ``body_mass_g`` named as its JSON clients spell it."""
    import dataclasses
    feats = tuple(dataclasses.replace(c, name="body mass (g)") if c.name == "body_mass_g"
                  else c for c in penguins_species.features)
    return dataclasses.replace(penguins_species, features=feats)


@pytest.fixture
def served(penguins_species, registry):
    """A FastAPI app with tracked ``async def`` and ``def`` routes of several shapes."""
    b = aliased(penguins_species)
    monitor = DriftMonitor(b, registry=registry)
    app = monitor.instrument(FastAPI())

    @app.post("/predict")
    @monitor.track(features="features", prediction="species")
    async def predict(body: Observation) -> Dict[str, str]:
        return {"species": body.truth}

    @app.post("/sync/{version}")
    @monitor.track(features="features", prediction="species")
    def sync_predict(version: int, body: Observation, request: Request,
                     verbose: bool = False) -> Dict[str, Any]:
        assert request.url.path == f"/sync/{version}"
        return {"species": body.truth, "version": version, "verbose": verbose}

    @app.post("/raw")
    @monitor.track(features=lambda body: body["rows"][0], prediction="species")
    async def raw(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"species": body["rows"][0]["island"] and "Gentoo"})

    class Answer(BaseModel):
        species: str

    @app.post("/model", response_model=Answer)
    @monitor.track(features="features", prediction="species")
    async def model(body: Observation) -> Answer:
        return Answer(species=body.truth)

    @app.post("/fails")
    @monitor.track(features="features", prediction="species")
    async def fails(body: Observation) -> Dict[str, str]:
        raise RuntimeError("the model broke")

    return app, monitor, b


def test_tracked_routes_count_what_a_direct_observe_counts(served, penguins_rows):
    app, monitor, b = served
    reference = DriftMonitor(b, registry=None)
    with TestClient(app) as client:
        for i, row in enumerate(penguins_rows[:60]):
            features, truth = split(row)
            features["body mass (g)"] = features.pop("body_mass_g")
            body = {"features": features, "truth": truth}
            path = ("/predict", "/sync/3?verbose=true", "/model")[i % 3]
            resp = client.post(path, json=body)
            assert resp.status_code == 200, resp.text
            reference.observe(features, truth)
        resp = client.post("/raw", json={"rows": [{"island": "Dream", "year": 2008}]})
        assert resp.json() == {"species": "Gentoo"}
        reference.observe({"island": "Dream", "year": 2008}, "Gentoo")
        text = client.get("/metrics").text
    got = samples(text)
    want = samples(reference.render())
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0
    # the aliased feature kept its JSON name: missing only from /raw's row, which lacks it
    assert monitor.sample("promdrift_feature_invalid_total", feature="body mass (g)",
                          reason="missing") == 1
    assert monitor.sample("promdrift_feature_value_count", feature="body mass (g)") == sum(
        r["body_mass_g"] is not None for r in penguins_rows[:60])


def test_values_a_422_rejects_are_counted_invalid_by_reason(served):
    app, monitor, _ = served
    with TestClient(app) as client:
        bad = [{"bill_length_mm": "13.5x", "island": "Dream"},  # wrong type (422)
               {"bill_length_mm": "13.5", "island": ["Dream"]},  # coerced; a list (422)
               {"flipper_length_mm": [1], "island": None}]  # a list (422), null
        for features in bad:
            assert client.post("/predict", json={"features": features}).status_code == 422
        assert client.post("/predict", json={"features": {"bill_length_mm": "13.5"}}
                           ).status_code == 200
        assert client.post("/predict", content=b"{not json",
                           headers={"content-type": "application/json"}).status_code == 422
    s = monitor.sample
    assert s("promdrift_inferences_total") == 4  # the unparseable body is no inference
    assert s("promdrift_requests_total") == 5  # ... but a request of the client's making
    assert s("promdrift_requests_invalid_total", reason="not_json") == 1
    assert s("promdrift_instrumentation_errors_total") == 0
    assert s("promdrift_feature_invalid_total", feature="bill_length_mm",
             reason="wrong_type") == 1  # "13.5x"; "13.5" is the number pydantic serves
    assert s("promdrift_feature_coerced_total", feature="bill_length_mm") == 2
    assert s("promdrift_feature_value_count", feature="bill_length_mm") == 2
    assert s("promdrift_feature_value_sum", feature="bill_length_mm") == 27.0
    assert s("promdrift_feature_invalid_total", feature="island", reason="wrong_type") == 1
    assert s("promdrift_feature_invalid_total", feature="island", reason="null") == 1
    assert s("promdrift_feature_invalid_total", feature="flipper_length_mm",
             reason="wrong_type") == 1
    assert s("promdrift_prediction_class_total", output="species", **{"class": "Adelie"}) == 1


def test_a_failing_endpoint_counts_its_features_without_a_prediction(served):
    app, monitor, _ = served
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/fails", json={"features": {"island": "Biscoe"}}).status_code == 500
    assert monitor.sample("promdrift_feature_category_total", feature="island",
                          category="Biscoe") == 1
    assert monitor.sample("promdrift_prediction_class_total", output="species",
                          **{"class": "Adelie"}) == 0


def test_the_hidden_request_parameter_is_no_api_parameter(served):
    app, _, _ = served
    spec = app.openapi()
    for path in ("/predict", "/sync/{version}", "/model"):
        params = [p["name"] for p in spec["paths"][path]["post"].get("parameters", [])]
        assert "promdrift_request" not in params
    assert [p["name"] for p in spec["paths"]["/sync/{version}"]["post"]["parameters"]] == [
        "version", "verbose"]


def test_metrics_and_the_landing_page(served):
    app, monitor, _ = served
    with TestClient(app) as client:
        resp = client.get("/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert resp.content == monitor.metrics_text()
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<a href="/metrics">' in page.text and page.text.count('<svg class="hist"') > 5
        assert client.head("/metrics").content == b""
        assert client.get("/nothing").status_code == 404

        @app.get("/")  # the app's own page, added after instrument(): it wins
        async def index() -> Dict[str, str]:
            return {"page": "mine"}
    with TestClient(app) as client:
        assert client.get("/").json() == {"page": "mine"}


def test_starlette_and_any_asgi_callable(penguins_species, registry):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse as StarletteJSON
    from starlette.routing import Route
    monitor = DriftMonitor(penguins_species, registry=registry)

    @monitor.track(features="features", prediction="species")
    async def predict(request):
        body = await request.json()
        return StarletteJSON({"species": body["truth"]})

    @monitor.track(features="features", prediction="species")
    def sync_predict(request):  # run in a thread by Starlette
        return StarletteJSON({"species": "Gentoo"})

    app = monitor.instrument(Starlette(routes=[Route("/p", predict, methods=["POST"]),
                                               Route("/s", sync_predict, methods=["POST"])]))
    with TestClient(app) as client:
        assert client.post("/p", json={"features": {"year": 2008}, "truth": "Adelie"}
                           ).status_code == 200
        assert client.post("/s", json={"features": {"year": 2009}}).status_code == 200
        assert client.get("/metrics").status_code == 200
    assert monitor.sample("promdrift_inferences_total") == 2
    assert monitor.sample("promdrift_prediction_class_total", output="species",
                          **{"class": "Gentoo"}) == 1

    async def bare(scope, receive, send):  # a raw ASGI app: no lifespan, a 404 at /
        if scope["type"] != "http":
            raise RuntimeError("only http")
        status = 404 if scope["path"] == "/" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"bare"})

    other = DriftMonitor(penguins_species, registry=registry, model="other")
    wrapped = other.instrument(bare)
    assert wrapped is not bare
    with TestClient(wrapped) as client:  # the lifespan is ours alone
        assert client.get("/x").text == "bare"
        assert "promdrift_inferences_total" in client.get("/metrics").text
        assert "<html" in client.get("/").text


def test_lifespan_refuses_several_workers_without_a_directory(penguins_species, registry,
                                                              monkeypatch):
    monitor = DriftMonitor(penguins_species, registry=registry)
    app = monitor.instrument(FastAPI())
    monkeypatch.delenv("PROMDRIFT_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(asgi_module, "worker_count", lambda: 3)
    with pytest.raises(Exception, match="PROMDRIFT_MULTIPROC_DIR is not set: with 3 workers"):
        with TestClient(app):
            pass
    monkeypatch.setattr(asgi_module, "worker_count", lambda: 1)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 200


def test_lifespan_shutdown_finalises_data_capture(penguins_species, registry, tmp_path):
    capture = DataCapture(str(tmp_path), flush_interval=30.0, registry=None)
    monitor = DriftMonitor(penguins_species, registry=registry, capture=capture)
    app = monitor.instrument(FastAPI())

    @app.post("/predict")
    @monitor.track(features="features", prediction="species", inference_id="id")
    async def predict(body: Dict[str, Any]) -> Dict[str, str]:
        return {"species": "Adelie"}

    with TestClient(app) as client:
        for i in range(25):
            client.post("/predict", json={"features": {"year": 2007 + i % 3}, "id": f"r{i}"})
        assert read_capture(str(tmp_path)) == []  # queued: the writer wakes every 30 s
    names = os.listdir(tmp_path)
    assert names and not any(n.endswith(".part") for n in names)  # finalised
    assert [r["inference_id"] for r in read_capture(str(tmp_path))] == [
        f"r{i}" for i in range(25)]
    assert monitor.sample("promdrift_capture_rows_total") == 25
    capture.close()


# ---------------------------------------------------------------------- real uvicorn
Uvicorn = GunicornProcess  # any server process: started, polled on /healthz, SIGTERM'd


def test_uvicorn_workers_exact_totals_across_restarts_and_runs(penguins_rows, baseline_path,
                                                               tmp_path):
    port = free_port()
    mp, capture = tmp_path / "mp", tmp_path / "capture"
    mp.mkdir()
    env = server_env(baseline_path, str(capture), str(mp))
    argv = uvicorn_argv(port, "--workers", "2", "--limit-max-requests", "50")
    with Uvicorn(argv, port, env=env, log_path=str(tmp_path / "run1.log")) as server:
        reference = exercise(port, penguins_rows, baseline_path, str(tmp_path / "reference"),
                             threads=4, per_thread=40)
        assert_exact_totals(port, reference)
        log = server.log()
    assert log.count("died") >= 2, log  # workers reached the limit and were replaced
    sent = int(reference.sample("promdrift_inferences_total"))
    # SIGTERM: every worker's lifespan shutdown finalised its capture file
    assert not [n for n in os.listdir(capture) if n.endswith(".part")]
    rows = read_capture(str(capture))
    assert sorted(r["inference_id"] for r in rows) == sorted(
        r["inference_id"] for r in read_capture(str(tmp_path / "reference")))
    assert len(rows) == sent
    # a second run on the same directory starts from zero: the first run's files are gone
    # (run by promdrift's launcher: uvicorn's command line, checked in the parent first)
    argv = uvicorn_argv(port, "--workers", "2", module="promdrift.instrumentation.uvicorn")
    with Uvicorn(argv, port, env=env, log_path=str(tmp_path / "run2.log")):
        text = http_request("GET", f"http://127.0.0.1:{port}/metrics")[1].decode()
        key = tuple(sorted(reference.plan_labels))
        assert samples(text)["promdrift_inferences_total", key] == 0
    reference.close()
    reference.capture.close()


def test_uvicorn_one_worker_sigterm_loses_no_captured_row(baseline_path, tmp_path):
    """One worker, no multiprocess directory: SIGTERM (Docker, Kubernetes) still writes
    every queued row (uvicorn re-raises the signal after the lifespan: no atexit)."""
    port = free_port()
    capture = tmp_path / "capture"
    env = server_env(baseline_path, str(capture))
    with Uvicorn(uvicorn_argv(port), port, env=env, log_path=str(tmp_path / "log")) as server:
        # one process: prometheus_client's process, GC and platform families are its own
        text = http_request("GET", f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert PER_PROCESS_FAMILIES <= set(families(text))
        for i in range(30):
            body = json.dumps({"features": {"year": 2008}, "truth": "Adelie", "id": f"s{i}"})
            assert http_request("POST", f"http://127.0.0.1:{port}/predict", body.encode(),
                                headers={"Content-Type": "application/json"})[0] == 200
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)
    assert sorted(r["inference_id"] for r in read_capture(str(capture))) == sorted(
        f"s{i}" for i in range(30))
    assert not [n for n in os.listdir(capture) if n.endswith(".part")]


def _typed_app(monitor: Optional[DriftMonitor]) -> Any:
    """A FastAPI app as one is written (typed body: FastAPI's 422, its 400 for a body it
    cannot decode), instrumented or not."""
    app = FastAPI()
    if monitor is not None:
        monitor.instrument(app)

    async def predict(body: Observation) -> Dict[str, str]:
        return {"species": "Gentoo" if body.features.island == "Biscoe" else "Adelie"}

    if monitor is not None:
        predict = monitor.track(features="features", prediction="species")(predict)
    app.post("/predict")(predict)
    return app


def test_bad_clients_are_counted_as_theirs_and_answered_as_without_promdrift(
        penguins_species, registry, caplog):
    from test_flask import CLIENT_ERRORS
    monitor = DriftMonitor(aliased(penguins_species), registry=registry)
    bodies = CLIENT_ERRORS + [
        (b'{"features": {"island": "\xff"}}', "application/json", "not_json"),  # not UTF-8
        (b'{"features": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json",
         "not_json"),  # nested beyond what the parser takes
    ]
    with caplog.at_level("WARNING", logger="promdrift"), \
            TestClient(_typed_app(monitor)) as client, TestClient(_typed_app(None)) as plain:
        for body, ctype, _ in bodies:
            got = client.post("/predict", content=body, headers={"Content-Type": ctype})
            want = plain.post("/predict", content=body, headers={"Content-Type": ctype})
            assert (got.status_code, got.content) == (want.status_code, want.content), body
            assert got.status_code in (400, 422), body
        ok = client.post("/predict", json={"features": {"island": "Biscoe",
                                                        "bill_length_mm": " 39.1 "}})
        assert ok.json() == {"species": "Gentoo"}  # pydantic served the number 39.1
        assert client.post("/predict", json={"features": {"bill_length_mm": "39.1 mm"}}
                           ).status_code == 422
    s = monitor.sample
    for reason in ("not_json", "not_object", "no_features", "bad_shape"):
        assert s("promdrift_requests_invalid_total", reason=reason) == \
            sum(r == reason for _, _, r in bodies), reason
    assert s("promdrift_requests_total") == len(bodies) + 2
    assert s("promdrift_instrumentation_errors_total") == 0
    assert s("promdrift_inferences_total") == 2
    assert s("promdrift_feature_value_sum", feature="bill_length_mm") == 39.1
    assert s("promdrift_feature_coerced_total", feature="bill_length_mm") == 1
    assert s("promdrift_feature_invalid_total", feature="bill_length_mm",
             reason="wrong_type") == 1
    assert s("promdrift_prediction_class_total", output="species", **{"class": "Gentoo"}) == 1
    (record,) = caplog.records  # one line, no traceback
    assert record.exc_info is None and "promdrift_requests_invalid_total" in record.getMessage()
