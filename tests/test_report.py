"""promdrift report: statistics against independent numpy / scipy computations on the test
data sets with injected drift, every violation type, the HTML page and the CLI."""

import doctest
import io
import json
import math
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy import stats

import promdrift.exporter.report as report_mod
from promdrift.exporter.cli import main
from promdrift.exporter.report import Thresholds, build_report, ks_2samp, render_html
from promdrift.instrumentation import Baseline
from promdrift.instrumentation.training.baseline import category_key
from promdrift.instrumentation.capture import DataCapture
from promdrift.instrumentation.training.tabular import Progress

from conftest import BREAST_CANCER_CSV, PENGUINS_CSV


# The data sets hold a few hundred rows: the drift checks are tried from 200 values (the
# default is the alerts' min_samples).
SMALL = Thresholds(min_samples=200)


def capture_rows(directory, rows, model, predictions=None, **kwargs):
    with DataCapture(directory, registry=None, **kwargs) as cap:
        for i, row in enumerate(rows):
            cap.record(row, None if predictions is None else predictions[i], model=model)
    return directory


def finite(values):
    return np.array([v for v in values if isinstance(v, (int, float)) and math.isfinite(v)],
                    dtype=float)


def binned(edges, values):
    """Counts per (edges[i-1], edges[i]] bucket, +Inf last, by explicit masks."""
    out, lower = [], -np.inf
    for e in list(edges) + [np.inf]:
        out.append(int(np.sum((values > lower) & (values <= e))))
        lower = e
    return np.array(out, dtype=float)


def ref_psi(live, base, floor=1e-4):
    p = np.maximum(live / live.sum(), floor)
    q = np.maximum(base / base.sum(), floor)
    return float(np.sum((p - q) * np.log(p / q)))


def by_name(report):
    return {f.name: f for f in report.features}


def checks(report):
    return {(v.feature_name, v.check) for v in report.violations}


def test_doctests():
    result = doctest.testmod(report_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_ks_2samp_matches_scipy_on_real_columns(penguins_rows, breast_cancer_rows):
    rng = np.random.default_rng(3)
    for rows in (penguins_rows, breast_cancer_rows):
        for name, v in rows[0].items():
            if not isinstance(v, float):
                continue
            x = finite(r[name] for r in rows)
            half = rng.permutation(x)
            for a, b in ((half[: len(x) // 2], half[len(x) // 2:]), (x, x * 1.05 + 0.1),
                         (x, np.round(x[: 50]))):  # random split, drift, heavy ties
                assert ks_2samp(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic,
                                                       abs=1e-12)
    with pytest.raises(ValueError):
        ks_2samp([], [1.0])


@pytest.fixture(scope="module")
def drifted_breast_cancer(tmp_path_factory, breast_cancer_rows):
    baseline = Baseline.fit_csv(BREAST_CANCER_CSV, model="bc", predictions="diagnosis",
                                progress=False)
    rng = np.random.default_rng(11)
    rows, preds = [], []
    for r in breast_cancer_rows:
        row = {k: v for k, v in r.items() if k != "diagnosis"}
        row["mean_radius"] = row["mean_radius"] * 1.25  # drift
        row["mean_texture"] = row["mean_texture"] + rng.normal(0, 0.5)  # noise, little drift
        rows.append(row)
        preds.append(r["diagnosis"])
    d = capture_rows(tmp_path_factory.mktemp("bc"), rows, "bc", preds)
    return baseline, rows, preds, d


def test_numeric_statistics_match_numpy_and_scipy(drifted_breast_cancer, breast_cancer_rows):
    baseline, rows, preds, d = drifted_breast_cancer
    exact = build_report(baseline, str(d), train=BREAST_CANCER_CSV, thresholds=SMALL)
    approx = build_report(baseline, str(d), thresholds=SMALL)
    assert exact.rows == approx.rows == len(rows) and exact.ks_method == "exact"
    assert approx.ks_method == "binned"
    fe, fa = by_name(exact), by_name(approx)
    for col in baseline.features:
        live = finite(r[col.name] for r in rows)
        train = finite(r[col.name] for r in breast_cancer_rows)
        counts = binned(col.edges, live)
        base = np.array(col.counts, dtype=float)
        assert fe[col.name].counts.tolist() == counts.tolist()
        assert fe[col.name].ks == pytest.approx(stats.ks_2samp(live, train).statistic, abs=1e-12)
        ref_binned = np.max(np.abs(np.cumsum(counts) / counts.sum() - np.cumsum(base) / base.sum()))
        assert fa[col.name].ks == pytest.approx(ref_binned, abs=1e-12)
        assert fa[col.name].ks <= fe[col.name].ks + 1e-12  # binned is a lower bound
        assert fe[col.name].psi == pytest.approx(ref_psi(counts, base), rel=1e-12)
        n, m = len(live), len(train)
        c = math.sqrt(-math.log(0.01 / (2 * len(baseline.features))) / 2)  # family-wise
        assert fe[col.name].ks_critical == pytest.approx(c * math.sqrt((n + m) / (n * m)))
        out = np.mean((live < train.min()) | (live > train.max()))
        assert fe[col.name].out_of_range == pytest.approx(out)
    assert ("mean_radius", "baseline_drift_check") in checks(exact)
    assert ("mean_radius", "range_check") in checks(exact)
    assert ("mean_texture", "baseline_drift_check") not in checks(exact)
    drifted = {v.feature_name for v in exact.violations}
    assert drifted == {"mean_radius"}
    # the prediction output: a categorical class column, captured unchanged
    out = fe["diagnosis"]
    assert out.role == "output" and out.tvd == pytest.approx(0.0) and not out.violations
    labels = baseline.prediction("diagnosis").categories
    assert out.counts.tolist() == [sum(category_key(p) == c for p in preds) for c in labels] + [0]


def test_undrifted_capture_has_no_violations(tmp_path, penguins_rows):
    baseline = Baseline.fit_csv(PENGUINS_CSV, model="penguins", progress=False)
    d = capture_rows(tmp_path, penguins_rows, "penguins")
    report = build_report(baseline, str(d), train=PENGUINS_CSV)
    assert report.violations == []
    for f in report.features:
        if f.kind == "numeric":
            assert f.ks == 0.0 and f.psi == pytest.approx(0.0)
        else:
            assert f.tvd == pytest.approx(0.0) and f.unseen_rate == 0.0
        assert f.completeness == pytest.approx(f.baseline_completeness)


def test_every_violation_type_on_penguins(tmp_path, penguins_rows):
    baseline = Baseline.fit_csv(PENGUINS_CSV, model="penguins", progress=False)
    rng = np.random.default_rng(5)
    rows = []
    for i, r in enumerate(penguins_rows):
        row = dict(r)
        del row["bill_depth_mm"]  # missing_column_check
        row["debug_flag"] = True  # extra_column_check
        if i % 5 == 0:
            row["body_mass_g"] = "heavy"  # data_type_check: 20% strings
        if i % 3 == 0:
            row["flipper_length_mm"] = None  # completeness_check: 33% null
        if rng.random() < 0.3:
            row["island"] = "Atlantis"  # categorical_values_check
        if i % 10 == 0:
            row["year"] = 2024.0  # range_check (10% beyond the training max)
        if row["bill_length_mm"] is not None:
            row["bill_length_mm"] += 6.0  # baseline_drift_check
        rows.append(row)
    d = capture_rows(tmp_path, rows, "penguins")
    report = build_report(baseline, str(d), thresholds=SMALL)
    got = checks(report)
    assert got >= {("bill_depth_mm", "missing_column_check"),
                   ("debug_flag", "extra_column_check"),
                   ("body_mass_g", "data_type_check"),
                   ("flipper_length_mm", "completeness_check"),
                   ("island", "categorical_values_check"),
                   ("year", "range_check"),
                   ("bill_length_mm", "baseline_drift_check")}
    assert {c for _, c in got} == set(report_mod.CHECKS)
    f = by_name(report)
    # independent rates
    n = len(rows)
    assert f["body_mass_g"].wrong_type == sum(r["body_mass_g"] == "heavy" for r in rows)
    assert f["flipper_length_mm"].missing_rate == pytest.approx(
        sum(r["flipper_length_mm"] is None for r in rows) / n)
    atl = sum(r["island"] == "Atlantis" for r in rows)
    assert f["island"].unseen_rate == pytest.approx(atl / n)
    assert f["island"].unseen == {"Atlantis": atl}
    base = np.array(baseline.feature("island").counts, dtype=float)
    live = np.array([sum(r["island"] == c for r in rows)
                     for c in baseline.feature("island").categories] + [atl], dtype=float)
    assert f["island"].tvd == pytest.approx(0.5 * np.abs(live / live.sum() - base / base.sum()).sum())
    assert f["island"].psi == pytest.approx(ref_psi(live, base))
    sex_missing = sum(r["sex"] is None for r in rows) / n
    assert f["sex"].missing_rate == pytest.approx(sex_missing)
    # thresholds are configurable: loosened, the same data passes the data type check
    loose = build_report(baseline, str(d), thresholds=Thresholds(datatype=0.5))
    assert ("body_mass_g", "data_type_check") not in checks(loose)


def test_nonfinite_other_models_malformed_and_truncated(tmp_path):
    baseline = Baseline.fit({"x": [float(i) for i in range(50)], "c": ["a", "b"] * 25},
                            model="m", bins=5)
    with DataCapture(tmp_path, registry=None) as cap:
        cap.record({"x": float("nan"), "c": float("nan")}, model="m")
        cap.record({"x": float("inf"), "c": "a"}, model="m")
        cap.record({"x": "NaN", "c": "Infinity"}, model="m")  # as written for non-finite floats
        cap.record({"x": [1], "c": {"k": 1}}, model="m")
        cap.record({"x": 1.0, "c": 3}, model="m")
        cap.record({"x": 2.0, "c": "a"}, model="other")
        cap.record("not a row", model="m")
    name = sorted(os.listdir(tmp_path))[0]
    with open(tmp_path / name, "ab") as f:
        f.write(b'{"model":"m","features":{"x":')
    r = build_report(baseline, str(tmp_path))
    x, c = by_name(r)["x"], by_name(r)["c"]
    assert (r.rows, r.malformed, r.other_models, r.truncated) == (5, 1, {"other": 1}, 1)
    assert (x.nan, x.inf, x.wrong_type, x.valid) == (2, 1, 1, 1)
    assert (c.nan, c.inf, c.wrong_type, c.valid) == (1, 1, 1, 2)
    assert c.unseen == {"3": 1}


def test_html_page_is_self_contained_sorted_and_escaped(tmp_path):
    evil = '<script>alert("x")</script>&'
    train = {evil: [float(i) for i in range(300)], "calm": [float(i % 7) for i in range(300)]}
    baseline = Baseline.fit(train, model="m<1>", bins=10)
    rows = [{evil: float(i) + 200.0, "calm": float(i % 7)} for i in range(300)]
    d = capture_rows(tmp_path / "cap", rows, "m<1>")
    page = render_html(build_report(baseline, str(d)))
    assert "<script>" not in page and "&lt;script&gt;" in page and "m&lt;1&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert page.count("<svg") == 2

    class Check(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.rows = [], []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "line", "rect", "br"):
                self.stack.append(tag)

        def handle_endtag(self, tag):
            if tag in ("line", "rect", "meta"):
                return
            assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
            self.stack.pop()

    parser = Check()
    parser.feed(page)
    # the summary lists the drifted feature before the calm one
    summary = page[page.index("Summary, worst first"):page.index("<h2>Distributions")]
    assert summary.index("&lt;script&gt;") < summary.index(">calm<")


def test_progress_line_for_large_directories(tmp_path, penguins_rows):
    baseline = Baseline.fit_csv(PENGUINS_CSV, model="penguins", progress=False)
    d = capture_rows(tmp_path, penguins_rows * 40, "penguins")
    out = io.StringIO()
    build_report(baseline, str(d), progress=lambda total: Progress(
        "reading capture", total, stream=out, interval=0.0))
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("reading capture [") for line in lines)
    assert "100.0%" in lines[-1]


def test_cli_end_to_end(tmp_path, penguins_rows, capsys):
    b = tmp_path / "b.json"
    assert main(["baseline", PENGUINS_CSV, "-o", str(b), "--model", "penguins", "-q"]) == 0
    rows = [dict(r, bill_length_mm=None if r["bill_length_mm"] is None
                 else r["bill_length_mm"] * 1.2) for r in penguins_rows]
    capture_rows(tmp_path / "cap", rows, "penguins")
    html_path, viol = tmp_path / "out" / "report.html", tmp_path / "out" / "violations.json"
    html_path.parent.mkdir()
    assert main(["report", "--baseline", str(b), str(tmp_path / "cap"), "-o",
                 str(html_path), "--train", PENGUINS_CSV, "--min-samples", "200"]) == 0
    assert "violations" in capsys.readouterr().err
    data = json.loads(viol.read_text())
    assert set(data) == {"violations"}
    for v in data["violations"]:
        assert set(v) >= {"feature_name", "constraint_check_type", "description"}
    assert ("bill_length_mm", "baseline_drift_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in data["violations"]}
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "bill_length_mm" in page
    assert "exact two-sample" in page
    custom = tmp_path / "v2.json"
    assert main(["report", "--baseline", str(b), str(tmp_path / "cap"), "-o",
                 str(html_path), "--violations", str(custom), "--fail-on-violations",
                 "--drift-threshold", "0.05", "-q"]) == 1
    assert json.loads(custom.read_text())["violations"]
    assert main(["report", "--baseline", str(b), str(tmp_path / "nope"), "-o",
                 str(html_path), "-q"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", "--baseline", str(b), str(tmp_path / "cap"), "-o",
                 str(html_path), "--drift-threshold", "-1", "-q"]) == 2
    assert "drift must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [{"drift": -0.1}, {"datatype": float("nan")},
                                 {"min_samples": True}, {"domain": "0.1"}])
def test_bad_thresholds(bad):
    with pytest.raises(report_mod.ReportError):
        Thresholds(**bad)


def test_categorical_drift_check_discounts_sampling_noise(tmp_path):
    """50 even categories, 300 undrifted captured rows: the raw TVD (about 0.16) is above the
    0.1 threshold by sampling noise alone, so no violation; half the rows moved to one
    category is a violation. The no-drift value is binning.tvd_noise, as in the alerts."""
    rng = np.random.default_rng(5)
    cats = [f"k{i:02d}" for i in range(50)]
    baseline = Baseline.fit({"c": [cats[i % 50] for i in range(10000)]}, model="many")
    th = Thresholds(min_samples=200)
    calm = [{"c": cats[int(i)]} for i in rng.integers(0, 50, size=300)]
    capture_rows(str(tmp_path / "calm"), calm, "many")
    r = build_report(baseline, str(tmp_path / "calm"), thresholds=th)
    f = r.features[0]
    shares = np.bincount([cats.index(x["c"]) for x in calm], minlength=51) / 300
    raw = 0.5 * np.abs(shares - np.append(np.full(50, 0.02), 0.0)).sum()
    assert f.tvd == pytest.approx(raw) and raw > 0.1
    assert ("c", "baseline_drift_check") not in {(v.feature_name, v.check) for v in r.violations}
    moved = [{"c": "k00"} if i % 2 else row for i, row in enumerate(calm)]
    capture_rows(str(tmp_path / "moved"), moved, "many")
    r = build_report(baseline, str(tmp_path / "moved"), thresholds=th)
    assert ("c", "baseline_drift_check") in {(v.feature_name, v.check) for v in r.violations}


# ------------------------------------------------------------------------ time windows
def _capture_file(directory, stamp, times, name=None, mtime=None):
    """A capture file as DataCapture names it (opened at ``stamp``), one row per time
    (``None``: a row without a time); x is the row's position."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name or f"capture-{stamp}-host-1-{len(os.listdir(directory))}.jsonl")
    with open(path, "w") as f:
        for i, t in enumerate(times):
            rec = {"model": "w", "features": {"x": float(i)}}
            if t is not None:
                rec["time"] = t
            f.write(json.dumps(rec) + "\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _window(directory, since=None, until=None):
    b = Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0]}, model="w", bins=2)
    r = report_mod.build_report(
        b, str(directory), since=since and report_mod.utc_time(since),
        until=until and report_mod.utc_time(until))
    return r.rows, r.outside_window, r.untimed


def test_a_window_includes_since_and_excludes_until(tmp_path):
    d = tmp_path / "cap"
    _capture_file(d, "20261122T000000000000Z", [
        "2026-11-22T00:59:59.999Z", "2026-11-22T01:00:00.000Z", "2026-11-22T01:30:00.000Z",
        "2026-11-22T01:59:59.999Z", "2026-11-22T02:00:00.000Z"])
    assert _window(d) == (5, 0, 0)
    assert _window(d, "2026-11-22T01:00:00Z", "2026-11-22T02:00:00Z") == (3, 2, 0)
    # The same instants with offsets, and without seconds.
    assert _window(d, "2026-11-22T02:00:00+01:00", "2026-11-21T21:00-05:00") == (3, 2, 0)
    assert _window(d, "2026-11-22T01:00:00.001Z") == (3, 2, 0)
    assert _window(d, until="2026-11-22T01:00:00.001Z") == (2, 3, 0)
    # Consecutive windows count every row once.
    cuts = ["2026-11-22T00:00Z", "2026-11-22T01:00Z", "2026-11-22T01:59:59.999Z",
            "2026-11-22T03:00Z"]
    assert sum(_window(d, a, b)[0] for a, b in zip(cuts, cuts[1:])) == 5
    r = report_mod.build_report(Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0]}, model="w", bins=2),
                                str(d), since=report_mod.utc_time("2026-11-22T01:00Z"))
    assert (r.first_time, r.last_time) == ("2026-11-22T01:00:00.000Z", "2026-11-22T02:00:00.000Z")
    assert r.window == "from 2026-11-22T01:00:00Z (inclusive) to the last row"
    assert "Time window: from 2026-11-22T01:00:00Z (inclusive) to the last row; 1 rows of " \
           "the model outside it skipped." in report_mod.render_html(r)


def test_rows_without_a_time_have_their_files_time(tmp_path):
    d = tmp_path / "cap"
    _capture_file(d, "20261122T013000000000Z", [None, None])  # opened 01:30
    _capture_file(d, "20261122T030000000000Z", [None])  # opened 03:00
    _capture_file(d, "", [None], name="hand-made.jsonl")  # no time at all
    assert _window(d) == (4, 0, 0)  # no window: every row
    assert _window(d, "2026-11-22T01:30Z", "2026-11-22T03:00Z") == (2, 1, 1)


def test_files_last_written_before_since_are_not_read(tmp_path):
    """A row is written after it was recorded, so a file last modified before --since holds
    no row of the window; a file opened before --since (its name) is still read."""
    d = tmp_path / "cap"
    since = report_mod.utc_time("2026-11-22T01:00Z")
    _capture_file(d, "20261122T000000000000Z", ["2026-11-22T00:10:00Z"],
                  mtime=since.timestamp() - 1)
    _capture_file(d, "20261122T005959000000Z", ["2026-11-22T00:59:59Z", "2026-11-22T01:00:01Z"],
                  mtime=since.timestamp() + 2)
    b = Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0]}, model="w", bins=2)
    r = report_mod.build_report(b, str(d), since=since)
    assert (r.files, r.rows, r.outside_window) == (1, 1, 1)
    assert report_mod.build_report(b, str(d)).files == 2


def test_window_on_rows_a_data_capture_wrote(tmp_path):
    import datetime as dt
    d = str(tmp_path / "cap")
    before = dt.datetime.now(dt.timezone.utc)
    capture_rows(d, [{"x": float(i % 4)} for i in range(50)], "w")
    after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(milliseconds=1)
    iso = lambda t: t.isoformat()
    assert _window(d, iso(before - dt.timedelta(milliseconds=1)), iso(after)) == (50, 0, 0)
    assert _window(d, iso(after)) == (0, 0, 0)  # every file last written before: not read
    assert _window(d, until=iso(before - dt.timedelta(seconds=1))) == (0, 50, 0)


@pytest.mark.parametrize("args, message", [
    (["--since", "2026-11-22T01:00:00"],
     "--since '2026-11-22T01:00:00' has no time zone: capture times are UTC, so write "
     "2026-11-22T01:00:00Z for UTC, or give the offset of your zone (2026-11-22T01:00:00+02:00)"),
    (["--until", "2026-11-22"],
     "--until '2026-11-22' has no time zone: capture times are UTC, so write "
     "2026-11-22T00:00:00Z for UTC, or give the offset of your zone (2026-11-22T00:00:00+02:00)"),
    (["--since", "yesterday"],
     "--since 'yesterday' is not an ISO 8601 time such as 2026-11-22T01:50:05Z or "
     "2026-11-22T02:50:05+01:00"),
    (["--since", "2026-11-22T02:00Z", "--until", "2026-11-22T03:00+01:00"],
     "since (2026-11-22T02:00:00+00:00) must be before until (2026-11-22T02:00:00+00:00)"),
])
def test_cli_window_errors(tmp_path, capsys, args, message):
    b = tmp_path / "b.json"
    Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0]}, model="w", bins=2).save(str(b))
    (tmp_path / "cap").mkdir()
    assert main(["report", "--baseline", str(b), str(tmp_path / "cap"), "-o",
                 str(tmp_path / "r.html"), *args]) == 2
    assert capsys.readouterr().err == f"promdrift: error: {message}\n"
    assert not (tmp_path / "r.html").exists()


def test_cli_window(tmp_path, capsys):
    d = tmp_path / "cap"
    _capture_file(d, "20261122T000000000000Z", [
        "2026-11-22T00:30:00Z", "2026-11-22T01:00:00Z", "2026-11-22T02:00:00Z"])
    b = tmp_path / "b.json"
    Baseline.fit({"x": [0.0, 1.0, 2.0, 3.0]}, model="w", bins=2).save(str(b))
    assert main(["report", "--baseline", str(b), str(d), "-o", str(tmp_path / "r.html"),
                 "--since", "2026-11-22T01:00Z", "--until", "2026-11-22T02:00Z"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(
        "1 captured rows of model 'w' from 1 files from 2026-11-22T01:00:00Z (inclusive) to "
        "2026-11-22T02:00:00Z (exclusive) (2 rows outside skipped); ")
