"""Bias drift (per-group counters, group-minus-rest differences) and feature attribution
drift (mean |attribution| per feature, nDCG) against numpy computations on real data."""

import math

import numpy as np
import pytest

from promdrift.instrumentation import Baseline, BaselineError, DriftMonitor
from promdrift.instrumentation.outcomes.attribution import ndcg

from conftest import BREAST_CANCER_CSV, PENGUINS_CSV, read_rows

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def penguins():
    """Rows (features), true species and a threshold rule's species for every row."""
    rows = [r for r in read_rows(PENGUINS_CSV) if r["flipper_length_mm"] is not None]
    truth = [r.pop("species") for r in rows]
    pred = ["Gentoo" if r["flipper_length_mm"] > 206 else
            "Chinstrap" if r["bill_length_mm"] > 44 else "Adelie" for r in rows]
    return rows, truth, pred


def reference_dppl(groups, pred, g, c):
    groups, pred = np.asarray(groups, dtype=object), np.asarray(pred, dtype=object)
    valid = np.array([x is not None for x in groups])
    in_g = valid & (groups == g)
    rest = valid & (groups != g)
    return np.mean(pred[in_g] == c) - np.mean(pred[rest] == c)


def reference_recall_diff(groups, truth, pred, g, c):
    groups = np.asarray(groups, dtype=object)
    truth, pred = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    valid = np.array([x is not None for x in groups])
    pos = truth == c
    in_g, rest = valid & (groups == g) & pos, valid & (groups != g) & pos
    return np.mean(pred[in_g] == c) - np.mean(pred[rest] == c)


def rules_dppl(m, facet, g, c, groups, classes):
    """What the recording rules compute from the exposed counters."""
    count = {(gg, cc): m.sample("promdrift_bias_predictions_total", facet=facet, group=gg,
                                output="species", **{"class": cc})
             for gg in groups for cc in classes}
    n_g = sum(count[g, cc] for cc in classes)
    n = sum(count.values())
    c_all = sum(count[gg, c] for gg in groups)
    return count[g, c] / n_g - (c_all - count[g, c]) / (n - n_g)


def rules_recall_diff(m, facet, g, c, groups):
    lab = lambda name, gg: m.sample(name, facet=facet, group=gg, output="species",
                                    **{"class": c})
    tp = {gg: lab("promdrift_bias_true_positives_total", gg) for gg in groups}
    act = {gg: lab("promdrift_bias_labels_total", gg) for gg in groups}
    rest_tp, rest_act = sum(tp.values()) - tp[g], sum(act.values()) - act[g]
    return tp[g] / act[g] - rest_tp / rest_act


def test_bias_counters_and_differences_match_numpy(registry):
    rows, truth, pred = penguins()
    train = {k: [r[k] for r in rows[:200]] for k in rows[0]}
    train["species"] = pred[:200]
    b = Baseline.fit(train, model="peng", predictions="species")
    b = b.with_bias({"island": [r["island"] for r in rows[:200]],
                     "sex": [r["sex"] for r in rows[:200]]}, pred[:200], truth[:200],
                    facets=["island", "sex"])
    m = DriftMonitor(b, registry=registry).track_labels(":memory:").track_facets("island",
                                                                                 "sex")
    live = list(range(len(rows)))
    m.observe([rows[i] for i in live], [pred[i] for i in live],
              inference_id=[str(i) for i in live])
    for i in reversed(live):
        assert m.record_label(str(i), truth[i]) == "matched"

    islands = ["Biscoe", "Dream", "Torgersen", "__other__"]
    assert list(b.feature("island").labels) == islands
    isl = [r["island"] for r in rows]
    recall_checked = 0
    for g in islands[:3]:
        for c in SPECIES:
            assert m.sample("promdrift_bias_predictions_total", facet="island", group=g,
                            output="species", **{"class": c}) == \
                sum(1 for x, p in zip(isl, pred) if x == g and p == c)
            got = rules_dppl(m, "island", g, c, islands, SPECIES + ["__other__"])
            assert math.isclose(got, reference_dppl(isl, pred, g, c), abs_tol=1e-12)
            if any(t == c and x != g for t, x in zip(truth, isl)) and \
                    any(t == c and x == g for t, x in zip(truth, isl)):
                assert math.isclose(rules_recall_diff(m, "island", g, c, islands),
                                    reference_recall_diff(isl, truth, pred, g, c),
                                    abs_tol=1e-12)
                recall_checked += 1
    assert recall_checked == 3  # Adelie lives on all three islands, the others on one
    # rows with a missing facet value count in no group
    sex = [r["sex"] for r in rows]
    total_sex = sum(m.sample("promdrift_bias_predictions_total", facet="sex", group=g,
                             output="species", **{"class": c})
                    for g in ("female", "male", "__other__") for c in SPECIES + ["__other__"])
    assert total_sex == sum(s is not None for s in sex) < len(rows)
    # the baseline's reference values (training rows) = numpy
    isl_t, pred_t, truth_t = isl[:200], pred[:200], truth[:200]
    for g in islands[:3]:
        for c in SPECIES:
            ref = reference_dppl(isl_t, pred_t, g, c)
            assert math.isclose(b.bias["island"]["dppl"][g][c], ref, abs_tol=1e-12)
            assert math.isclose(m.sample("promdrift_baseline_bias", facet="island", group=g,
                                         output="species", metric="dppl", **{"class": c}),
                                ref, abs_tol=1e-12)
    rd = b.bias["island"]["recall_difference"]
    assert math.isclose(rd["Biscoe"]["Adelie"],
                        reference_recall_diff(isl_t, truth_t, pred_t, "Biscoe", "Adelie"),
                        abs_tol=1e-12)
    # Gentoo live only on Biscoe: no "rest" recall, so the entry is left out
    assert "Gentoo" not in rd.get("Biscoe", {})


def test_bias_baseline_round_trip_and_errors(tmp_path):
    rows, truth, pred = penguins()
    train = {k: [r[k] for r in rows] for k in rows[0]}
    train["species"] = pred
    b = Baseline.fit(train, model="peng", predictions="species")
    with pytest.raises(BaselineError, match="categorical feature"):
        b.with_bias(train, pred, facets="bill_length_mm")
    with pytest.raises(BaselineError, match="differ in length"):
        b.with_bias(train, pred[:10], facets="island")
    with pytest.raises(BaselineError, match="at least one"):
        b.with_bias(train, pred, facets=[])
    bb = b.with_bias(train, pred, facets="island")
    assert "recall_difference" not in bb.bias["island"]
    path = str(tmp_path / "b.json")
    bb.save(path)
    assert Baseline.load(path).bias == bb.bias
    with pytest.raises(ValueError, match="categorical feature"):
        DriftMonitor(bb, registry=None).track_facets("year")
    m = DriftMonitor(bb, registry=None).track_facets()  # the baseline's facets
    assert list(m.facets.facets) == ["island"]
    reg = Baseline.fit({"g": ["a", "b"], "y": [0.5, 1.5]}, predictions="y")
    with pytest.raises(ValueError, match="categorical prediction"):
        DriftMonitor(reg, registry=None).track_facets("g")


# ------------------------------------------------------------------------------ attributions
def cancer_linear():
    """Standardised features, a least-squares linear score and its exact per-feature
    attributions w_j * (x_j - mean_j) (SHAP values of a linear model)."""
    rows = read_rows(BREAST_CANCER_CSV)
    names = [k for k in rows[0] if k != "diagnosis"][:8]
    x = np.array([[r[k] for k in names] for r in rows])
    y = np.array([r["diagnosis"] == "malignant" for r in rows], dtype=float)
    mean, std = x[:300].mean(0), x[:300].std(0)
    z = (x - mean) / std
    w = np.linalg.lstsq(np.c_[z[:300], np.ones(300)], y[:300], rcond=None)[0][:-1]
    return names, x, z * w


def reference_ndcg(live_means, base_means):
    """nDCG written out: rank by live mean (ties by name), gain = baseline value."""
    feats = sorted(base_means)
    ranked = sorted(feats, key=lambda f: (-live_means.get(f, -np.inf), f))
    ideal = sorted(base_means.values(), reverse=True)
    dcg = sum(base_means[f] / np.log2(i + 2) for i, f in enumerate(ranked))
    idcg = sum(v / np.log2(i + 2) for i, v in enumerate(ideal))
    return dcg / idcg


def test_attribution_counters_and_ndcg_match_numpy(registry):
    names, x, attr = cancer_linear()
    b = Baseline.fit({n: x[:300, j] for j, n in enumerate(names)}, model="bc")
    b = b.with_attributions(attr[:300])
    base = {n: float(np.mean(np.abs(attr[:300, j]))) for j, n in enumerate(names)}
    for n in names:
        assert math.isclose(b.attribution[n], base[n], rel_tol=1e-12)
    clock = Clock()
    m = DriftMonitor(b, registry=registry).track_attributions(window=600, slots=10)
    m.attributions.counters.clock = clock
    # live rows 300..568 as dicts, one by one, attributions as dicts
    for i in range(300, 569):
        m.observe({n: x[i, j] for j, n in enumerate(names)},
                  attributions={n: attr[i, j] for j, n in enumerate(names)})
    live = {n: float(np.mean(np.abs(attr[300:, j]))) for j, n in enumerate(names)}
    for j, n in enumerate(names):
        assert math.isclose(m.sample("promdrift_attribution_abs_sum_total", feature=n),
                            float(np.abs(attr[300:, j]).sum()), rel_tol=1e-12)
        assert m.sample("promdrift_attribution_values_total", feature=n) == 269
    score = m.sample("promdrift_attribution_ndcg")
    assert math.isclose(score, reference_ndcg(live, base), rel_tol=1e-12)
    assert score > 0.9  # same population: the ranking holds
    assert m.sample("promdrift_attribution_window_rows") == 269
    # drift: the model starts leaning on the least important features (their attributions
    # are multiplied by 50) -- a batch as a 2-D array, 11 minutes later (the first window
    # has passed)
    clock.t += 660
    drifted = attr[300:].copy()
    low = sorted(range(len(names)), key=lambda j: base[names[j]])[:3]
    drifted[:, low] *= 50
    m.observe(x[300:], attributions=drifted)
    live2 = {n: float(np.mean(np.abs(drifted[:, j]))) for j, n in enumerate(names)}
    score2 = m.sample("promdrift_attribution_ndcg")
    assert math.isclose(score2, reference_ndcg(live2, base), rel_tol=1e-12)
    assert score2 < 0.9
    assert m.sample("promdrift_attribution_window_rows") == 269
    assert m.sample("promdrift_attribution_values_total", feature=names[0]) == 2 * 269
    # nothing in the window: the gauge disappears
    clock.t += 601
    assert m.sample("promdrift_attribution_ndcg") is None
    assert m.sample("promdrift_attribution_window_rows") == 0
    assert m.sample("promdrift_baseline_attribution", feature=names[0]) == base[names[0]]


def test_attribution_input_checks():
    b = Baseline.fit({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]}, model="t")
    bb = b.with_attributions({"a": [0.5, -1.5, float("nan")], "b": [0.1, 0.1, 0.1]})
    assert bb.attribution == {"a": 1.0, "b": pytest.approx(0.1)}
    with pytest.raises(BaselineError, match="unknown feature"):
        b.with_attributions({"z": [1.0]})
    with pytest.raises(BaselineError, match="2-D array"):
        b.with_attributions(np.ones((3, 3)))
    m = DriftMonitor(bb, registry=None).track_attributions()
    m.observe({"a": 1.0, "b": 2.0}, attributions=[0.2])  # wrong length: counted invalid
    m.observe({"a": 1.0, "b": 2.0}, attributions={"a": "x", "b": 0.3, "c": 9})
    assert m.sample("promdrift_attribution_rows_total", status="invalid") == 1
    assert m.sample("promdrift_attribution_rows_total", status="valid") == 1
    assert m.sample("promdrift_attribution_values_total", feature="a") == 0
    assert m.sample("promdrift_attribution_values_total", feature="b") == 1
    # b ranks first live, a (baseline first) has no live value: ranked last
    assert math.isclose(m.sample("promdrift_attribution_ndcg"),
                        reference_ndcg({"b": 0.3}, {"a": 1.0, "b": 0.1}))
    # no baseline ranking: counters but no nDCG
    m2 = DriftMonitor(b, registry=None).track_attributions()
    m2.observe({"a": 1.0, "b": 2.0}, attributions=[1.0, 2.0])
    assert m2.sample("promdrift_attribution_ndcg") is None
    assert m2.sample("promdrift_attribution_abs_sum_total", feature="b") == 2.0


def test_ndcg_properties():
    ref = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert ndcg({"a": 3, "b": 2, "c": 1}, ref) == 1.0
    worst = ndcg({"a": 1, "b": 2, "c": 3}, ref)
    assert math.isclose(worst, reference_ndcg({"a": 1, "b": 2, "c": 3}, ref))
    assert 0 < worst < ndcg({"a": 3, "b": 1, "c": 2}, ref) < 1
    assert math.isnan(ndcg({"a": 1}, {"a": 0.0}))
