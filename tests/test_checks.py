"""What Baseline.fit and `promdrift baseline` refuse or warn about
(instrumentation/training/checks.py), on the command line and in Python: every message names
the column and the fix."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from promdrift.exporter.cli import main
from promdrift.instrumentation import Baseline, BaselineError, BaselineWarning, DriftMonitor
from promdrift.instrumentation.training.checks import CLASS_LIKE_MAX

from conftest import DIGITS_CSV, PENGUINS_CSV, read_rows

UNNAMED = ("column 'Unnamed: 0' has no name: an empty CSV header, as pandas' df.to_csv(path) "
           "writes for the index (pandas reads it back as 'Unnamed: 0'); it would be fitted "
           "as a feature that live rows never send. Write the CSV with df.to_csv(path, "
           "index=False) (or read it with pd.read_csv(path, index_col=0)), or skip the "
           "column: --ignore 'Unnamed: 0' (ignore=['Unnamed: 0'])")


def _write(path, header, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _penguins(path, index=True, delimiter=","):
    """penguins.csv as pandas' ``df.to_csv(path)`` writes it: its index first, under an
    empty header (``index=False`` leaves it out)."""
    pd.read_csv(PENGUINS_CSV).to_csv(path, index=index, sep=delimiter)
    return str(path)


def _cli(capsys, *args):
    code = main(["baseline", *args])
    return code, capsys.readouterr().err


# ------------------------------------------------------------------- unnamed columns
def test_a_pandas_index_column_is_refused_on_the_command_line(tmp_path, capsys):
    path = _penguins(tmp_path / "train.csv")
    out = tmp_path / "b.json"
    code, err = _cli(capsys, path, "-o", str(out), "--model", "penguins")
    assert code == 2 and not out.exists()
    assert err == f"promdrift: error: {UNNAMED}\n"
    # The fix the message gives works, and gives the baseline of the file without the index.
    code, err = _cli(capsys, path, "-o", str(out), "--model", "penguins", "-q",
                     "--ignore", "Unnamed: 0")
    assert code == 0 and err == ""
    plain = Baseline.fit_csv(_penguins(tmp_path / "plain.csv", index=False), model="penguins")
    assert Baseline.load(str(out)).digest == plain.digest


def test_a_pandas_index_column_is_refused_in_python(tmp_path):
    path = _penguins(tmp_path / "train.csv")
    with pytest.raises(BaselineError) as info:
        Baseline.fit(pd.read_csv(path), model="penguins")
    assert str(info.value) == UNNAMED
    plain = Baseline.fit_csv(_penguins(tmp_path / "plain.csv", index=False), model="penguins")
    for fixed in (Baseline.fit(pd.read_csv(path, index_col=0), model="penguins"),
                  Baseline.fit(pd.read_csv(path), model="penguins", ignore=["Unnamed: 0"])):
        assert fixed.digest == plain.digest


@pytest.mark.parametrize("name", ["Unnamed: 0", "Unnamed: 3", "", " "])
def test_an_unnamed_column_is_refused_in_python(name):
    data = {name: np.arange(4.0), "x": [1.0, 2.0, 3.0, 4.0]}
    for given in (data, pd.DataFrame(data)):
        with pytest.raises(BaselineError) as info:
            Baseline.fit(given)
        assert str(info.value).startswith(f"column {name!r} has no name: an empty CSV header")
        assert str(info.value).endswith(f"skip the column: --ignore {_quoted(name)} "
                                        f"(ignore=[{name!r}])")
        assert Baseline.fit(given, ignore=[name]).feature_names == ["x"]


def _quoted(name):
    import shlex
    return shlex.quote(name)


def test_an_unnamed_prediction_is_refused_too():
    with pytest.raises(BaselineError, match="column 'Unnamed: 0' has no name"):
        Baseline.fit({"x": [1.0, 2.0]}, predictions={"Unnamed: 0": [0.5, 0.7]})


# --------------------------------------------------------------- class-like outputs
def test_integer_classes_warn_on_the_command_line(tmp_path, capsys):
    """digits.csv: ``target`` holds the classes 0..9, as scikit-learn's ``load_digits``."""
    out = str(tmp_path / "b.json")
    code, err = _cli(capsys, DIGITS_CSV, "-o", out, "--model", "digits", "-q",
                     "--prediction", "target")
    assert code == 0
    assert err == (
        "promdrift: warning: prediction output 'target' holds only the integers 0, 1, 2, 3, "
        "4, 5, 6, 7, 8, 9 (10 distinct values), so it is fitted as a numeric output: a "
        "histogram of values, KS and PromdriftPredictionDrift. If these are class labels (a "
        "classifier's predict()), fit it as categorical for class shares and "
        "PromdriftPredictionClassDrift: --categorical target (categorical=['target']); to "
        "keep it numeric and silence this warning: --numeric target (numeric=['target'])\n")
    assert Baseline.load(out).prediction("target").kind == "numeric"
    for choice, kind in (("--categorical", "categorical"), ("--numeric", "numeric")):
        code, err = _cli(capsys, DIGITS_CSV, "-o", out, "--model", "digits", "-q",
                         "--prediction", "target", choice, "target")
        assert code == 0 and err == ""
        assert Baseline.load(out).prediction("target").kind == kind
        if kind == "categorical":
            assert sorted(Baseline.load(out).prediction("target").categories) == list(
                "0123456789")


def test_integer_classes_warn_in_python():
    """scikit-learn's digits data (tests/data/digits.csv): ``target`` holds the classes
    0 to 9, as a classifier's ``predict()`` returns them."""
    digits = pd.read_csv(DIGITS_CSV)
    with pytest.warns(BaselineWarning) as caught:
        b = Baseline.fit(digits, model="digits", predictions="target")
    assert [str(w.message) for w in caught] == [
        "prediction output 'target' holds only the integers 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (10 "
        "distinct values), so it is fitted as a numeric output: a histogram of values, KS and "
        "PromdriftPredictionDrift. If these are class labels (a classifier's predict()), fit "
        "it as categorical for class shares and PromdriftPredictionClassDrift: --categorical "
        "target (categorical=['target']); to keep it numeric and silence this warning: "
        "--numeric target (numeric=['target'])"]
    assert b.prediction("target").kind == "numeric"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = Baseline.fit(digits, model="digits", predictions="target", categorical="target")
        assert sorted(b.prediction("target").categories) == [str(d) for d in range(10)]
    few = digits[digits["target"] < 3]
    x = few["pixel_3_3"].to_numpy(dtype=float)
    classes = few["target"].to_numpy()
    with pytest.warns(BaselineWarning, match=r"^prediction output 'prediction' holds only "
                                             r"the integers 0, 1, 2 \(3 distinct values\)"):
        b = Baseline.fit({"x": x}, predictions=classes)
    assert b.prediction("prediction").kind == "numeric"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(Baseline.fit({"x": x}, predictions={"species": classes},
                                   categorical="species").prediction("species").categories
                      ) == ["0", "1", "2"]
        assert Baseline.fit({"x": x}, predictions={"species": classes}, numeric="species"
                            ).prediction("species").kind == "numeric"
        # Not class-like: more distinct integers than CLASS_LIKE_MAX, or fractions; features.
        Baseline.fit({"x": x}, predictions=np.arange(len(x)) % (CLASS_LIKE_MAX + 1))
        Baseline.fit({"x": x}, predictions=classes + 0.5)
        Baseline.fit({"x": x, "k": classes})
    with pytest.raises(BaselineError, match=r"\['y'\] listed as both categorical and numeric"):
        Baseline.fit({"x": x, "y": classes}, categorical="y", numeric="y")
    with pytest.raises(BaselineError, match="column 'c' is listed as numeric but holds "
                                            "values that are not numbers \\(such as 'a'\\)"):
        Baseline.fit({"x": x[:2], "c": ["a", "b"]}, numeric="c")
    b = Baseline.fit({"x": x[:3], "flag": np.array([True, False, True])}, numeric="flag")
    assert b.feature("flag").kind == "numeric" and b.feature("flag").mean == 2 / 3


@pytest.mark.parametrize("fit", ["python ints", "numpy ints", "csv"])
def test_class_keys_are_the_same_at_fit_and_serve_whatever_the_json_type(fit, tmp_path):
    """scikit-learn's integer classes 0 / 1 / 2 fitted as a categorical output: a client's 2,
    2.0, "2" (JSON) and numpy's int64(2) are class "2"; "2.0" is a category of its own."""
    classes = [0, 1, 2, 2, 1, 0, 2]
    x = [float(i) for i in range(len(classes))]
    if fit == "csv":
        path = _write(tmp_path / "t.csv", ["x", "species"], zip(x, classes))
        b = Baseline.fit_csv(path, model="wine", predictions="species", categorical="species")
    else:
        species = classes if fit == "python ints" else np.array(classes, dtype=np.int64)
        b = Baseline.fit({"x": x, "species": species}, model="wine", predictions="species",
                         categorical="species")
    assert b.prediction("species").categories == ("2", "0", "1")
    m = DriftMonitor(b, registry=None)
    sent = [json.loads(t) for t in ("2", "2.0", '"2"', "2e0")] + [np.int64(2), np.float32(2)]
    for value in sent:
        m.observe({"x": 1.0}, value)
    m.observe([{"x": 1.0}] * 2, [2, "2"])  # the batch path alike
    m.observe({"x": 1.0}, {"species": 2})
    m.observe({"x": 1.0}, json.loads('"2.0"'))  # a string is a name: not class "2"
    m.observe({"x": 1.0}, {"species": json.loads("null")})  # a client's NaN: null, invalid
    count = lambda c: m.sample("promdrift_prediction_class_total", output="species", **{
        "class": c})
    assert count("2") == len(sent) + 3
    assert count("__other__") == 1
    assert count("0") == count("1") == 0
    assert m.sample("promdrift_prediction_invalid_total", output="species", reason="null") == 1


# ------------------------------------------------------------------ unsupported types
@pytest.mark.parametrize("values, message", [
    (np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]"),
     "holds datetimes (numpy datetime64[ns]): derive numbers from it (an age in days, an "
     "hour of day) and fit those; or skip the column: --ignore when (ignore=['when'])"),
    (np.array([1, 2], dtype="timedelta64[s]"),
     "holds time differences (timedelta) (numpy timedelta64[s]): convert it to a number of "
     "seconds or days; or skip"),
    (np.array([b"a", b"b"]), "holds bytes (numpy |S1): decode it to text; or skip"),
    (np.array([None, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)], dtype=object),
     "holds datetimes (row 1: datetime.datetime(2024, 1, 1, 0, 0, tzi…): derive numbers"),
    (np.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], dtype=object),
     "holds dates (row 0: datetime.date(2024, 1, 1)): derive numbers"),
    (np.array([dt.timedelta(1), None], dtype=object),
     "holds time differences (timedelta) (row 0: datetime.timedelta(days=1)): convert it"),
    (np.array(["a", b"b"], dtype=object), "holds bytes (row 1: b'b'): decode it to text"),
    (np.array([[1, 2], [3]], dtype=object),
     "holds lists (row 0: [1, 2]): flatten it into columns of numbers or text; or skip"),
    (np.array([{"a": 1}, None], dtype=object),
     "holds dicts (nested objects) (row 0: {'a': 1}): flatten it"),
    (np.array([1.5, 2.5], dtype=np.complex128), "holds complex numbers (numpy complex128)"),
])
def test_unsupported_values_are_named(values, message):
    with pytest.raises(BaselineError) as info:
        Baseline.fit({"x": [1.0, 2.0], "when": values})
    assert str(info.value).startswith(f"column 'when' {message}")


@pytest.mark.parametrize("values, message", [
    (pd.to_datetime(["2024-01-01", "2024-01-02"]), "holds datetimes (numpy datetime64[us])"),
    (pd.to_datetime(["2024-01-01", "2024-01-02"]).tz_localize("UTC"),
     "holds datetimes (row 0: Timestamp('2024-01-01 00:00:00+0000', t…): derive numbers"),
    (pd.to_timedelta([1, 2], unit="s"), "holds time differences (timedelta) (numpy "
                                        "timedelta64[us]): convert it to a number of seconds"),
    (pd.Series([[1], [2, 3]]), "holds lists (row 0: [1]): flatten it"),
])
def test_unsupported_pandas_columns_are_named(values, message):
    with pytest.raises(BaselineError) as info:
        Baseline.fit(pd.DataFrame({"x": [1.0, 2.0], "when": values}))
    assert str(info.value).startswith(f"column 'when' {message}")


def test_pandas_missing_values_are_missing():
    """Nullable pandas columns (Int64, string) give ``pd.NA`` for their missing entries."""
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"),
                          "s": pd.array(["a", None, "b"], dtype="string")})
    b = Baseline.fit(frame, bins=2)
    assert [(c.name, c.kind, c.count, c.invalid) for c in b.features] == [
        ("n", "numeric", 2, 1), ("s", "categorical", 2, 1)]


# ------------------------------------------------------------------- duplicate names
def test_duplicate_names_are_named(tmp_path, capsys):
    frame = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["a", "b", "a"])
    with pytest.raises(BaselineError) as info:
        Baseline.fit(frame)
    assert str(info.value) == ("duplicate column names ['a']: each name must be one column; "
                               "rename or drop the copies")
    with pytest.raises(BaselineError, match=r"^duplicate column names \['1'\]"):
        Baseline.fit({1: [1.0], "1": [2.0]})
    with pytest.raises(BaselineError, match=r"^duplicate column names \['x'\]"):
        Baseline.fit(np.zeros((2, 2)), names=["x", "x"])
    path = _write(tmp_path / "d.csv", ["x", "y", "x"], [[1, 2, 3]])
    code, err = _cli(capsys, path, "-o", str(tmp_path / "b.json"), "--model", "m")
    assert code == 2
    assert err == (f"promdrift: error: {path}: duplicate column names ['x']: each name must be "
                   f"one column; rename or drop the copies\n")


# ------------------------------------------------------------------------- delimiters
@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_delimiter_is_detected_or_given(tmp_path, capsys, delimiter):
    comma = Baseline.fit_csv(_penguins(tmp_path / "c.csv", index=False), model="penguins")
    path = _penguins(tmp_path / "other.csv", index=False, delimiter=delimiter)
    out = str(tmp_path / "b.json")
    code, err = _cli(capsys, path, "-o", out, "--model", "penguins", "-q")
    assert code == 0
    assert err == (f"promdrift: reading other.csv with delimiter {delimiter!r} (detected; "
                   f"--delimiter to choose)\n")
    assert Baseline.load(out).digest == comma.digest
    given = "\\t" if delimiter == "\t" else delimiter
    code, err = _cli(capsys, path, "-o", out, "--model", "penguins", "-q", "--delimiter", given)
    assert code == 0 and err == ""
    assert Baseline.load(out).digest == comma.digest
    assert Baseline.fit_csv(path, model="penguins", delimiter=delimiter).digest == comma.digest
    # The wrong delimiter, given: one column named after the whole header line.
    wrong = Baseline.fit_csv(path, model="penguins", delimiter=",")
    assert len(wrong.features) == 1


def test_a_bad_delimiter_is_refused(tmp_path, capsys):
    path = _penguins(tmp_path / "c.csv", index=False)
    code, err = _cli(capsys, path, "-o", str(tmp_path / "b.json"), "--model", "m",
                     "--delimiter", ";;")
    assert code == 2
    assert err == ("promdrift: error: the delimiter must be one character (not a quote or a "
                   "line break), got ';;'\n")


# ------------------------------------------------------------------------ empty columns
def test_an_all_nan_column_is_refused_with_the_fix(tmp_path, capsys):
    rows = read_rows(PENGUINS_CSV)
    data = {k: [r[k] for r in rows] for k in rows[0]}
    data["empty"] = [None] * len(rows)
    with pytest.raises(BaselineError) as info:
        Baseline.fit(data)
    assert str(info.value) == (
        f"column 'empty' has no valid values (all {len(rows)} rows are missing, NaN or "
        f"infinite), so live values would have nothing to be compared with: fill it, or "
        f"skip the column: --ignore empty (ignore=['empty'])")
    assert "empty" not in Baseline.fit(data, ignore="empty").feature_names
    # On the command line, with every problem of the file in one message.
    path = _write(tmp_path / "t.csv", ["", "x", "gone", "when"],
                  [[i, i * 1.5, "NA", "2024-01-01"] for i in range(5)])
    code, err = _cli(capsys, path, "-o", str(tmp_path / "b.json"), "--model", "m")
    assert code == 2
    assert err == (
        "promdrift: error: 2 columns cannot be fitted:\n"
        f"- {UNNAMED}\n"
        "- column 'gone' has no valid values (all 5 rows are missing, NaN or infinite), so "
        "live values would have nothing to be compared with: fill it, or skip the column: "
        "--ignore gone (ignore=['gone'])\n"
        "To skip all of them: --ignore 'Unnamed: 0,gone' (ignore=['Unnamed: 0', 'gone'])\n")
    code, err = _cli(capsys, path, "-o", str(tmp_path / "b.json"), "--model", "m", "-q",
                     "--ignore", "Unnamed: 0,gone")
    assert code == 0
    assert err == (
        "promdrift: warning: column 'when' holds dates or times as text (such as "
        "'2024-01-01'), fitted as a categorical column: every value after the training "
        "period will count as an unseen category (__other__). Derive numbers from it (an age "
        "in days, an hour of day) and fit those, or skip it: --ignore when (ignore=['when']); "
        "to keep it categorical and silence this warning: --categorical when "
        "(categorical=['when'])\n")
    assert os.path.exists(tmp_path / "b.json")
