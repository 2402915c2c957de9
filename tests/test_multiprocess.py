"""The multiprocess counts store: per-process files summed at scrape, dead workers kept,
compaction, fork safety, directory checks."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import Baseline, DriftMonitor, Layout
from promdrift.instrumentation import gunicorn as hooks
from promdrift.instrumentation.counting.multiprocess import (ENV, STARTUP_FAILURE,
                                                             MultiprocessCounterStore,
                                                             MultiprocessDirError, check_directory,
                                                             clear_directory, mark_process_dead,
                                                             startup_error)

from exporter_helpers import samples


def features(row):
    return {k: v for k, v in row.items() if k != "species"}


def store(baseline, directory, ident=None):
    return MultiprocessCounterStore(Layout(baseline), directory, ident=ident)


def dead_file(live, pid, counts):
    """The counts file a worker ``pid`` of ``live``'s run left when it died."""
    path = os.path.join(live.directory, f"{live.key}-{live.run}-{pid}_1.f64")
    np.asarray(counts, dtype=np.float64).tofile(path)
    return path


def test_workers_sum_to_a_single_process_exactly(penguins_species, penguins_rows, tmp_path):
    single = DriftMonitor(penguins_species, registry=None)
    workers = [DriftMonitor(penguins_species, registry=CollectorRegistry(),
                            store=store(penguins_species, tmp_path, f"w{i}")) for i in range(3)]
    for i, row in enumerate(penguins_rows):
        single.observe(features(row), row["species"])
        workers[i % 3].observe(features(row), row["species"])
    first = penguins_rows[:50]
    workers[0].observe([features(r) for r in first], [r["species"] for r in first])
    single.observe([features(r) for r in first], [r["species"] for r in first])
    expected = samples(single.render())
    for w in workers:  # a scrape of any worker reports the totals
        got = samples(w.metrics_text().decode())
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12), key
    assert (sum(w.store.local_snapshot()[Layout.INFERENCES] for w in workers)
            == len(penguins_rows) + 50)
    assert len(workers[0].store.files()) == 3


def test_other_models_and_baselines_are_not_mixed(penguins_species, tmp_path):
    other = Baseline.fit({"x": [1.0, 2.0, 3.0]}, model="penguins", bins=2)  # same name
    a = DriftMonitor(penguins_species, registry=None, store=store(penguins_species, tmp_path, "a"))
    b = DriftMonitor(other, registry=None, store=store(other, tmp_path, "b"))
    c = DriftMonitor(penguins_species, model="renamed", registry=None)
    a.observe({"year": 2008})
    b.observe({"x": 2.0})
    b.observe({"x": 3.0})
    assert a.sample("promdrift_inferences_total") == 1
    assert b.sample("promdrift_inferences_total") == 2
    assert c.sample("promdrift_inferences_total") == 0


def test_dead_workers_are_kept_and_folded_into_the_archive(penguins_species, penguins_rows,
                                                           tmp_path):
    live = DriftMonitor(penguins_species, registry=None,
                        store=store(penguins_species, tmp_path, "live"))
    dead_pids = [4_000_001, 4_000_002]
    worker = DriftMonitor(penguins_species, registry=None)
    worker.observe([features(r) for r in penguins_rows[:100]])
    for pid in dead_pids:  # what workers of those pids left behind
        dead_file(live.store, pid, worker.store.snapshot())
    live.observe(features(penguins_rows[0]))
    before = live.store.snapshot()
    assert before[Layout.INFERENCES] == 201
    assert mark_process_dead(dead_pids[0], str(tmp_path)) == 1
    assert mark_process_dead(dead_pids[0], str(tmp_path)) == 0  # idempotent
    assert mark_process_dead(dead_pids[1], str(tmp_path)) == 1
    after = live.store.snapshot()
    lay = live.layout
    sums = slice(lay.sum_base, lay.sum_base + len(lay.numeric))
    np.testing.assert_allclose(after[sums], before[sums], rtol=1e-12)  # float sums
    after[sums] = before[sums] = 0
    assert after.tolist() == before.tolist()  # every count exactly
    names = sorted(os.path.basename(p).split("-", 2)[2] for p in live.store.files())
    assert names == ["archive.f64", "live.f64"]
    live.observe(features(penguins_rows[1]))
    assert live.store.snapshot()[Layout.INFERENCES] == 202


def test_a_file_left_by_the_same_name_keeps_counting(penguins_species, tmp_path):
    s = store(penguins_species, tmp_path, "123_1")
    s.counts[Layout.INFERENCES] += 5
    s.close()
    again = store(penguins_species, tmp_path, "123_1")  # e.g. a reused pid
    assert again.local_snapshot()[Layout.INFERENCES] == 5


def test_default_names_are_per_process_and_per_store(penguins_species, tmp_path):
    a, b = store(penguins_species, tmp_path), store(penguins_species, tmp_path)
    assert a.path != b.path
    assert os.path.basename(a.path).split("-")[2].startswith(f"{os.getpid()}_")


def test_env_variable_makes_drift_monitor_multiprocess(penguins_species, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path))
    a = DriftMonitor(penguins_species, registry=None)
    b = DriftMonitor(penguins_species, registry=None)
    assert isinstance(a.store, MultiprocessCounterStore)
    a.observe({"year": 2007})
    b.observe({"year": 2009})
    assert a.sample("promdrift_inferences_total") == 2
    monkeypatch.delenv(ENV)
    assert not isinstance(DriftMonitor(penguins_species, registry=None).store,
                          MultiprocessCounterStore)


def test_fork_gets_a_fresh_file_and_nothing_is_shared(penguins_species, tmp_path):
    s = store(penguins_species, tmp_path)
    m = DriftMonitor(penguins_species, registry=None, store=s)
    m.observe({"year": 2007})
    pid = os.fork()
    if pid == 0:  # child: count 10 rows into its own file, report the total it sees
        code = 1
        try:
            for _ in range(10):
                m.observe({"year": 2008})
            ok = (s.path != "" and f"-{os.getpid()}_" in s.path
                  and s.local_snapshot()[Layout.INFERENCES] == 10
                  and s.snapshot()[Layout.INFERENCES] == 11)
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert s.local_snapshot()[Layout.INFERENCES] == 1  # the parent's file was not written
    assert s.snapshot()[Layout.INFERENCES] == 11       # the exited child's file still counts
    assert mark_process_dead(pid, str(tmp_path)) == 1
    assert s.snapshot()[Layout.INFERENCES] == 11


def test_directory_checks(tmp_path):
    """Each error names the directory and the fix."""
    assert check_directory(tmp_path) == str(tmp_path)
    missing = tmp_path / "missing" / "deeper"
    with pytest.raises(MultiprocessDirError) as e:
        check_directory(missing)
    assert str(e.value) == (f"{ENV}={str(missing)!r} does not exist: create it (mkdir -p "
                            f"{missing}), writable by the server's user, before starting "
                            "the server")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(MultiprocessDirError, match=f"{ENV}='{f}' is not a directory: set "
                       f"{ENV} to an empty, writable directory"):
        check_directory(f)
    with pytest.raises(MultiprocessDirError, match=f"{ENV}='{f}/a/b' cannot be created: {f} "
                       "is a file, not a directory"):
        check_directory(f / "a" / "b")
    with pytest.raises(MultiprocessDirError, match=f"{ENV} is empty"):
        check_directory("")
    if os.geteuid() != 0:  # root writes anywhere but in read-only file systems
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    else:
        ro = "/sys/kernel"
    try:
        check_directory(ro)
    except MultiprocessDirError as e:
        assert f"{ENV}='{ro}' is not writable by this process" in str(e)
        assert "make it writable by the server's user, or set" in str(e)
    else:
        pytest.skip(f"{ro} is writable here")


def test_startup_error_is_the_check_of_every_server(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert startup_error(1) is None
    assert startup_error(2) == (f"{ENV} is not set: with 2 workers each would report only "
                                "its own counts. Set it to an empty, writable directory "
                                "(docs/multiprocess.md).")
    monkeypatch.setenv(ENV, str(tmp_path))
    assert startup_error(1) is None and startup_error(8) is None
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    assert "does not exist" in startup_error(1)
    from promdrift.instrumentation.web.asgi import several_workers_error
    assert several_workers_error(3) == startup_error(3)


def test_a_bad_directory_raises_outside_a_server_loading_the_app(penguins_species,
                                                                 tmp_path, monkeypatch):
    """Only uvicorn or gunicorn loading the app turns the error into exit status 3; a
    script, a notebook or a test gets the exception."""
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    with pytest.raises(MultiprocessDirError, match="does not exist"):
        DriftMonitor(penguins_species, registry=None)


def test_store_without_a_directory_fails_clearly(penguins_species, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(MultiprocessDirError, match="not set"):
        MultiprocessCounterStore(Layout(penguins_species))
    monkeypatch.setenv(ENV, "/nonexistent/promdrift-dir")
    with pytest.raises(MultiprocessDirError, match="does not exist"):
        DriftMonitor(penguins_species, registry=None)


def test_a_foreign_or_truncated_file_is_reported(penguins_species, tmp_path):
    s = store(penguins_species, tmp_path, "a")
    with open(s.path.replace("-a.f64", "-b.f64"), "wb") as f:
        f.write(b"\0" * 16)
    with pytest.raises(MultiprocessDirError, match="expected"):
        s.snapshot()
    with pytest.raises(MultiprocessDirError, match="bytes, expected"):
        store(penguins_species, tmp_path, "b")


def test_bad_ident(penguins_species, tmp_path):
    with pytest.raises(ValueError, match="ident"):
        store(penguins_species, tmp_path, "../x")


def test_clear_directory(penguins_species, tmp_path):
    store(penguins_species, tmp_path, "a").close()
    store(penguins_species, tmp_path, "b").close()
    (tmp_path / "keep.txt").write_text("not ours")
    assert clear_directory(str(tmp_path)) == 2
    assert os.listdir(tmp_path).count("keep.txt") == 1


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, *args):
        self.lines.append(args[0] % args[1:])

    warning = info


class _Server:
    """What the hooks use of gunicorn's Arbiter; ``halt`` exits as the real one does."""

    def __init__(self, workers):
        self.cfg = type("cfg", (), {"workers": workers})()
        self.log = _Log()
        self.halted = None

    def halt(self, reason=None, exit_status=0):
        self.halted = (reason, exit_status)
        raise SystemExit(exit_status)


def test_gunicorn_hooks(penguins_species, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    refused = _Server(4)
    with pytest.raises(SystemExit):
        hooks.on_starting(refused)
    assert refused.halted[1] == STARTUP_FAILURE
    assert refused.halted[0].startswith(f"{ENV} is not set: with 4 workers")
    hooks.on_starting(_Server(1))  # one worker needs no directory
    monkeypatch.setenv(ENV, str(tmp_path / "missing"))
    with pytest.raises(SystemExit):
        hooks.on_starting(refused)  # one worker or several: the directory must be usable
    assert "does not exist" in refused.halted[0]
    monkeypatch.setenv(ENV, str(tmp_path))
    store(penguins_species, tmp_path, "old").close()  # a previous run's file
    server = _Server(4)
    hooks.on_starting(server)
    assert not any(p.endswith(".f64") for p in os.listdir(tmp_path))
    assert "1 old files removed" in server.log.lines[0]
    dead = store(penguins_species, tmp_path, "4000003_1")
    dead.counts[Layout.INFERENCES] += 7
    dead.close()
    live = store(penguins_species, tmp_path, "live")
    hooks.child_exit(server, type("worker", (), {"pid": 4000003})())
    assert live.snapshot()[Layout.INFERENCES] == 7
    assert len(live.files()) == 2  # live + archive
    np.testing.assert_array_equal(live.local_snapshot(), np.zeros(live.layout.size))


def test_fork_with_the_directory_gone_falls_back_to_private_memory(penguins_species, tmp_path):
    d = tmp_path / "gone"
    d.mkdir()
    s = store(penguins_species, d)
    s.counts[Layout.INFERENCES] += 1
    s.close()
    s2 = store(penguins_species, d)
    for name in os.listdir(d):
        os.unlink(d / name)
    os.rmdir(d)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            s2.counts[Layout.INFERENCES] += 5  # must not land in the parent's mapping
            code = 0 if s2._mm is None else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert s2.local_snapshot()[Layout.INFERENCES] == 0


def test_scrapes_during_folding_never_see_a_different_total(penguins_species, tmp_path):
    """Folding dead files into the archive while other threads scrape: every scrape sees the
    same total (the directory lock), none sees a dead worker's counts twice or not at all."""
    import threading
    live = store(penguins_species, tmp_path, "live")
    live.counts[Layout.INFERENCES] += 1
    pids = list(range(4_100_000, 4_100_040))
    for i, pid in enumerate(pids):
        counts = np.zeros(live.layout.size)
        counts[Layout.INFERENCES] = i + 1
        dead_file(live, pid, counts)
    total = 1 + sum(range(1, len(pids) + 1))
    seen = []
    done = threading.Event()

    def scrape():
        while not done.is_set():
            seen.append(live.snapshot()[Layout.INFERENCES])
            time.sleep(0.0005)

    scrapers = [threading.Thread(target=scrape) for _ in range(3)]
    for t in scrapers:
        t.start()
    try:
        for pid in pids:
            assert mark_process_dead(pid, str(tmp_path)) == 1
    finally:
        done.set()
        for t in scrapers:
            t.join(10)
    assert len(seen) > 10 and set(seen) == {total}
    assert len(live.files()) == 2


def test_folding_gives_up_when_the_directory_stays_busy(penguins_species, tmp_path):
    from promdrift.instrumentation.counting.multiprocess import _dir_lock
    live = store(penguins_species, tmp_path, "live")
    counts = np.zeros(live.layout.size)
    counts[Layout.INFERENCES] = 3
    dead_file(live, 4200000, counts)
    with _dir_lock(str(tmp_path), exclusive=False):  # a scrape that does not end
        with pytest.raises(TimeoutError, match="busy"):
            mark_process_dead(4200000, str(tmp_path), timeout=0.2)
    assert live.snapshot()[Layout.INFERENCES] == 3  # nothing lost
    assert mark_process_dead(4200000, str(tmp_path)) == 1
    assert live.snapshot()[Layout.INFERENCES] == 3


def test_outcome_and_capture_counters_are_exact_across_workers(penguins_species, penguins_rows,
                                                               tmp_path, monkeypatch):
    """Two monitors counting into one directory (what two workers do) report, in every
    scrape, exactly what one process that saw every request reports: drift, labels, facets,
    attributions and capture alike."""
    from promdrift.instrumentation.capture import DataCapture
    b = penguins_species.with_bias([features(r) for r in penguins_rows],
                                   [r["species"] for r in penguins_rows], facets="island")
    b = b.with_attributions({"bill_length_mm": [1.0, 2.0], "year": [0.5, 0.1]})
    labels = str(tmp_path / "labels.sqlite3")

    def monitor(directory=None):
        m = DriftMonitor(b, registry=CollectorRegistry(),
                         capture=DataCapture(str(tmp_path / "capture"), registry=None))
        m.track_labels(labels if directory else ":memory:").track_facets().track_attributions()
        m.labels.clock = lambda: 1000.0  # label delays the same in every process
        return m

    single = monitor()
    monkeypatch.setenv(ENV, str(tmp_path / "mp"))
    (tmp_path / "mp").mkdir()
    workers = [monitor(True), monitor(True)]
    assert all(isinstance(w.labels.counters.store, MultiprocessCounterStore) for w in workers)
    for i, row in enumerate(penguins_rows[:120]):
        attrs = {"bill_length_mm": i % 7 - 3.0, "year": 0.25}
        for m in (single, workers[i % 2]):
            m.observe(features(row), row["species"], inference_id=f"r{i}", attributions=attrs)
    for w in workers:  # the predictions queued in each worker reach the shared store
        w.flush()
    for i, row in enumerate(penguins_rows[:120:3]):  # labels reach the other worker
        truth = "Adelie" if i % 4 else row["species"]
        single.record_label(f"r{3 * i}", truth)
        assert workers[(3 * i + 1) % 2].record_label(f"r{3 * i}", truth) == "matched"
    for m in [single] + workers:
        m.capture.flush()
    want = samples(single.render())
    ndcg = {"promdrift_attribution_ndcg", "promdrift_attribution_window_rows"}  # per process
    for w in workers:
        got = samples(w.render())
        assert got.keys() == want.keys()
        for key, value in want.items():
            if key[0] not in ndcg:
                assert got[key] == pytest.approx(value, rel=1e-12), key
    key = tuple(sorted(single.plan_labels))
    assert want["promdrift_quality_labels_total", key] == 40
    assert want["promdrift_capture_rows_total", key] == 120
    for m in [single] + workers:
        m.close()
        m.capture.close()


def test_files_of_an_earlier_run_are_removed_and_never_summed(penguins_species, tmp_path):
    from promdrift.instrumentation.counting.multiprocess import current_run, tidy
    live = store(penguins_species, tmp_path, "live")
    counts = np.ones(live.layout.size)
    old = os.path.join(str(tmp_path), f"{live.key}-r4300000_1-4300001_1.f64")
    counts.tofile(old)  # an earlier run's worker: its master (pid 4300000) is gone
    assert live.snapshot()[Layout.INFERENCES] == 0  # another run: not summed
    dead = dead_file(live, 4300002, counts)  # a dead worker of this run: kept and folded
    assert live.snapshot()[Layout.INFERENCES] == 1
    assert tidy(str(tmp_path)) == (1, 1)
    assert not os.path.exists(old) and not os.path.exists(dead)
    assert live.snapshot()[Layout.INFERENCES] == 1
    assert live.run == current_run()


def test_one_process_families_are_left_out_of_counts_merged_across_workers(
        penguins_species, tmp_path):
    """prometheus_client's process, GC and platform collectors describe the process that
    answers the scrape: exported beside one process's counts, left out beside counts summed
    over workers (docs/multiprocess.md); the app's own metrics stay."""
    from prometheus_client import Counter, GCCollector, PlatformCollector, ProcessCollector
    from prometheus_client.parser import text_string_to_metric_families

    from promdrift.instrumentation.counting.exposition import PER_PROCESS_FAMILIES, metrics_text

    def registry(own=True):
        reg = CollectorRegistry()
        ProcessCollector(registry=reg)
        GCCollector(registry=reg)
        PlatformCollector(registry=reg)
        if own:
            Counter("app_requests", "the app's own", registry=reg).inc()
        return reg

    def families(text):
        return {f.name for f in text_string_to_metric_families(text)}

    # exactly the families of prometheus_client's default collectors (Linux: /proc)
    assert families(metrics_text(registry(own=False)).decode()) == PER_PROCESS_FAMILIES
    single = DriftMonitor(penguins_species, registry=registry())
    merged = DriftMonitor(penguins_species, registry=registry(),
                          store=store(penguins_species, tmp_path))
    one, many = families(single.metrics_text().decode()), families(merged.metrics_text().decode())
    assert PER_PROCESS_FAMILIES <= one and "app_requests" in one
    assert many == one - PER_PROCESS_FAMILIES
    assert "promdrift_inferences" in many
