"""Model quality with delayed labels: the join, its counters and the label store, checked
against numpy computations on real data (breast cancer: a threshold classifier; penguins:
a least-squares regressor), with labels out of order, duplicated, unknown and expired."""

import json
import math
import os
import random
import shutil
import subprocess
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, BaselineError, DriftMonitor, metrics_text
from promdrift.instrumentation.outcomes import MAX_LABELS_PER_REQUEST, labels_handler
from promdrift.instrumentation.outcomes.quality import (DELAY_BUCKETS, LabelStore,
                                                        default_store_path, error_edges)

from conftest import BREAST_CANCER_CSV, PENGUINS_CSV, read_rows


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def rows(m):
    """Rows in the monitor's label store, after writing the predictions observe queued."""
    m.labels.flush()
    return m.labels.store.rows()


# ------------------------------------------------------------------------------ data
def cancer():
    """Features, true diagnosis and a threshold rule's prediction for every row."""
    rows = read_rows(BREAST_CANCER_CSV)
    truth = [r.pop("diagnosis") for r in rows]
    pred = ["malignant" if r["worst_radius"] > 16.8 or r["worst_concave_points"] > 0.16
            else "benign" for r in rows]
    return rows, truth, pred


def classifier(registry, clock, **store):
    rows, truth, pred = cancer()
    train = {k: [r[k] for r in rows[:300]] for k in rows[0]}
    train["diagnosis"] = pred[:300]
    b = Baseline.fit(train, model="cancer", predictions="diagnosis", categorical=["diagnosis"])
    b = b.with_quality(truth[300:450], pred[300:450])
    m = DriftMonitor(b, registry=registry)
    m.track_labels(":memory:", **store)
    m.labels.clock = clock
    return m, rows, truth, pred


def confusion_from_metrics(m, classes):
    return np.array([[m.sample("promdrift_quality_confusion_total", output="diagnosis",
                               actual=a, predicted=p) for p in classes] for a in classes])


def numpy_metrics(y, p, classes):
    """Accuracy and per-class precision / recall / F1, straight from the label arrays."""
    y, p = np.asarray(y), np.asarray(p)
    out = {"accuracy": np.mean(y == p)}
    for c in classes:
        tp = np.sum((y == c) & (p == c))
        out["precision", c] = tp / np.sum(p == c)
        out["recall", c] = tp / np.sum(y == c)
        out["f1", c] = 2 * out["precision", c] * out["recall", c] / (
            out["precision", c] + out["recall", c])
    return out


def rule_metrics(cm, classes):
    """What the recording rules compute from the confusion counters."""
    out = {"accuracy": np.trace(cm) / cm.sum()}
    for i, c in enumerate(classes):
        out["precision", c] = cm[i, i] / cm[:, i].sum()
        out["recall", c] = cm[i, i] / cm[i, :].sum()
        out["f1", c] = 2 * cm[i, i] / (cm[:, i].sum() + cm[i, :].sum())
    return out


# ------------------------------------------------------------------------------ classifier
def test_classifier_counters_match_numpy_with_out_of_order_duplicate_unknown(registry):
    clock = Clock()
    m, rows, truth, pred = classifier(registry, clock)
    live = list(range(300, 569))
    ids = [f"req-{i}" for i in live]
    # 20 labels arrive before their prediction (held), the rest afterwards, shuffled.
    early = live[:20]
    for i in early:
        assert m.record_label(f"req-{i}", truth[i]) == "held"
    assert m.sample("promdrift_quality_pending", kind="label") == 20
    clock.t += 5
    m.observe([rows[i] for i in live[:100]], pred[300:400], inference_id=ids[:100])
    for i in live[100:]:
        m.observe(rows[i], pred[i], inference_id=f"req-{i}")
    late = live[20:]
    random.Random(7).shuffle(late)
    clock.t += 120
    statuses = [m.record_label(f"req-{i}", truth[i]) for i in late]
    assert statuses == ["matched"] * len(late)
    # duplicates (ignored: a contradicting second label changes nothing), unknown ids
    assert m.record_label("req-300", "malignant" if truth[300] == "benign" else "benign") \
        == "duplicate"
    assert m.record_label(f"req-{late[0]}", truth[late[0]]) == "duplicate"
    for k in range(5):
        assert m.record_label(f"nobody-{k}", "benign") == "held"
    assert m.record_label(None, "benign") == "invalid"
    assert m.record_label(True, "benign") == "invalid"

    classes = ["benign", "malignant"]
    cm = confusion_from_metrics(m, classes + ["__other__"])
    y, p = np.array(truth[300:]), np.array(pred[300:])
    ref_cm = np.array([[np.sum((y == a) & (p == b)) for b in classes] for a in classes])
    assert (cm[:2, :2] == ref_cm).all() and cm[2].sum() == 0 and cm[:, 2].sum() == 0
    got, ref = rule_metrics(cm[:2, :2], classes), numpy_metrics(y, p, classes)
    assert set(got) == set(ref)
    for k in ref:
        assert np.isclose(got[k], ref[k], rtol=0, atol=1e-12), k
    assert m.sample("promdrift_quality_labels_total") == len(live)
    assert m.sample("promdrift_quality_labels_duplicate_total") == 2
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="invalid") == 2
    # the unknown ids are held, then expire after `hold` seconds and count as unknown
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="unknown") == 0
    assert m.sample("promdrift_quality_pending", kind="label") == 5
    clock.t += 301
    m.labels.flush()
    m.labels.store.purge(clock())
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="unknown") == 5
    assert m.sample("promdrift_quality_pending", kind="label") == 0
    # label delays: 20 early labels count 0 s, the rest 120 s (100 batch rows) / 120 s
    delay = lambda le: m.sample("promdrift_quality_label_delay_seconds_bucket", le=le)
    assert delay("1.0") == 20 and delay("60.0") == 20 and delay("300.0") == len(live)
    assert m.sample("promdrift_quality_label_delay_seconds_sum") == 120.0 * len(late)
    # baseline quality = numpy on the validation rows
    yv, pv = np.array(truth[300:450]), np.array(pred[300:450])
    acc = np.mean(yv == pv)
    assert np.isclose(m.sample("promdrift_baseline_quality", output="diagnosis",
                               metric="accuracy"), acc)
    f1 = [2 * np.sum((yv == c) & (pv == c)) / (np.sum(yv == c) + np.sum(pv == c))
          for c in classes]
    assert np.isclose(m.sample("promdrift_baseline_quality", output="diagnosis",
                               metric="macro_f1"), np.mean(f1))
    assert m.sample("promdrift_baseline_quality_labels", output="diagnosis") == 150
    m.close()


def test_collector_path_equals_sample_and_text(registry):
    m, rows, truth, pred = classifier(registry, Clock())
    m.observe(rows[:50], pred[:50], inference_id=list(range(50)))
    for i in range(50):
        m.record_label(i, truth[i])
    for a in ("benign", "malignant"):
        for p in ("benign", "malignant"):
            labels = {"model": "cancer", "baseline": m.baseline.digest, "output": "diagnosis",
                      "actual": a, "predicted": p}
            v = registry.get_sample_value("promdrift_quality_confusion_total", labels)
            assert v == m.sample("promdrift_quality_confusion_total", **{
                k: labels[k] for k in ("output", "actual", "predicted")})
            assert v == sum(1 for i in range(50) if truth[i] == a and pred[i] == p)
    text = metrics_text(registry).decode()
    assert text.count("# TYPE promdrift_quality_confusion_total counter") == 1
    labels = f'model="cancer",baseline="{m.baseline.digest}"'
    assert f"promdrift_quality_labels_total{{{labels}}} 50" in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_outcome_families(registry):
    m, rows, truth, pred = classifier(registry, Clock())
    m.observe(rows[:10], pred[:10], inference_id=[str(i) for i in range(10)])
    m.record_label("3", truth[3])
    reg = registry
    proc = subprocess.run(["promtool", "check", "metrics"], input=metrics_text(reg),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_classes_outside_top_k_are_other():
    b = Baseline.fit({"x": list(range(10)), "y": ["a"] * 5 + ["b"] * 3 + ["c", "d"]},
                     predictions="y", top_k=2, model="k")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    m.observe({"x": 1}, "d", inference_id="1")
    m.observe({"x": 1}, "a", inference_id="2")
    assert m.record_label("1", "zzz") == "matched"
    assert m.record_label("2", "c") == "matched"
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="__other__",
                    predicted="__other__") == 1
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="__other__",
                    predicted="a") == 1
    text = m.render()
    assert 'actual="zzz"' not in text and 'actual="c"' not in text


# ------------------------------------------------------------------------------ regressor
def penguin_regressor():
    rows = [r for r in read_rows(PENGUINS_CSV)
            if r["flipper_length_mm"] is not None and r["body_mass_g"] is not None]
    x = np.array([r["flipper_length_mm"] for r in rows])
    y = np.array([r["body_mass_g"] for r in rows])
    coef = np.polyfit(x[:150], y[:150], 1)  # least squares on the first 150 rows
    pred = np.polyval(coef, x)
    feats = [{k: r[k] for k in ("bill_length_mm", "flipper_length_mm", "island")} for r in rows]
    return feats, y, pred


def test_regressor_mae_rmse_and_error_histogram_match_numpy(registry):
    feats, y, pred = penguin_regressor()
    train = {k: [f[k] for f in feats[:150]] for k in feats[0]}
    b = Baseline.fit(train, model="mass", predictions={"mass": pred[:150]})
    b = b.with_quality(y[150:250], pred[150:250])
    m = DriftMonitor(b, registry=registry).track_labels(":memory:")
    live = range(150, len(y))
    m.observe([feats[i] for i in live], [{"mass": pred[i]} for i in live],
              inference_id=[f"p{i}" for i in live])
    order = list(live)
    random.Random(3).shuffle(order)
    for i in order:
        assert m.record_label(f"p{i}", {"mass": y[i]}) == "matched"
    err = pred[150:] - y[150:]
    count = m.sample("promdrift_quality_error_count", output="mass")
    abs_sum = m.sample("promdrift_quality_error_sum", output="mass")
    sq_sum = m.sample("promdrift_quality_squared_error_sum_total", output="mass")
    assert count == err.size
    assert np.isclose(abs_sum / count, np.mean(np.abs(err)), rtol=1e-12)       # MAE
    assert np.isclose(np.sqrt(sq_sum / count), np.sqrt(np.mean(err ** 2)), rtol=1e-12)  # RMSE
    edges = error_edges(b.prediction("mass"))
    assert len(edges) == 7 and np.isclose(edges[4], float(f"{np.std(pred[:150]):.3g}"))
    from promdrift.instrumentation.binning import format_le
    for e in edges:
        assert m.sample("promdrift_quality_error_bucket", output="mass", le=format_le(e)) \
            == np.sum(np.abs(err) <= e)
    ev = pred[150:250] - y[150:250]
    assert np.isclose(b.quality["mass"]["mae"], np.mean(np.abs(ev)))
    assert np.isclose(b.quality["mass"]["rmse"], np.sqrt(np.mean(ev ** 2)))
    assert np.isclose(m.sample("promdrift_baseline_quality", output="mass", metric="rmse"),
                      np.sqrt(np.mean(ev ** 2)))
    # invalid labels are counted, not joined
    m.observe(feats[0], pred[0], inference_id="bad")
    assert m.record_label("bad", "heavy") == "matched"
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="invalid") == 1
    assert m.sample("promdrift_quality_error_count", output="mass") == err.size


# ------------------------------------------------------------------------------ the store
def test_max_rows_evicts_the_oldest_predictions():
    clock = Clock()
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}, predictions="y", model="s")
    m = DriftMonitor(b, registry=None).track_labels(":memory:", max_rows=50)
    m.labels.clock = clock
    for i in range(120):
        m.observe({"x": 1.0}, "a", inference_id=i)
    assert rows(m) == 50
    assert m.sample("promdrift_quality_pending", kind="prediction") == 50
    assert m.sample("promdrift_quality_predictions_evicted_total", reason="count") == 70
    assert m.record_label(70, "a") == "matched"  # the oldest one kept
    assert m.record_label(69, "a") == "held"  # evicted: its prediction is gone
    # the held label is a row too: it pushed out the oldest row, 70 (labelled: not counted)
    assert rows(m) == 50
    assert m.sample("promdrift_quality_predictions_evicted_total", reason="count") == 70
    assert m.record_label(70, "a") == "held"  # and this one pushes out 71, unlabelled
    assert m.sample("promdrift_quality_predictions_evicted_total", reason="count") == 71
    assert m.record_label(72, "a") == "matched"
    assert m.record_label(71, "a") == "held"  # pushes out 72, labelled: not counted
    assert m.sample("promdrift_quality_predictions_evicted_total", reason="count") == 71
    assert m.sample("promdrift_quality_pending", kind="label") == 3
    assert rows(m) == 50


def test_max_age_evicts_unlabelled_predictions_and_hold_expires_labels():
    clock = Clock()
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}, predictions="y", model="s")
    m = DriftMonitor(b, registry=None).track_labels(":memory:", max_age=3600, hold=60)
    m.labels.clock = clock
    m.observe([{"x": 1.0}] * 10, ["a"] * 10, inference_id=[f"old{i}" for i in range(10)])
    m.record_label("old0", "a")
    clock.t += 1800
    m.observe([{"x": 1.0}] * 5, ["b"] * 5, inference_id=[f"new{i}" for i in range(5)])
    assert m.record_label("early", "b") == "held"
    clock.t += 1801  # the old ones are now older than max_age
    m.labels.flush()
    m.labels.store.purge(clock())
    assert m.sample("promdrift_quality_predictions_evicted_total", reason="age") == 9
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="unknown") == 1
    assert m.record_label("old1", "a") == "held"
    assert m.record_label("new1", "b") == "matched"
    assert m.sample("promdrift_quality_pending", kind="prediction") == 4
    # the labelled row "old0" was dropped with its age, so a late label for it is not a
    # duplicate any more but an unknown id
    assert m.record_label("old0", "a") == "held"


def test_label_store_validates_and_shares_a_file_between_models(tmp_path):
    with pytest.raises(ValueError, match="max_rows"):
        LabelStore(":memory:", max_rows=0)
    with pytest.raises(ValueError, match="max_age"):
        LabelStore(":memory:", max_age=-1)
    with pytest.raises(ValueError, match="cannot open"):
        LabelStore(str(tmp_path / "no" / "such" / "dir.sqlite3"))
    path = str(tmp_path / "labels.sqlite3")
    a, b = LabelStore(path), LabelStore(path)  # two handles, like two worker processes
    assert a.put_predictions("m1", [("x", "{}")], now=1.0) == []
    assert b.put_predictions("m2", [("x", "{}")], now=1.0) == []
    assert b.put_label("m1", "x", "1", now=2.0) == ("matched", "{}", 1.0)
    assert a.put_label("m1", "x", "1", now=3.0) == ("duplicate",)
    assert a.pending("m1") == (0, 0) and a.pending("m2") == (1, 0)
    with open(path, "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"
    assert a._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    a.close()
    b.close()


def test_default_store_lives_in_the_temp_dir_and_close_removes_it():
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="tmp model")
    m = DriftMonitor(b, registry=None).track_labels()
    path = default_store_path("tmp model")
    assert m.labels.store.path == path and os.path.exists(path)
    assert "labels-tmp_model-" in path and os.path.basename(os.path.dirname(path)) == "promdrift"
    m.observe({"x": 1.0}, "a", inference_id="1")
    assert m.record_label("1", "a") == "matched"
    m.close()
    assert not os.path.exists(path)


def test_threads_observe_and_label_concurrently():
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}, predictions="y", model="t")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    n_threads, per = 6, 200
    errors = []

    def work(t):
        try:
            for i in range(per):
                ident = f"{t}-{i}"
                if i % 2:
                    m.record_label(ident, "b")  # before the prediction: held, then joined
                    m.observe({"x": 1.0}, "a", inference_id=ident)
                else:
                    m.observe({"x": 1.0}, "a", inference_id=ident)
                    m.record_label(ident, "a")
                m.record_label(ident, "a")  # always a duplicate
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = n_threads * per
    assert m.sample("promdrift_quality_labels_total") == total
    assert m.sample("promdrift_quality_labels_duplicate_total") == total
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="a",
                    predicted="a") == total / 2
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="b",
                    predicted="a") == total / 2
    assert m.sample("promdrift_instrumentation_errors_total") == 0


def test_record_label_never_raises():
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="nr")
    m = DriftMonitor(b, registry=None)
    assert m.record_label("1", "a") == "disabled"
    m.track_labels(":memory:")
    assert m.record_label("1", object()) == "invalid"  # not JSON
    m.labels.store.close()
    assert m.record_label("2", "a") == "error"
    assert m.sample("promdrift_instrumentation_errors_total") == 1
    m.observe({"x": 1.0}, "a", inference_id="3")  # queued
    assert "promdrift_quality_labels_total" in m.render()  # the flush fails: counted
    assert m.sample("promdrift_instrumentation_errors_total") == 2
    m.labels.flush_rows = 1
    m.observe({"x": 1.0}, "a", inference_id="4")  # written at once: fails, counted, no raise
    assert m.sample("promdrift_instrumentation_errors_total") == 3


def test_observe_queues_predictions_and_a_label_flushes_them():
    clock = Clock()
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="q")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    m.labels.clock = clock
    m.observe({"x": 1.0}, "a", inference_id="1")
    assert m.labels.store.rows() == 0  # queued
    clock.t += 0.5
    m.observe([{"x": 1.0}] * 254, ["b"] * 254, inference_id=[f"b{i}" for i in range(254)])
    assert m.labels.store.rows() == 0  # 255 queued < flush_rows 256
    clock.t += 0.6  # the oldest queued row is 1.1 s old: the next observe writes them all
    m.observe({"x": 1.0}, "a", inference_id="2")
    assert m.labels.store.rows() == 256
    m.observe({"x": 1.0}, "a", inference_id="3")
    clock.t += 10
    assert m.record_label("3", "a") == "matched"  # flushed first, so it finds "3"
    # the label delay is counted from observe, not from the flush
    assert m.sample("promdrift_quality_label_delay_seconds_sum") == 10.0
    assert m.labels.store.rows() == 257


def test_duplicate_prediction_ids_keep_the_first():
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="dp")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    m.observe({"x": 1.0}, "a", inference_id="1")
    m.observe({"x": 1.0}, "b", inference_id="1")
    assert m.sample("promdrift_quality_predictions_duplicate_total") == 1
    m.record_label("1", "a")
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="a",
                    predicted="a") == 1


def test_multi_output_labels():
    b = Baseline.fit({"x": [1.0, 2.0, 3.0], "c": ["u", "v", "u"], "r": [0.5, 1.0, 2.0]},
                     predictions=["c", "r"], model="mo")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    m.observe({"x": 1.0}, {"c": "u", "r": 1.0}, inference_id="1")
    m.observe({"x": 1.0}, ["v", 3.0], inference_id="2")
    assert m.record_label("1", {"c": "v", "r": 0.25}) == "matched"
    assert m.record_label("2", {"r": 2.0}) == "matched"  # one output's label only
    assert m.sample("promdrift_quality_confusion_total", output="c", actual="v",
                    predicted="u") == 1
    assert m.sample("promdrift_quality_error_count", output="r") == 2
    assert m.sample("promdrift_quality_error_sum", output="r") == 1.75
    assert m.sample("promdrift_quality_squared_error_sum_total", output="r") == 0.75 ** 2 + 1
    assert m.record_label("1", "v") == "duplicate"
    m.observe({"x": 1.0}, ["v", 3.0], inference_id="3")
    m.record_label("3", "v")  # not a dict for a two-output model
    assert m.sample("promdrift_quality_labels_unmatched_total", reason="invalid") == 1


def test_labels_without_tracking_or_outputs():
    b = Baseline.fit({"x": [1.0, 2.0]}, model="np")
    with pytest.raises(ValueError, match="no prediction outputs"):
        DriftMonitor(b, registry=None).track_labels(":memory:")
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="twice")
    m = DriftMonitor(b, registry=None).track_labels(":memory:")
    with pytest.raises(ValueError, match="already has a 'labels' plugin"):
        m.track_labels(":memory:")
    with pytest.raises(ValueError, match="limits to the LabelStore"):
        DriftMonitor(b, registry=None).track_labels(LabelStore(), max_rows=3)


# ------------------------------------------------------------------------------ HTTP handler
def test_labels_handler_json_ndjson_and_errors():
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="h")
    m = DriftMonitor(b, registry=None)
    assert labels_handler(m, b"{}")[0] == 409
    m.track_labels(":memory:")
    m.observe([{"x": 1.0}] * 3, ["a", "b", "a"], inference_id=["1", "2", "3"])
    status, body = labels_handler(m, json.dumps({"labels": [
        {"inference_id": "1", "label": "a"}, {"inference_id": 2, "label": "b"}]}).encode())
    assert (status, body["matched"]) == (200, 2)
    nd = b'{"inference_id": "3", "label": "b"}\n\n{"inference_id": "1", "label": "a"}\n' \
         b'{"inference_id": "9", "label": "a"}\n'
    status, body = labels_handler(m, nd, "application/x-ndjson")
    assert status == 200
    assert body == {"received": 3, "matched": 1, "held": 1, "duplicate": 1, "invalid": 0}
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="b",
                    predicted="a") == 1
    for bad, msg in ((b"", "empty"), (b"not json", "not JSON"), (b"\xff", "UTF-8"),
                     (b'{"labels": 3}', "array"), (b'[{"inference_id": "1"}]', "item 0"),
                     (b'[{"inference_id": "", "label": 1}]', "non-empty"),
                     (b'[{"inference_id": "1", "label": 1}, 5]', "item 1")):
        status, body = labels_handler(m, bad)
        assert status == 400 and msg in body["error"], (bad, body)
    status, _ = labels_handler(m, b'{"inference_id": "1", "label": "a"}\nx',
                               "application/x-ndjson")
    assert status == 400
    many = [{"inference_id": str(i), "label": "a"} for i in range(MAX_LABELS_PER_REQUEST + 1)]
    assert labels_handler(m, many)[0] == 413
    assert m.sample("promdrift_quality_labels_total") == 3  # nothing of the bad requests


# ------------------------------------------------------------------------------ baseline file
def test_baseline_quality_round_trip_and_old_files(tmp_path):
    rows, truth, pred = cancer()
    cols = {k: [r[k] for r in rows[:300]] for k in ("worst_radius", "mean_area")}
    cols["diagnosis"] = pred[:300]
    plain = Baseline.fit(cols, model="c", predictions="diagnosis")
    d = plain.to_dict()
    assert set(d) == {"kind", "schema_version", "model", "created", "rows", "metadata",
                      "features", "predictions"}  # schema_version 1 layout, unchanged
    b = plain.with_quality(truth[300:], pred[300:])
    assert b.digest != plain.digest and b.schema_version == 1
    path = str(tmp_path / "b.json")
    b.save(path)
    loaded = Baseline.load(path)
    assert loaded == b and loaded.quality == b.quality
    plain.save(path)
    assert Baseline.load(path).quality == {} and Baseline.load(path).digest == plain.digest
    bad = b.to_dict()
    bad["quality"] = {"diagnosis": {"accuracy": 0.9}}
    with pytest.raises(BaselineError, match="macro_f1"):
        Baseline.from_dict(bad)
    bad["quality"] = {"nope": {"accuracy": 0.9, "macro_f1": 0.8}}
    with pytest.raises(BaselineError, match="unknown output"):
        Baseline.from_dict(bad)
    bad["quality"] = {"diagnosis": {"accuracy": "high", "macro_f1": 0.8}}
    with pytest.raises(BaselineError, match="finite number"):
        Baseline.from_dict(bad)
    with pytest.raises(BaselineError, match="labels for"):
        plain.with_quality(truth[:3], pred[:4])
    with pytest.raises(BaselineError, match="no valid"):
        plain.with_quality([None, None], ["benign", "benign"])
    assert hash(b) == hash(plain)  # still hashable: the reference sections are not hashed
    # model= on DriftMonitor keeps the quality section
    m = DriftMonitor(b, model="renamed", registry=None).track_labels(":memory:")
    assert m.sample("promdrift_baseline_quality", output="diagnosis", metric="accuracy") \
        == b.quality["diagnosis"]["accuracy"]


def test_scrape_expires_held_labels_and_survives_a_broken_store(registry):
    clock = Clock()
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="sc")
    m = DriftMonitor(b, registry=registry).track_labels(":memory:", hold=10)
    m.labels.clock = clock
    assert m.record_label("lost", "a") == "held"
    clock.t += 11  # no traffic at all: the scrape itself expires the held label
    text = metrics_text(registry).decode()
    ms = f'model="sc",baseline="{b.digest}"'
    assert f'promdrift_quality_labels_unmatched_total{{{ms},reason="unknown"}} 1' in text
    assert f'promdrift_quality_pending{{{ms},kind="label"}} 0' in text
    m.labels.store.close()
    text = metrics_text(registry).decode()  # no exception, the last counts, no gauge
    assert f'promdrift_quality_labels_unmatched_total{{{ms},reason="unknown"}} 1' in text
    assert "promdrift_quality_pending{" not in text


def test_one_inference_id_feeds_data_capture_and_the_label_store(tmp_path, caplog):
    from promdrift.instrumentation.capture import DataCapture, read_capture
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="cap")
    m = DriftMonitor(b, registry=None, capture=DataCapture(str(tmp_path), registry=None))
    m.observe({"x": 1.0}, "a", inference_id="only-capture")  # capture alone: no warning
    assert "not tracked" not in caplog.text
    m.track_labels(":memory:")
    m.observe({"x": 2.0}, "b", inference_id="both")
    assert m.record_label("both", "a") == "matched"
    m.capture.flush()
    assert [r["inference_id"] for r in read_capture(str(tmp_path))] == ["only-capture", "both"]
    assert m.sample("promdrift_quality_confusion_total", output="y", actual="a",
                    predicted="b") == 1
    m.close()
    m.capture.close()


# ------------------------------------------------------------------------------ store model
class StoreModel:
    """A plain-Python statement of the LabelStore's rules, to compare it with."""

    def __init__(self, max_age, max_rows, hold):
        self.max_age, self.max_rows, self.hold = max_age, max_rows, hold
        self.rows = {}  # id -> [seq, has_prediction, predicted_at, has_label, labelled_at]
        self.seq = 0
        self.last_purge = -math.inf
        self.evicted = [0, 0, 0]

    def _insert(self, ident, pred, at):
        self.seq = max((r[0] for r in self.rows.values()), default=0) + 1
        self.rows[ident] = [self.seq, pred, at if pred else None, not pred,
                            None if pred else at]

    def _after(self, now):
        if now - self.last_purge >= 1.0 or now < self.last_purge:
            self.last_purge = now
            for ident, (seq, p, pa, l, la) in list(self.rows.items()):
                if (p and pa < now - self.max_age) or (not p and la < now - self.hold):
                    if not p:
                        self.evicted[2] += 1
                    elif not l:
                        self.evicted[0] += 1
                    del self.rows[ident]
        if self.rows:
            cut = max(r[0] for r in self.rows.values()) - self.max_rows
            for ident, (seq, p, pa, l, la) in list(self.rows.items()):
                if seq <= cut:
                    if not p:
                        self.evicted[2] += 1
                    elif not l:
                        self.evicted[1] += 1
                    del self.rows[ident]

    def put_prediction(self, ident, now):
        row = self.rows.get(ident)
        if row is None:
            self._insert(ident, True, now)
            out = []
        elif not row[1]:
            row[1], row[2] = True, now
            out = [(ident, "p", "l", now, row[4])]
        else:
            out = [(ident, None, None, now, now)]
        self._after(now)
        return out

    def put_label(self, ident, now):
        row = self.rows.get(ident)
        if row is None:
            self._insert(ident, False, now)
            out = ("held",)
        elif row[3]:
            out = ("duplicate",)
        else:
            row[3], row[4] = True, now
            out = ("matched", "p", row[2])
        self._after(now)
        return out

    def pending(self):
        return (sum(1 for r in self.rows.values() if not r[3]),
                sum(1 for r in self.rows.values() if not r[1]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "l"]), st.integers(0, 7),
                          st.sampled_from([0.0, 0.5, 1.0, 3.0, 12.0, 40.0])),
                min_size=1, max_size=60))
def test_label_store_follows_its_rules(ops):
    store = LabelStore(":memory:", max_age=30, max_rows=5, hold=10)
    model = StoreModel(30, 5, 10)
    now = 1000.0
    for kind, ident, dt in ops:
        now += dt
        ident = f"id{ident}"
        if kind == "p":
            got = store.put_predictions("m", [(ident, "p")], now)
            assert got == model.put_prediction(ident, now)
        else:
            got = store.put_label("m", ident, "l", now)
            assert got == model.put_label(ident, now)
        assert store.evicted("m") == tuple(model.evicted)
        assert store.pending("m") == model.pending()
        assert store.rows() == len(model.rows) <= 5
    store.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["observe", "label", "wait"]), st.integers(0, 9),
                          st.sampled_from(["a", "b"])), min_size=1, max_size=80))
def test_every_label_is_counted_exactly_once(ops):
    """Each label ends up joined, duplicate, still held, or expired (unmatched unknown)."""
    clock = Clock()
    b = Baseline.fit({"x": [1.0, 2.0], "y": ["a", "b"]}, predictions="y", model="inv")
    m = DriftMonitor(b, registry=None).track_labels(":memory:", max_rows=6, max_age=100,
                                                    hold=20)
    m.labels.clock = clock
    returned = {"matched": 0, "held": 0, "duplicate": 0}
    for kind, ident, cls in ops:
        if kind == "observe":
            m.observe({"x": 1.0}, cls, inference_id=ident)
        elif kind == "label":
            returned[m.record_label(ident, cls)] += 1
        else:
            clock.t += 7
    joined = m.sample("promdrift_quality_labels_total")
    held_joined = joined - returned["matched"]
    expired = m.sample("promdrift_quality_labels_unmatched_total", reason="unknown")
    pending = m.sample("promdrift_quality_pending", kind="label")
    assert held_joined >= 0
    assert returned["held"] == held_joined + expired + pending
    assert m.sample("promdrift_quality_labels_duplicate_total") == returned["duplicate"]
    cells = [m.sample("promdrift_quality_confusion_total", output="y", actual=a, predicted=p)
             for a in ("a", "b", "__other__") for p in ("a", "b", "__other__")]
    assert sum(cells) == joined
    assert m.sample("promdrift_instrumentation_errors_total") == 0
