"""DataCapture: sampling, JSON safety, rotation, retention, crash safety, concurrency, counters."""

import errno
import json
import math
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor
from promdrift.instrumentation.capture import writer as capture_mod
from promdrift.instrumentation.capture import CaptureFiles, DataCapture, read_capture


def files(directory, suffix):
    return sorted(f for f in os.listdir(directory) if f.endswith(suffix))


def test_sample_rate_is_binomial_and_seeded(tmp_path):
    n, p = 20_000, 0.1
    chosen = []
    for run in range(2):
        d = tmp_path / f"run{run}"
        with DataCapture(d, sample_rate=p, seed=7, registry=None) as cap:
            queued = sum(cap.record({"x": float(i)}, inference_id=i) for i in range(n))
        ids = [r["inference_id"] for r in read_capture(d)]
        assert len(ids) == queued == cap.rows_total
        chosen.append(ids)
    k = len(chosen[0])
    # 5 standard deviations of Binomial(n, p): fails by chance with probability < 1e-6.
    assert abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    assert chosen[0] == chosen[1]  # the same seed samples the same rows
    assert chosen[0] == sorted(set(chosen[0]))


def test_batch_rows_are_sampled_one_by_one(tmp_path):
    n, p = 10_000, 0.3
    batch = np.arange(n, dtype=float).reshape(-1, 1)
    with DataCapture(tmp_path, sample_rate=p, seed=1, registry=None) as cap:
        cap.record(batch, list(range(n)), inference_id="b1", feature_names=("x",),
                   output_names=("y",))
    recs = read_capture(tmp_path)
    assert abs(len(recs) - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    for r in recs:
        i = r["batch_index"]
        assert r["features"] == {"x": float(i)} and r["prediction"] == {"y": i}
        assert r["inference_id"] == "b1"


def test_json_safe_values(tmp_path):
    row = {"nan": float("nan"), "pinf": float("inf"), "ninf": -np.inf, "none": None,
           "i64": np.int64(3), "f32": np.float32(0.5), "arr": np.array([1, 2]),
           "text": "é\"\n", "obj": object(), "big": 10**30}
    with DataCapture(tmp_path, registry=None) as cap:
        cap.record(row, np.float64(0.25), model="m", model_version=2)
    path = os.path.join(tmp_path, files(tmp_path, ".jsonl")[0])
    with open(path, encoding="utf-8") as f:
        line = f.readline()
    json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in the file"))
    (rec,) = read_capture(tmp_path)
    f = rec["features"]
    assert (f["nan"], f["pinf"], f["ninf"]) == ("NaN", "Infinity", "-Infinity")
    assert f["none"] is None and f["i64"] == 3 and f["f32"] == 0.5 and f["arr"] == [1, 2]
    assert f["text"] == "é\"\n" and f["obj"].startswith("<object object") and f["big"] == 10**30
    assert rec["prediction"] == 0.25 and rec["model"] == "m" and rec["model_version"] == "2"
    assert rec["time"].endswith("Z")


def test_rotation_keeps_every_file_under_the_bound(tmp_path):
    limit = 2_000
    with DataCapture(tmp_path, max_file_bytes=limit, max_files=1000, registry=None) as cap:
        for i in range(1_000):
            cap.record({"x": i, "pad": "p" * (i % 50)}, inference_id=i)
            if i % 97 == 0:
                cap.flush()
    done = files(tmp_path, ".jsonl")
    assert files(tmp_path, ".part") == []
    assert len(done) > 1_000 * 40 // limit
    assert all(os.path.getsize(tmp_path / f) <= limit for f in done)
    assert [r["inference_id"] for r in read_capture(tmp_path)] == list(range(1_000))


def test_max_files_keeps_the_newest(tmp_path):
    with DataCapture(tmp_path, max_file_bytes=1_000, max_files=3, registry=None) as cap:
        for i in range(2_000):
            cap.record({"x": i}, inference_id=i)
        assert cap.flush()
        assert len(os.listdir(tmp_path)) <= 3
    assert len(os.listdir(tmp_path)) <= 3
    ids = [r["inference_id"] for r in read_capture(tmp_path)]
    assert ids and ids[-1] == 1_999
    assert ids == list(range(ids[0], 2_000))  # a contiguous tail: only whole old files went


def test_part_file_until_rotation_then_atomic_rename(tmp_path):
    cap = DataCapture(tmp_path, registry=None)
    cap.record({"x": 1})
    assert cap.flush()
    assert len(files(tmp_path, ".jsonl.part")) == 1 and files(tmp_path, ".jsonl") == []
    assert [r["features"] for r in read_capture(tmp_path)] == [{"x": 1}]
    assert read_capture(tmp_path, partial=False) == []
    assert cap.rotate()
    assert files(tmp_path, ".part") == [] and len(files(tmp_path, ".jsonl")) == 1
    cap.close()
    assert cap.record({"x": 2}) == 0  # closed: ignored, never raises


def test_truncated_last_line_is_skipped_and_recovered(tmp_path):
    cap = DataCapture(tmp_path, registry=None)
    for i in range(10):
        cap.record({"x": i}, inference_id=i)
    cap.flush()
    (part,) = files(tmp_path, ".part")
    with open(tmp_path / part, "ab") as f:  # a write cut short by a crash
        f.write(b'{"time":"2026-01-01T00:00:00.000Z","model":"","features":{"x":')
    reader = CaptureFiles(tmp_path)
    assert [r["inference_id"] for r in reader] == list(range(10))
    assert (reader.rows, reader.truncated, reader.bad) == (10, 1, 0)


KILLED_WRITER = textwrap.dedent("""
    import sys
    import time
    from promdrift.instrumentation.capture import DataCapture
    cap = DataCapture(sys.argv[1], max_file_bytes=4096, max_files=10_000,
                      flush_interval=0.001, registry=None)
    i, ready = 0, False
    while True:
        cap.record({"x": i, "pad": "p" * (i % 300)}, inference_id=i)
        i += 1
        if not ready and i % 100 == 0 and cap.rows_total >= 300:
            ready = True
            print("ready", flush=True)
        if i % 50 == 0:
            time.sleep(0.001)  # a server between requests: the writer thread gets its turn
""")


def test_sigkill_mid_stream_leaves_no_corrupt_file(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # bounded wait
        assert ready and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    complete = files(tmp_path, ".jsonl")
    assert len(complete) >= 2
    for name in complete:  # every complete file parses line by line, newline-terminated
        with open(tmp_path / name, "rb") as f:
            data = f.read()
        assert data.endswith(b"\n")
        for line in data.splitlines():
            json.loads(line)
    reader = CaptureFiles(tmp_path)
    ids = [r["inference_id"] for r in reader]
    assert reader.bad == 0 and reader.truncated <= 1
    assert ids == list(range(len(ids))) and len(ids) >= 300
    # A new writer on the host finalises the dead writer's .part file.
    # (A .part file holding no complete line is deleted instead.)
    parts = [p for p in files(tmp_path, ".part") if b"\n" in (tmp_path / p).read_bytes()]
    cap = DataCapture(tmp_path, max_files=100_000, registry=None)
    assert files(tmp_path, ".part") == []
    assert len(files(tmp_path, ".jsonl")) == len(complete) + len(parts)
    assert [r["inference_id"] for r in read_capture(tmp_path)] == ids
    cap.close()


def test_threads_write_every_row_once(tmp_path):
    threads, per_thread = 8, 500
    cap = DataCapture(tmp_path, max_file_bytes=8_000, max_files=10_000, registry=None)

    def work(t):
        for i in range(per_thread):
            cap.record({"t": t, "i": i}, inference_id=f"{t}-{i}")

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=30)
    cap.close()
    reader = CaptureFiles(tmp_path)
    ids = [r["inference_id"] for r in reader]
    assert reader.bad == reader.truncated == 0
    assert sorted(ids) == sorted(f"{t}-{i}" for t in range(threads) for i in range(per_thread))
    assert cap.rows_total == threads * per_thread and cap.dropped_total() == 0


def test_full_queue_drops_and_counts(tmp_path, monkeypatch):
    cap = DataCapture(tmp_path, queue_size=5, registry=None)
    monkeypatch.setattr(cap, "_start", lambda: None)  # a writer that never catches up
    queued = sum(cap.record({"x": i}) for i in range(50))
    assert queued == 5
    assert cap.dropped_total("queue_full") == 45 and cap.dropped_total() == 45


def test_disk_full_is_counted_logged_once_and_cut_back(tmp_path, monkeypatch, caplog):
    cap = DataCapture(tmp_path, registry=None)
    for i in range(3):
        cap.record({"x": i}, inference_id=i)
    assert cap.flush()
    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, bytes(data[:7]))  # a partial line reaches the file, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(capture_mod.os, "write", disk_full)
    with caplog.at_level("ERROR", logger="promdrift"):
        for i in range(3, 6):
            cap.record({"x": i}, inference_id=i)
            assert cap.flush()
    assert cap.dropped_total("write_error") == 3
    assert sum("data capture" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setattr(capture_mod.os, "write", real_write)
    cap.record({"x": 6}, inference_id=6)
    cap.close()
    reader = CaptureFiles(tmp_path)
    assert [r["inference_id"] for r in reader] == [0, 1, 2, 6]
    assert reader.bad == reader.truncated == 0
    assert cap.rows_total == 4


def test_oversized_row_is_dropped_not_written(tmp_path):
    with DataCapture(tmp_path, max_file_bytes=300, registry=None) as cap:
        cap.record({"x": "y" * 1000})
        cap.record({"x": 1})
    assert [r["features"] for r in read_capture(tmp_path)] == [{"x": 1}]
    assert cap.dropped_total("too_large") == 1


def test_monitor_integration_and_counters(tmp_path, penguins_baseline, penguins_rows):
    reg = CollectorRegistry()
    cap = DataCapture(tmp_path, seed=0)
    monitor = DriftMonitor(penguins_baseline, registry=reg, capture=cap)
    mb = dict(monitor.plan_labels)  # attached, the counters carry the monitor's labels
    assert mb == {"model": "penguins", "baseline": penguins_baseline.digest}
    assert reg.get_sample_value("promdrift_capture_rows_total", mb) == 0
    assert reg.get_sample_value("promdrift_capture_dropped_total",
                                {**mb, "reason": "queue_full"}) == 0
    names = penguins_baseline.feature_names
    rows = [{k: r[k] for k in names} for r in penguins_rows]
    for i, row in enumerate(rows[:100]):
        monitor.observe(row, inference_id=f"r{i}")
    monitor.observe(rows[100:], inference_id=[f"r{i}" for i in range(100, len(rows))])
    monitor.observe("not a row")  # the caller's error: counted as such, never raises
    assert cap.flush()
    *recs, odd = read_capture(tmp_path)
    assert odd["features"] == "not a row"  # captured as sent: the report flags it
    assert [r["inference_id"] for r in recs] == [f"r{i}" for i in range(len(rows))]
    assert [r["features"] for r in recs] == rows
    assert all(r["model"] == "penguins" for r in recs)
    assert reg.get_sample_value("promdrift_capture_rows_total", mb) == len(rows) + 1
    assert monitor.sample("promdrift_inferences_total") == len(rows)
    assert monitor.sample("promdrift_requests_invalid_total", reason="bad_shape") == 1
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0
    # Rows given as sequences in baseline order are named.
    monitor.observe([rows[0][n] for n in names])
    cap.close()
    assert read_capture(tmp_path)[-1]["features"] == rows[0]
    # A second monitor in the same registry shares the capture's one collector.
    other = Baseline.fit({"x": [1.0, 2.0]}, model="other", bins=2)
    DriftMonitor(other, registry=reg).capture_to(cap)
    assert reg.get_sample_value("promdrift_capture_rows_total",
                                {"model": "other", "baseline": other.digest}) == 0


def test_predictions_are_named_by_the_monitor(tmp_path, breast_cancer_baseline,
                                              breast_cancer_rows):
    cap = DataCapture(tmp_path, registry=None)
    monitor = DriftMonitor(breast_cancer_baseline, registry=None, capture=cap)
    feats = breast_cancer_baseline.feature_names
    x = np.array([[r[n] for n in feats] for r in breast_cancer_rows[:20]])
    y = [r["diagnosis"] for r in breast_cancer_rows[:20]]
    monitor.observe(x, y)
    cap.close()
    recs = read_capture(tmp_path)
    assert [r["prediction"] for r in recs] == [{"diagnosis": v} for v in y]
    assert [list(r["features"].values()) for r in recs] == x.tolist()


def test_observe_never_raises_because_of_capture(tmp_path, monkeypatch, caplog):
    cap = DataCapture(tmp_path, registry=None)
    monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="m", bins=2),
                           registry=None, capture=cap)

    def broken(v):
        raise RuntimeError("boom")

    monkeypatch.setattr(capture_mod, "_snapshot", broken)
    with caplog.at_level("ERROR", logger="promdrift"):
        monitor.observe({"x": 1.5})
        monitor.observe({"x": 2.5})
    assert monitor.sample("promdrift_inferences_total") == 2
    assert monitor.sample("promdrift_instrumentation_errors_total") == 0
    assert cap.dropped_total("encode_error") == 2
    assert sum("data capture" in r.getMessage() for r in caplog.records) == 1
    cap.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_writes_its_own_files(tmp_path):
    cap = DataCapture(tmp_path, registry=None)
    cap.record({"who": "parent", "i": 0})
    assert cap.flush()
    pid = os.fork()
    if pid == 0:  # the child: the writer thread did not survive the fork
        code = 1
        try:
            n = sum(cap.record({"who": "child", "i": i}) for i in range(5))
            cap.close()
            code = 0 if n == 5 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    cap.record({"who": "parent", "i": 1})
    cap.close()
    recs = read_capture(tmp_path)
    assert sorted((r["features"]["who"], r["features"]["i"]) for r in recs) == \
        [("child", i) for i in range(5)] + [("parent", 0), ("parent", 1)]
    assert any(f"-{pid}-" in f for f in files(tmp_path, ".jsonl"))


@pytest.mark.parametrize("kwargs", [{"sample_rate": 1.5}, {"sample_rate": -0.1},
                                    {"sample_rate": "1"}, {"max_files": 0},
                                    {"max_file_bytes": 10}, {"prefix": "a/b"},
                                    {"queue_size": 0}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        DataCapture(tmp_path, registry=None, **kwargs)


def test_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create capture directory"):
        DataCapture(blocker / "sub", registry=None)
