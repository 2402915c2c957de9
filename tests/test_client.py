"""``promdrift.exporter.client`` against a real exporter on 127.0.0.1 (a thread server)."""

from __future__ import annotations

import threading

import pytest
from flask import Flask, Response
from prometheus_client import CollectorRegistry

from promdrift.exporter.client import ExporterClient, ExporterError
from promdrift.exporter.service.app import create_app
from promdrift.instrumentation import DriftMonitor

from exporter_helpers import free_port, samples
from integration.servers import AppServer


def split(row):
    return {k: v for k, v in row.items() if k != "species"}, row["species"]


@pytest.fixture
def exporter(penguins_species):
    monitor = DriftMonitor(penguins_species, registry=CollectorRegistry())
    app = create_app([monitor], token="tok", max_rows=100)
    with AppServer(app) as server:
        yield server, monitor


def test_batches_and_counts_like_in_process(exporter, penguins_species, penguins_rows):
    server, monitor = exporter
    reference = DriftMonitor(penguins_species, registry=None)
    with ExporterClient(server.url, "penguins", token="tok", batch_size=64) as client:
        for i, row in enumerate(penguins_rows[:200]):
            f, p = split(row)
            client.observe(f, prediction=p, id=f"r{i}")
            reference.observe(f, p)
        assert client.requests == 3 and client.pending == 200 - 3 * 64
        feats, preds = zip(*map(split, penguins_rows[200:]))
        client.observe_many(feats, preds)
        for f, p in zip(feats, preds):
            reference.observe(f, p)
    assert client.pending == 0 and client.sent_rows == len(penguins_rows)
    assert client.requests == -(-len(penguins_rows) // 64)
    got, want = samples(monitor.render()), samples(reference.render())
    assert got.keys() == want.keys()
    (requests,) = [k for k in want if k[0] == "promdrift_requests_total"]  # a post is one
    assert got.pop(requests) == client.requests and want.pop(requests) == len(penguins_rows)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_send_splits_into_batches(exporter):
    server, monitor = exporter
    client = ExporterClient(server.url, "penguins", token="tok", batch_size=100)
    assert client.send([ExporterClient.row({"year": 2008})] * 250) == 250
    assert client.requests == 3
    assert monitor.sample("promdrift_inferences_total") == 250


def test_token_file(exporter, tmp_path):
    server, monitor = exporter
    path = tmp_path / "token"
    path.write_text("tok\n")
    client = ExporterClient(server.url, "penguins", token_file=str(path))
    client.observe({"year": 2007})
    assert client.flush() == 1
    assert monitor.sample("promdrift_inferences_total") == 1


def test_refusals_raise_with_status_and_field_and_keep_the_rows(exporter):
    server, monitor = exporter
    client = ExporterClient(server.url, "penguins", token="wrong", retries=2, backoff=0.01)
    client.observe({"year": 2007})
    with pytest.raises(ExporterError) as e:
        client.flush()
    assert e.value.status == 401 and client.pending == 1 and client.requests == 1
    bad = ExporterClient(server.url, "penguins", token="tok")
    with pytest.raises(ExporterError) as e:
        bad.send([{"features": [1, 2]}])
    assert e.value.status == 400 and e.value.field == "rows[0].features"
    assert "rows[0].features" in str(e.value)
    with pytest.raises(ExporterError) as e:
        ExporterClient(server.url, "other", token="tok").send([ExporterClient.row({})])
    assert e.value.status == 404
    too_many = ExporterClient(server.url, "penguins", token="tok", batch_size=101)
    with pytest.raises(ExporterError) as e:
        too_many.send([ExporterClient.row({})] * 101)
    assert e.value.status == 413
    assert monitor.sample("promdrift_inferences_total") == 0


def test_retries_5xx_and_429_then_succeeds(penguins_species):
    """A proxy in front of the exporter fails the first attempts of every batch."""
    monitor = DriftMonitor(penguins_species, registry=None)
    inner = create_app([monitor]).test_client()
    attempts = []
    app = Flask("flaky")

    @app.post("/v1/models/<model>/observations")
    def flaky(model):
        from flask import request
        attempts.append(model)
        if len(attempts) % 3 == 1:
            return Response("busy", status=503)
        if len(attempts) % 3 == 2:
            return Response("{}", status=429, headers={"Retry-After": "0"})
        resp = inner.post(f"/v1/models/{model}/observations", data=request.get_data(),
                          content_type="application/json")
        return Response(resp.get_data(), status=resp.status_code,
                        content_type="application/json")

    with AppServer(app) as server:
        client = ExporterClient(server.url, "penguins", batch_size=10, retries=3, backoff=0.01)
        client.observe_many([{"year": 2008}] * 25)
        client.flush()
    assert len(attempts) == 9  # 3 batches x (503, 429, 200)
    assert client.requests == 3 and client.sent_rows == 25
    assert monitor.sample("promdrift_inferences_total") == 25


def test_gives_up_after_the_retries(penguins_species):
    app = Flask("down")
    calls = []

    @app.post("/v1/models/<model>/observations")
    def down(model):
        calls.append(1)
        return Response('{"error": "overloaded"}', status=503, content_type="application/json")

    with AppServer(app) as server:
        client = ExporterClient(server.url, "m", retries=2, backoff=0.01)
        with pytest.raises(ExporterError) as e:
            client.send([ExporterClient.row({})])
    assert len(calls) == 3 and e.value.status == 503 and e.value.error == "overloaded"


def test_unreachable_exporter():
    client = ExporterClient(f"http://127.0.0.1:{free_port()}", "m", retries=1, backoff=0.01)
    client.observe({"x": 1})
    with pytest.raises(ExporterError, match="unreachable") as e:
        client.flush()
    assert e.value.status is None and client.pending == 1


def test_no_retry_after_send_when_asked(penguins_species):
    """A read timeout may mean the batch arrived: with retry_after_send=False it is not sent
    twice."""
    release = threading.Event()
    calls = []
    app = Flask("slow")

    @app.post("/v1/models/<model>/observations")
    def slow(model):
        calls.append(1)
        release.wait(5)
        return {"accepted": 1}

    with AppServer(app) as server:
        client = ExporterClient(server.url, "m", retries=3, backoff=0.01, timeout=0.3,
                                retry_after_send=False)
        with pytest.raises(ExporterError, match="timed out"):
            client.send([ExporterClient.row({})])
        release.set()
    assert len(calls) == 1


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"retries": -1}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ExporterClient("http://127.0.0.1:1", "m", **kwargs)


def test_model_names_are_quoted_in_the_url():
    client = ExporterClient("http://127.0.0.1:1/", "a/b c")
    assert client.endpoint == "http://127.0.0.1:1/v1/models/a%2Fb%20c/observations"
