"""Baseline.fit errors, file errors, save / load."""

import dataclasses
import json
import os

import numpy as np
import pytest

from promdrift.instrumentation import SCHEMA_VERSION, Baseline, BaselineError

DATA = {"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "c"], "y": [0, 1, 1, 0]}


@pytest.mark.parametrize("data, kwargs, message", [
    ({}, {}, "no training rows"),
    ({"x": []}, {}, "no training rows"),
    ([], {}, ""),
    ({"x": [float("nan")] * 3, "z": [1.0, 2.0, 3.0]}, {}, "no valid values"),
    ({"x": [None, None]}, {}, "no valid values"),
    (DATA, {"categorical": ["nope"]}, "categorical: unknown column"),
    (DATA, {"ignore": "x,nope"}, "ignore: unknown column"),
    (DATA, {"predictions": ["nope"]}, "predictions: unknown column"),
    (DATA, {"bins": 1}, "bins must be an integer >= 2"),
    (DATA, {"bins": 0}, "bins must be an integer >= 2"),
    (DATA, {"bins": True}, "bins must be an integer >= 2"),
    (DATA, {"top_k": 0}, "top_k must be an integer >= 1"),
    (DATA, {"model": ""}, "model must be a non-empty string"),
    (DATA, {"ignore": ["x", "c", "y"]}, "no feature columns left"),
])
def test_fit_errors(data, kwargs, message):
    with pytest.raises(BaselineError) as info:
        Baseline.fit(data, **kwargs)
    assert message in str(info.value)


def test_unknown_column_message_lists_the_known_columns():
    with pytest.raises(BaselineError, match=r"unknown column\(s\) \['nope'\]") as info:
        Baseline.fit(DATA, categorical="nope")
    for name in DATA:
        assert repr(name) in str(info.value)


def test_all_nan_column_message_names_the_column():
    with pytest.raises(BaselineError, match="'empty'"):
        Baseline.fit({"ok": [1.0, 2.0], "empty": [np.nan, np.nan]})


def test_fit_splits_features_and_predictions():
    b = Baseline.fit(DATA, model="m", predictions="y", categorical="y", bins=2)
    assert b.feature_names == ["x", "c"]
    assert b.prediction_names == ["y"]
    assert b.feature("c").kind == "categorical" and b.feature("x").kind == "numeric"
    assert b.prediction("y").categories == ("0", "1")
    assert b.rows == 4
    with pytest.raises(KeyError, match="features"):
        b.feature("nope")


def test_top_k_and_other():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]
    col = Baseline.fit({"c": values}, top_k=2).feature("c")
    assert col.categories == ("a", "b")
    assert col.counts == (5, 3, 3)
    assert col.distinct == 4


@pytest.fixture
def saved(tmp_path, penguins_baseline):
    path = tmp_path / "baseline.json"
    penguins_baseline.save(str(path))
    return path


def test_save_load_round_trip(saved, penguins_baseline, breast_cancer_baseline, tmp_path):
    loaded = Baseline.load(str(saved))
    assert loaded == penguins_baseline
    assert loaded.to_dict() == penguins_baseline.to_dict()
    assert loaded.digest == penguins_baseline.digest
    assert loaded.metadata == penguins_baseline.metadata
    other = tmp_path / "bc.json"
    breast_cancer_baseline.save(str(other))
    assert Baseline.load(str(other)) == breast_cancer_baseline
    # Saving over an existing file replaces it.
    breast_cancer_baseline.save(str(saved))
    assert Baseline.load(str(saved)) == breast_cancer_baseline


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, penguins_baseline):
    path = tmp_path / "b.json"
    for _ in range(3):
        penguins_baseline.save(str(path))
    assert sorted(os.listdir(tmp_path)) == ["b.json"]
    json.loads(path.read_text())  # complete, valid JSON


def test_failed_save_leaves_no_temporary_files(tmp_path):
    b = Baseline.fit({"x": [1.0, 2.0, 3.0]}, bins=2)
    bad = dataclasses.replace(b, metadata={"not json": object()})
    with pytest.raises(TypeError):
        bad.save(str(tmp_path / "b.json"))
    assert os.listdir(tmp_path) == []


def test_digest_ignores_created(penguins_baseline):
    later = dataclasses.replace(penguins_baseline, created="2030-01-01T00:00:00Z")
    assert later.digest == penguins_baseline.digest
    assert len(penguins_baseline.digest) == 12
    int(penguins_baseline.digest, 16)


def test_load_not_json(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("model: not json\n")
    with pytest.raises(BaselineError, match="not valid JSON"):
        Baseline.load(str(path))


def test_load_missing_file(tmp_path):
    with pytest.raises(BaselineError, match="cannot read baseline"):
        Baseline.load(str(tmp_path / "absent.json"))


def test_load_json_of_another_kind(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"kind": "grafana-dashboard", "panels": []}))
    with pytest.raises(BaselineError, match="not a promdrift baseline"):
        Baseline.load(str(path))
    path.write_text("[1, 2, 3]")
    with pytest.raises(BaselineError, match="not a promdrift baseline"):
        Baseline.load(str(path))


def test_load_future_schema_version(saved):
    d = json.loads(saved.read_text())
    d["schema_version"] = SCHEMA_VERSION + 1
    saved.write_text(json.dumps(d))
    with pytest.raises(BaselineError, match="newer than this promdrift reads") as info:
        Baseline.load(str(saved))
    assert "upgrade promdrift" in str(info.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("schema_version"), "missing or invalid schema_version"),
    (lambda d: d.update(features=[]), "no features"),
    (lambda d: d["features"][2].update(counts=[1]), "counts for"),
    (lambda d: d["features"][2].update(edges=[3.0, 2.0] + [9.0] * 17), "strictly increasing"),
    (lambda d: d["features"][0].update(categories=["a", "a", "b"]), "duplicate"),
    (lambda d: d["features"][0].pop("counts"), "malformed column"),
    (lambda d: d["features"][0].update(kind="text"), "unknown kind"),
    (lambda d: d.update(model=""), "model must be a non-empty string"),
])
def test_load_malformed(saved, mutate, message):
    d = json.loads(saved.read_text())
    mutate(d)
    saved.write_text(json.dumps(d))
    with pytest.raises(BaselineError, match=message):
        Baseline.load(str(saved))
