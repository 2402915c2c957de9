"""The /metrics exposition: golden file, promtool, fast path == collector path."""

import dataclasses
import os
import shutil
import subprocess

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from promdrift.instrumentation import Baseline, DriftMonitor, collector_for, metrics_text
from promdrift.instrumentation.counting.exposition import FAMILIES

from conftest import DATA, FIXED_CREATED, PENGUINS_CSV, read_rows

GOLDEN = os.path.join(DATA, "golden_metrics.txt")


def golden_monitor():
    baseline = dataclasses.replace(
        Baseline.fit_csv(PENGUINS_CSV, model="penguins", progress=False), created=FIXED_CREATED)
    m = DriftMonitor(baseline, registry=None)
    rows = read_rows(PENGUINS_CSV)
    for r in rows[:5]:
        m.observe(r)
    m.observe(rows[100:110])
    m.observe({"species": "Emperor", "island": None, "bill_length_mm": "long",
               "bill_depth_mm": float("nan"), "flipper_length_mm": float("inf"),
               "body_mass_g": 10_000, "year": 2024})
    return m


def test_golden_metrics():
    text = golden_monitor().render()
    with open(GOLDEN, encoding="utf-8") as f:
        assert text == f.read()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_check_metrics():
    with open(GOLDEN, "rb") as f:
        proc = subprocess.run(["promtool", "check", "metrics"], stdin=f,
                              capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_check_metrics_of_a_full_registry(registry):
    _full_monitor(registry)
    proc = subprocess.run(["promtool", "check", "metrics"], input=metrics_text(registry),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def _samples(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.add((s.name, tuple(sorted(s.labels.items())), s.value))
    return out


def _families(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return {(f.name, f.type) for f in text_string_to_metric_families(text)}


def _full_monitor(registry, model="penguins"):
    rows = read_rows(PENGUINS_CSV)
    data = {k: [r[k] for r in rows] for k in rows[0]}
    baseline = Baseline.fit(data, model=model, predictions=["body_mass_g", "species"],
                            categorical="year")
    m = DriftMonitor(baseline, model_version="1.2.3", registry=registry)
    feats = [{k: v for k, v in r.items() if k not in ("body_mass_g", "species")} for r in rows]
    preds = [{"body_mass_g": r["body_mass_g"], "species": r["species"]} for r in rows]
    m.observe(feats, preds)
    m.observe(feats[0], {"body_mass_g": 1e7, "species": "Emperor"})
    m.observe(feats[1], {"body_mass_g": None})
    return m


def test_fast_render_equals_collector_path(registry):
    m = _full_monitor(registry)
    slow = generate_latest(registry)
    fast = metrics_text(registry)
    assert _samples(m.render()) == _samples(slow) == _samples(fast)
    assert _families(slow) == _families(fast)
    assert m.metrics_text() == fast
    samples = _samples(fast)
    assert all(dict(labels).get("model_version") == "1.2.3" for _, labels, _ in samples)
    names = {n for n, _, _ in samples}
    for fam in ("promdrift_prediction_value_bucket", "promdrift_prediction_class_total",
                "promdrift_prediction_invalid_total", "promdrift_baseline_prediction_bin",
                "promdrift_baseline_prediction_class", "promdrift_feature_category_total"):
        assert fam in names
    assert m.sample("promdrift_prediction_class_total", output="species", **{"class": "__other__"}) == 1
    assert m.sample("promdrift_prediction_invalid_total", output="body_mass_g", reason="null") == 3
    assert m.sample("promdrift_prediction_invalid_total", output="species", reason="missing") == 1


def test_other_metrics_in_the_registry_are_kept(registry):
    from prometheus_client import Counter
    c = Counter("app_requests", "Requests.", registry=registry)
    c.inc(3)
    _full_monitor(registry)
    text = metrics_text(registry).decode()
    assert "app_requests_total 3.0" in text
    assert _samples(text) == _samples(generate_latest(registry))


def test_two_models_one_registry(registry):
    a = _full_monitor(registry, model="a")
    b = _full_monitor(registry, model="b")
    drift = set(a.plan.live) | set(a.plan.fixed)  # no plugins: the drift families only
    for text in (metrics_text(registry).decode(), generate_latest(registry).decode()):
        for fam, (mtype, _) in FAMILIES.items():
            exposed = fam + "_total" if mtype == "counter" else fam
            assert text.count(f"# TYPE {exposed} {mtype}\n") == (fam in drift), exposed
        models = {dict(l)["model"] for _, l, _ in _samples(text)}
        assert models == {"a", "b"}
    assert _samples(metrics_text(registry)) == _samples(generate_latest(registry))
    assert _samples(a.render()) | _samples(b.render()) == _samples(metrics_text(registry))
    b.close()
    models = {dict(l)["model"] for _, l, _ in _samples(metrics_text(registry))}
    assert models == {"a"}


def _inferences(registry):
    return {dict(l)["model"]: v for n, l, v in _samples(metrics_text(registry))
            if n == "promdrift_inferences_total"}


def test_a_second_monitor_of_the_same_model(registry, penguins_baseline):
    """The same model, baseline and version again (a notebook cell run twice) replaces the
    first monitor, with a warning; another baseline or version is refused with the fix."""
    first = DriftMonitor(penguins_baseline, model_version="1", registry=registry)
    first.observe({"island": "Dream"})
    assert _inferences(registry) == {"penguins": 1.0}
    with pytest.warns(RuntimeWarning, match=r"same baseline \([0-9a-f]{12}\): the new monitor "
                      r"replaces it in /metrics.*close\(\) on the first one"):
        second = DriftMonitor(penguins_baseline, model_version="1", registry=registry)
    assert _inferences(registry) == {"penguins": 0.0}  # the new monitor's counts only
    second.observe({"island": "Dream"})
    second.observe({"island": "Biscoe"})
    assert _inferences(registry) == {"penguins": 2.0}
    assert collector_for(registry).monitors == [second]
    first.close()  # closing the replaced monitor leaves the new one exposed
    assert _inferences(registry) == {"penguins": 2.0}

    other = dataclasses.replace(penguins_baseline, rows=penguins_baseline.rows + 1)
    for baseline, version in ((other, "1"), (penguins_baseline, "2")):
        with pytest.raises(ValueError) as info:
            DriftMonitor(baseline, model_version=version, registry=registry)
        assert str(info.value).startswith(
            f"model 'penguins' is already monitored in this registry by another DriftMonitor "
            f"(baseline {penguins_baseline.digest}, model_version '1'; this one: baseline "
            f"{baseline.digest}, model_version '{version}'). To replace it, call close() on "
            f"the first monitor before creating this one")
    assert collector_for(registry).monitors == [second]
    second.close()
    DriftMonitor(other, model_version="1", registry=registry)  # as the message says
    assert _inferences(registry) == {"penguins": 0.0}


def test_all_series_exist_from_the_first_scrape(registry, penguins_baseline):
    m = DriftMonitor(penguins_baseline, registry=registry)
    samples = _samples(metrics_text(registry))
    live = [s for s in samples if not s[0].startswith("promdrift_baseline")]
    assert live and all(v == 0 for _, _, v in live)
    reasons = {dict(l)["reason"] for n, l, _ in live if n == "promdrift_feature_invalid_total"}
    assert reasons == {"missing", "null", "nan", "inf", "wrong_type"}
    n_buckets = sum(len(c.edges) + 1 for c in penguins_baseline.features if c.kind == "numeric")
    assert sum(1 for n, _, _ in live if n == "promdrift_feature_value_bucket") == n_buckets
    # Baseline buckets equal the fitted cumulative counts, and bins the per-bin counts.
    col = penguins_baseline.feature("body_mass_g")
    for le, cum, n in zip(col.labels, col.cumulative(), col.counts):
        assert registry.get_sample_value("promdrift_baseline_feature_value_bucket",
                                         {"model": "penguins", "baseline": m.baseline.digest,
                                          "feature": "body_mass_g", "le": le}) == cum
        assert m.sample("promdrift_baseline_feature_bin", feature="body_mass_g", upper=le,
                        lower=(["-Inf"] + col.labels)[col.labels.index(le)]) == n
    assert m.sample("promdrift_baseline_info", created=penguins_baseline.created,
                    schema_version="1") == 1
    # every series of the model, live and baseline, is labelled with the baseline's digest
    assert {dict(l).get("baseline") for _, l, _ in samples} == {penguins_baseline.digest}


def test_drop_in_helpers_serve_the_registry_by_the_fast_path(registry):
    """make_wsgi_app / make_asgi_app / start_http_server: prometheus_client's signatures,
    promdrift's renderer, the same bytes as metrics_text."""
    import asyncio
    import urllib.request

    from promdrift.instrumentation import make_asgi_app, make_wsgi_app, start_http_server
    from promdrift.instrumentation.counting.exposition import CONTENT_TYPE
    m = _full_monitor(registry)
    want = metrics_text(registry)
    got = {}
    body = make_wsgi_app(registry)({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"},
                                   lambda status, headers: got.update(headers))
    assert body == [want] and got["Content-Type"] == CONTENT_TYPE
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(make_asgi_app(registry)({"type": "http", "method": "GET", "path": "/metrics",
                                         "headers": []}, receive, send))
    assert sent[0]["status"] == 200 and sent[1]["body"] == want
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics",
                                    timeout=10) as resp:
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            assert resp.read() == metrics_text(registry)
    finally:
        server.shutdown()
        server.server_close()
    thread.join(10)
    assert not thread.is_alive()
    m.close()
