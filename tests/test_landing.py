"""The landing page: its numbers against counts computed here from the data, its HTML, Flask."""

from collections import Counter
from html.parser import HTMLParser

import numpy as np
import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from promdrift.instrumentation import (OTHER, Baseline, CategoricalColumn, DriftMonitor,
                                       NumericColumn, landing_page)

from conftest import PENGUINS_CSV, read_rows

VOID = {"meta", "br", "link", "img", "input", "hr", "col", "area", "base", "source", "wbr"}


def c_alpha(features, alpha=0.01):
    """c of the family-wise KS critical value (Bonferroni over the model's numeric features),
    written out independently of promdrift."""
    return np.sqrt(-np.log(alpha / (2 * features)) / 2)


class Page(HTMLParser):
    """Parses a page, checks that tags nest, and collects rows, pictures and bars."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags = [], [], Counter()
        self.rows, self.sections, self.facts = {}, [], {}
        self._row = self._bar = self._fact = None
        self._inv = None
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed {self.stack}")

    def handle_starttag(self, tag, attrs):
        self._open(tag, dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._open(tag, dict(attrs))

    def _open(self, tag, a):
        self.tags[tag] += 1
        if tag == "section":
            self.sections.append(a)
        elif tag == "tr" and "data-column" in a:
            self._row = {"attrs": a, "svgs": [], "bars": [], "invalid": {}, "cells": []}
            self.rows[(a["data-role"], a["data-column"])] = self._row
        elif tag == "svg" and self._row is not None:
            self._row["svgs"].append(a)
        elif tag == "g" and self._row is not None:
            self._bar = {"attrs": a, "rects": {}}
            self._row["bars"].append(self._bar)
        elif tag == "rect" and self._bar is not None:
            self._bar["rects"][a["class"]] = {k: float(a[k]) for k in ("x", "y", "width",
                                                                      "height")}
        elif tag == "span" and a.get("class") == "inv":
            self._row["invalid"][a["data-reason"]] = None
            self._inv = a["data-reason"]
        elif tag == "td" and self._row is not None:
            self._row["cells"].append(a)
        elif tag == "dd":
            self._fact = a["data-fact"]

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag == "tr":
            self._row = None
        elif tag == "g":
            self._bar = None
        elif tag == "dd":
            self._fact = None

    def handle_data(self, data):
        if self._fact is not None:
            self.facts.setdefault(self.sections[-1]["data-model"], {})[self._fact] = data
        if self._row is not None and getattr(self, "_inv", None) in self._row["invalid"] \
                and self._row["invalid"][self._inv] is None:
            self._row["invalid"][self._inv] = data
            self._inv = None


def ks_binned(live, base):
    p, q = np.asarray(live, float), np.asarray(base, float)
    return np.max(np.abs(np.cumsum(p / p.sum()) - np.cumsum(q / q.sum())))


def le_counts(values, edges):
    """Per-bin counts with Prometheus' (lower, upper] bins, from cumulative <= counts."""
    values = np.asarray(values, dtype=float)
    cum = np.array([np.count_nonzero(values <= e) for e in list(edges) + [np.inf]])
    return np.diff(cum, prepend=0)


@pytest.fixture(scope="module")
def rows():
    return read_rows(PENGUINS_CSV)


@pytest.fixture(scope="module")
def drifted(rows):
    """Penguins served with drift and bad values, the monitor, and what was sent."""
    baseline = Baseline.fit_csv(PENGUINS_CSV, model="penguins", predictions="species",
                                progress=False)
    registry = CollectorRegistry()
    monitor = DriftMonitor(baseline, registry=registry, model_version="7")
    rng = np.random.default_rng(3)
    sent, preds = [], []
    for i, r in enumerate(rows):
        f = {k: v for k, v in r.items() if k != "species"}
        if f["body_mass_g"] is not None:
            f["body_mass_g"] *= 1.2  # drift
        if f["bill_depth_mm"] is not None:
            f["bill_depth_mm"] += 0.3  # a small shift, below the critical value
        if rng.random() < 0.25:
            f["island"] = "Atlantis"  # unseen: __other__
        if i % 50 == 1:
            f["bill_length_mm"] = "long"  # wrong_type
        if i % 60 == 2:
            f["flipper_length_mm"] = float("nan")
        if i % 70 == 3:
            f["bill_depth_mm"] = float("inf")
        if i % 80 == 4:
            del f["year"]  # missing
        sent.append(f)
        preds.append(r["species"])
    for f, p in zip(sent, preds):
        monitor.observe(f, p)
    monitor.observe(object())  # no row: the caller's error, counted as a refused request
    return monitor, sent, preds


@pytest.fixture(scope="module")
def page(drifted):
    monitor, _, _ = drifted
    text = landing_page(monitor.registry)
    return text, Page(text)


def test_the_page_is_a_complete_balanced_html5_document(page):
    text, p = page
    assert text.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert '<meta charset="utf-8">' in text
    assert p.errors == []
    assert p.tags["html"] == p.tags["head"] == p.tags["body"] == p.tags["main"] == 1
    assert p.tags["script"] == 0 and p.tags["link"] == 0 and "src=" not in text
    assert "http://" not in text and "https://" not in text  # no external resource


def test_one_picture_per_feature_and_prediction_output(page, drifted):
    _, p = page
    monitor, _, _ = drifted
    b = monitor.baseline
    want = [("feature", c.name) for c in b.features] + [("prediction", c.name)
                                                         for c in b.predictions]
    assert list(p.rows) == want
    for key, row in p.rows.items():
        assert len(row["svgs"]) == 1, key
        svg = row["svgs"][0]
        assert svg["role"] == "img" and key[1] in svg["aria-label"]
    assert p.tags["svg"] == len(want) + 2  # and the two legend swatches


def test_numeric_bars_match_counts_computed_from_the_data(page, drifted, rows):
    _, p = page
    monitor, sent, _ = drifted
    for col in monitor.baseline.features:
        if not isinstance(col, NumericColumn):
            continue
        row = p.rows[("feature", col.name)]
        assert row["attrs"]["data-kind"] == "numeric"
        live = [f[col.name] for f in sent if isinstance(f.get(col.name), float)
                and np.isfinite(f[col.name])]
        train = [r[col.name] for r in rows if r[col.name] is not None]
        want_live = le_counts(live, col.edges)
        want_base = le_counts(train, col.edges)
        bars = row["bars"]
        assert len(bars) == len(col.edges) + 1
        got_live = np.array([int(b["attrs"]["data-n-live"]) for b in bars])
        got_base = np.array([int(b["attrs"]["data-n-baseline"]) for b in bars])
        np.testing.assert_array_equal(got_live, want_live, err_msg=col.name)
        np.testing.assert_array_equal(got_base, want_base, err_msg=col.name)
        p_live = np.array([float(b["attrs"]["data-live"]) for b in bars])
        p_base = np.array([float(b["attrs"]["data-baseline"]) for b in bars])
        np.testing.assert_allclose(p_live, want_live / len(live), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(p_base, want_base / len(train), rtol=1e-5, atol=1e-9)
        assert [b["attrs"]["data-upper"] for b in bars] == col.labels
        # Bar heights are proportional to the probabilities, on one scale per picture.
        h_live = np.array([b["rects"]["l"]["height"] for b in bars])
        h_base = np.array([b["rects"]["b"]["height"] for b in bars])
        top = max(p_live.max(), p_base.max())
        scale = max(h_live.max(), h_base.max()) / top
        np.testing.assert_allclose(h_live, p_live * scale, atol=0.011)
        np.testing.assert_allclose(h_base, p_base * scale, atol=0.011)
        assert max(h_live.max(), h_base.max()) <= float(row["svgs"][0]["height"])
        # Bars stand on the axis: y + height is the picture's height.
        for b in bars:
            for r in b["rects"].values():
                assert r["y"] + r["height"] == pytest.approx(float(row["svgs"][0]["height"]),
                                                            abs=0.011)
        # Distance, critical value, live count.
        cells = row["cells"]
        ks = ks_binned(want_live, want_base)
        numeric = sum(isinstance(c, NumericColumn) for c in monitor.baseline.features)
        crit = c_alpha(numeric) * np.sqrt((len(live) + len(train)) / (len(live) * len(train)))
        dist = next(c for c in cells if "data-ks" in c)
        assert float(dist["data-ks"]) == pytest.approx(ks, rel=1e-5, abs=1e-9)
        assert float(dist["data-critical"]) == pytest.approx(crit, rel=1e-5)
        assert ("over" in dist["class"]) == (ks > crit)
        count = next(c for c in cells if "data-live-count" in c)
        assert int(count["data-live-count"]) == len(live)


def test_drift_is_flagged_only_where_it_was_put(page):
    _, p = page
    flagged = {k[1] for k, row in p.rows.items()
               if any("over" in c.get("class", "") for c in row["cells"])}
    # body_mass_g (x1.2) above its KS critical value; island (a quarter of the birds from an
    # unseen island: TV ~0.25) above the TV threshold 0.1; sex and species (undrifted) not.
    assert flagged == {"body_mass_g", "island"}
    # bill_depth_mm's sampling noise comes within reach of its (family-wise) critical value
    # without crossing it: the highlight is a real comparison.
    small = next(c for c in p.rows[("feature", "bill_depth_mm")]["cells"] if "data-ks" in c)
    assert 0.5 * float(small["data-critical"]) < float(small["data-ks"]) \
        < float(small["data-critical"])


def test_categorical_bars_and_total_variation(page, drifted, rows):
    _, p = page
    monitor, sent, preds = drifted
    b = monitor.baseline
    columns = [("feature", c, [f.get(c.name) for f in sent], [r[c.name] for r in rows])
               for c in b.features if isinstance(c, CategoricalColumn)]
    columns += [("prediction", c, preds, [r[c.name] for r in rows]) for c in b.predictions]
    assert {c.name for _, c, _, _ in columns} == {"island", "sex", "species"}
    for role, col, live_values, train_values in columns:
        row = p.rows[(role, col.name)]
        assert row["attrs"]["data-kind"] == "categorical"
        labels = list(col.categories) + [OTHER]
        live = Counter(v if v in col.categories else OTHER for v in live_values
                       if v is not None)
        train = Counter(v if v in col.categories else OTHER for v in train_values
                        if v is not None)
        want_live = np.array([live[c] for c in labels])
        want_base = np.array([train[c] for c in labels])
        bars = row["bars"]
        assert [x["attrs"]["data-category"] for x in bars] == labels
        np.testing.assert_array_equal([int(x["attrs"]["data-n-live"]) for x in bars],
                                      want_live)
        np.testing.assert_array_equal([int(x["attrs"]["data-n-baseline"]) for x in bars],
                                      want_base)
        np.testing.assert_allclose([float(x["attrs"]["data-live"]) for x in bars],
                                   want_live / want_live.sum(), rtol=1e-5, atol=1e-9)
        tv = 0.5 * np.abs(want_live / want_live.sum() - want_base / want_base.sum()).sum()
        dist = next(c for c in row["cells"] if "data-tv" in c)
        assert float(dist["data-tv"]) == pytest.approx(tv, rel=1e-5, abs=1e-9)
        # the no-drift TVD shown below it: 0.5 * sum sqrt(q(1-q)) * sqrt(2/pi (1/n + 1/m))
        q, n, m = want_base / want_base.sum(), want_live.sum(), want_base.sum()
        noise = 0.5 * np.sqrt(q * (1 - q)).sum() * np.sqrt(2 / np.pi * (1 / n + 1 / m))
        assert float(dist["data-tv-noise"]) == pytest.approx(noise, rel=1e-5)
    assert float(next(c for c in p.rows[("feature", "island")]["cells"]
                      if "data-tv" in c)["data-tv"]) > 0.15
    assert p.rows[("feature", "island")]["bars"][-1]["attrs"]["data-n-live"] != "0"


def test_invalid_counts_by_reason(page, drifted):
    _, p = page
    _, sent, _ = drifted

    def reasons(name):
        out = Counter()
        for f in sent:
            v = f.get(name, "<missing>")
            if v == "<missing>":
                out["missing"] += 1
            elif v is None:
                out["null"] += 1
            elif isinstance(v, str) and name != "island" and name != "sex":
                out["wrong_type"] += 1
            elif isinstance(v, float) and np.isnan(v):
                out["nan"] += 1
            elif isinstance(v, float) and np.isinf(v):
                out["inf"] += 1
        return out

    for (role, name), row in p.rows.items():
        if role != "feature":
            continue
        want = {r: str(n) for r, n in reasons(name).items()}
        got = {r: text.split()[-1] for r, text in row["invalid"].items()}
        assert got == want, name
    assert set(p.rows[("feature", "bill_length_mm")]["invalid"]) == {"null", "wrong_type"}
    assert set(p.rows[("feature", "year")]["invalid"]) == {"missing"}


def test_model_facts(page, drifted):
    text, p = page
    monitor, sent, _ = drifted
    facts = p.facts["penguins"]
    assert facts["inferences"] == f"{len(sent):,}"
    assert facts["invalid-requests"] == "1"
    assert facts["errors"] == "0"
    assert facts["digest"] == monitor.baseline.digest
    assert facts["created"] == monitor.baseline.created
    assert facts["baseline-rows"] == str(len(sent))
    assert "version 7" in text


def test_names_and_categories_are_escaped():
    evil = "<script>alert(1)</script>"
    cat = '"><img src=x onerror=alert(2)>'
    baseline = Baseline.fit({evil: [1.0, 2.0, 3.0, 4.0], "c": [cat, cat, "a&b", "a&b"]},
                            model="m<i>&", bins=2)
    monitor = DriftMonitor(baseline, registry=None, model_version="<v>")
    monitor.observe({evil: 2.5, "c": cat})
    text = landing_page(monitor, title="<t>")
    p = Page(text)
    assert p.errors == []
    assert evil not in text and cat not in text and "<i>" not in text and "<v>" not in text
    assert p.tags["script"] == 0 and p.tags["img"] == 0 and p.tags["i"] == 0
    assert ("feature", evil) in p.rows  # the attribute value parses back to the name
    assert [b["attrs"]["data-category"] for b in p.rows[("feature", "c")]["bars"]] == \
        [cat, "a&b", OTHER]
    assert p.sections[0]["data-model"] == "m<i>&"
    assert "<title>&lt;t&gt;</title>" in text


def test_a_model_without_traffic():
    baseline = Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0], "k": ["a", "b", "a", "a"]},
                            model="idle", bins=2)
    text = landing_page([DriftMonitor(baseline, registry=None)])
    p = Page(text)
    assert p.errors == []
    assert text.count("no live data") == 2
    for row in p.rows.values():
        assert all(b["attrs"]["data-live"] == "0" for b in row["bars"])
        assert all(b["rects"]["l"]["height"] == 0 for b in row["bars"])
        assert sum(int(b["attrs"]["data-n-baseline"]) for b in row["bars"]) == 4


def test_what_landing_page_accepts():
    registry = CollectorRegistry()
    a = DriftMonitor(Baseline.fit({"x": [1.0, 2.0]}, model="a", bins=2), registry=registry)
    b = DriftMonitor(Baseline.fit({"y": [1.0, 2.0]}, model="b", bins=2), registry=registry)

    def models(arg):
        return [s["data-model"] for s in Page(landing_page(arg)).sections]

    assert models(registry) == ["a", "b"]
    assert models([b, a]) == ["b", "a"]
    assert models(a) == ["a"]
    assert models(CollectorRegistry()) == []
    assert "No model is monitored yet" in landing_page([])
    with pytest.raises(TypeError, match="DriftMonitors"):
        landing_page("a")
    with pytest.raises(TypeError, match="DriftMonitors"):
        landing_page([a, 3])


# ---------------------------------------------------------------- Flask


@pytest.fixture
def small():
    def make(model, registry):
        return DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0]}, model=model, bins=2),
                            registry=registry)
    return make


def test_flask_serves_the_page_at_root(small, registry):
    monitor = small("m", registry)
    app = monitor.instrument(Flask("app"))
    monitor.observe({"x": 9.0})
    resp = app.test_client().get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    p = Page(resp.get_data(as_text=True))
    assert p.errors == []
    assert [s["data-model"] for s in p.sections] == ["m"]
    assert p.rows[("feature", "x")]["bars"][-1]["attrs"]["data-n-live"] == "1"
    assert 'href="/metrics"' in resp.get_data(as_text=True)


def test_an_existing_index_is_not_replaced(small, registry):
    app = Flask("app")

    @app.get("/")
    def index():
        return "mine"

    small("m", registry).instrument(app)
    assert app.test_client().get("/").get_data(as_text=True) == "mine"
    assert app.test_client().get("/metrics").status_code == 200
    assert not any(e.startswith("promdrift_landing") for e in app.view_functions)


def test_an_index_added_after_instrument_wins(small, registry):
    app = small("m", registry).instrument(Flask("app"))

    @app.get("/")
    def index():
        return "mine"

    assert app.test_client().get("/").get_data(as_text=True) == "mine"


def test_landing_path_none_and_another_path(small, registry):
    app = small("m", registry).instrument(Flask("app"), landing_path=None)
    assert app.test_client().get("/").status_code == 404
    other = small("n", CollectorRegistry()).instrument(Flask("other"), landing_path="/drift")
    assert other.test_client().get("/").status_code == 404
    resp = other.test_client().get("/drift")
    assert resp.status_code == 200 and 'data-model="n"' in resp.get_data(as_text=True)


def test_several_monitors_share_one_page(small, registry):
    app = Flask("app")
    a = small("a", registry)
    b = small("b", registry)  # same registry: on the page (it is in /metrics)
    c = small("c", CollectorRegistry())  # another registry, instrumented on the same app
    d = small("d", None)  # no registry at all
    a.instrument(app)
    c.instrument(app, metrics_path="/metrics-c")
    d.instrument(app, metrics_path="/metrics-d")
    b.instrument(app, metrics_path="/metrics-b")  # instrumented and in a's registry: once
    p = Page(app.test_client().get("/").get_data(as_text=True))
    assert [s["data-model"] for s in p.sections] == ["a", "b", "c", "d"]


def test_many_categories_are_summarised_under_the_picture():
    values = [f"k{i}" for i in range(12) for _ in range(i + 1)]
    monitor = DriftMonitor(Baseline.fit({"k": values}, model="m", top_k=10), registry=None)
    monitor.observe([{"k": "k11"}, {"k": "k0"}, {"k": "new"}])
    text = landing_page(monitor)
    p = Page(text)
    bars = p.rows[("feature", "k")]["bars"]
    assert [b["attrs"]["data-category"] for b in bars] == \
        [f"k{i}" for i in range(11, 1, -1)] + [OTHER]
    assert [b["attrs"]["data-n-live"] for b in bars] == ["1"] + ["0"] * 9 + ["2"]
    assert [b["attrs"]["data-n-baseline"] for b in bars] == \
        [str(i + 1) for i in range(11, 1, -1)] + ["3"]  # k0 (1) and k1 (2) in __other__
    assert "k11, k10, k9, …, __other__" in text
    small = landing_page(DriftMonitor(Baseline.fit({"k": ["a", "b"]}, model="s"),
                                      registry=None))
    assert '<span class="cat" title="a">a</span>' in small
