"""Static checks of grafana/: dashboard JSON structure and the provisioning files.

No Grafana runs here; tests/integration/test_grafana_queries.py runs every panel query
against a real Prometheus. These tests check what Grafana itself would reject or show
wrongly: duplicate uids or panel ids, panels overlapping on the 24-column grid, a panel not
bound to the ``datasource`` variable, a target without ``refId`` / ``expr``, a query using a
variable the dashboard does not define, transformations naming a query that does not exist.
"""

import os
import re

import pytest
import yaml

from integration.grafana import (DASHBOARDS, GRAFANA, ROOT, label_values, load_dashboards,
                                 panels, rows, substitute, targets, variable_query, variables)

DASHBOARD_FILES = load_dashboards()
DS_VARIABLE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED = {"promdrift-overview.json": ("promdrift-overview", {"datasource", "model", "window"}),
            "promdrift-feature.json": ("promdrift-feature",
                                       {"datasource", "model", "feature", "window"}),
            "promdrift-predictions.json": ("promdrift-predictions",
                                           {"datasource", "model", "output", "window"}),
            "promdrift-outcomes.json": ("promdrift-outcomes",
                                        {"datasource", "model", "output", "facet", "window"})}
GRID_WIDTH = 24

each_dashboard = pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))


def test_every_dashboard_is_expected():
    assert set(DASHBOARD_FILES) == set(EXPECTED)


def test_uids_and_titles_are_unique():
    uids = [d["uid"] for d in DASHBOARD_FILES.values()]
    titles = [d["title"] for d in DASHBOARD_FILES.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    for name, d in DASHBOARD_FILES.items():
        assert d["uid"] == EXPECTED[name][0]
        assert len(d["uid"]) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", d["uid"])


@each_dashboard
def test_dashboard_model_fields(name):
    d = DASHBOARD_FILES[name]
    assert d["id"] is None, "provisioned dashboards carry no database id"
    assert 36 <= d["schemaVersion"] <= 41
    assert d["title"].startswith("promdrift / ")
    assert "promdrift" in d["tags"]
    assert d["time"]["from"].startswith("now-") and d["time"]["to"] == "now"
    assert d["editable"] is True


@each_dashboard
def test_variables(name):
    d = DASHBOARD_FILES[name]
    vs = variables(d)
    assert set(vs) == EXPECTED[name][1]
    ds = vs["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    order = [v["name"] for v in d["templating"]["list"]]
    assert order[0] == "datasource", "the data source variable comes first"
    for v in vs.values():
        if v["type"] == "query":
            assert v["datasource"] == DS_VARIABLE, v["name"]
            q = variable_query(v)
            assert v.get("definition") == q
            selector, label = label_values(q)
            assert label == v["name"]
            # a variable may use only the variables defined before it
            earlier = {n: "x" for n in order[:order.index(v["name"])]}
            substitute(q, earlier)
            assert v["refresh"] in (1, 2), "refreshed on load or on time range change"
        elif v["type"] == "custom":
            values = [o["value"] for o in v["options"]]
            assert values == v["query"].split(",")
            assert sum(o["selected"] for o in v["options"]) == 1
    assert vs["model"]["multi"] is (name == "promdrift-overview.json")
    if name == "promdrift-overview.json":
        assert vs["model"]["includeAll"] and vs["model"]["allValue"] == ".+"
    assert [o["value"] for o in vs["window"]["options"]] == ["1h", "5m"]


@each_dashboard
def test_panel_ids_unique_and_gridpos_without_overlap(name):
    d = DASHBOARD_FILES[name]
    ps = panels(d)
    ids = [p["id"] for p in ps]
    assert len(set(ids)) == len(ids)
    cells = {}
    for p in ps:
        g = p["gridPos"]
        assert set(g) == {"h", "w", "x", "y"}, p["title"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in g), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] + g["w"] <= GRID_WIDTH, p["title"]
        if p["type"] == "row":
            assert g["w"] == GRID_WIDTH and g["h"] == 1 and g["x"] == 0
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


@each_dashboard
def test_every_panel_uses_the_datasource_variable(name):
    d = DASHBOARD_FILES[name]
    n = 0
    for p in panels(d):
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"] == DS_VARIABLE, p["title"]
        assert p.get("title") and p.get("description"), p.get("title")
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t.get("datasource", DS_VARIABLE) == DS_VARIABLE, (p["title"], t["refId"])
        n += 1
    for a in d["annotations"]["list"]:
        if not a.get("builtIn"):
            assert a["datasource"] == DS_VARIABLE
    assert n >= 5


@each_dashboard
def test_every_target_has_a_refid_and_an_expression_using_known_variables(name):
    d = DASHBOARD_FILES[name]
    names = {n: "x" for n in variables(d)}
    for p, t in targets(d):
        assert re.fullmatch(r"[A-Z]", t["refId"]), (p["title"], t)
        assert t["expr"].strip(), (p["title"], t["refId"])
        expr = substitute(t["expr"], names)      # KeyError on an undefined variable
        assert expr.count("(") == expr.count(")"), (p["title"], t["refId"])
        assert t.get("instant") is not t.get("range"), "one query type per target"
        if t.get("format") == "table":
            assert t["instant"], "table queries are instant"
    for p in panels(d):
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(set(refs)) == len(refs), p["title"]


@each_dashboard
def test_no_raw_bucket_scans_on_long_ranges(name):
    """Panels read the recording rules; only counters of one series per model / output are
    rated directly (at $__rate_interval), so a 7-day dashboard does not scan every bucket."""
    d = DASHBOARD_FILES[name]
    for p, t in targets(d):
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', t["expr"])   # without string literals
        for m in re.finditer(r"\[([^\]]+)\]", code):
            assert m.group(1) == "$__rate_interval", (p["title"], t["expr"])
        assert "_bucket{" not in t["expr"] and "_bucket[" not in t["expr"], p["title"]


@each_dashboard
def test_transformations_refer_to_existing_queries(name):
    d = DASHBOARD_FILES[name]
    for p in panels(d):
        refs = {t["refId"] for t in p.get("targets", [])}
        for tr in p.get("transformations", []):
            if tr["id"] == "organize":
                for field in tr["options"].get("renameByName", {}):
                    if field.startswith("Value #"):
                        assert field[len("Value #"):] in refs, (p["title"], field)
        if any(tr["id"] == "merge" for tr in p.get("transformations", [])):
            assert len(refs) >= 2 and all(t.get("format") == "table" for t in p["targets"])
        if p["type"] == "barchart":
            x = p["options"]["xField"]
            assert all(re.search(rf"by \([^)]*\b{x}\b", t["expr"]) for t in p["targets"]), \
                (p["title"], x)
        if p["type"] == "table":
            organize = next(tr for tr in p["transformations"] if tr["id"] == "organize")
            shown = set(organize["options"]["renameByName"].values()) | {"model", "feature"}
            for sort in p["options"]["sortBy"]:
                assert sort["displayName"] in shown, p["title"]


def test_feature_dashboard_rows_split_numeric_and_categorical():
    d = DASHBOARD_FILES["promdrift-feature.json"]
    titles = {}
    for row, p in rows(d):
        titles.setdefault(row, []).append(p["title"])
    assert any(r.startswith("Numeric") for r in titles)
    assert any(r.startswith("Categorical") for r in titles)
    numeric = next(v for r, v in titles.items() if r.startswith("Numeric"))
    assert "KS statistic vs critical value" in numeric and "PSI" in numeric
    assert "Distribution per bin: live vs baseline" in numeric


def test_overview_lists_every_feature_worst_first():
    d = DASHBOARD_FILES["promdrift-overview.json"]
    tables = [p for p in panels(d) if p["type"] == "table"]
    assert len(tables) == 2
    for p in tables:
        sort = next(tr for tr in p["transformations"] if tr["id"] == "sortBy")
        assert sort["options"]["sort"][0]["desc"] is True
        assert p["options"]["sortBy"][0]["desc"] is True
        link = [pr for o in p["fieldConfig"]["overrides"] for pr in o["properties"]
                if pr["id"] == "links"]
        assert link and "/d/promdrift-feature/" in link[0]["value"][0]["url"]


def test_overview_links_to_the_outcomes_dashboard():
    links = DASHBOARD_FILES["promdrift-overview.json"]["links"]
    assert any(ln["type"] == "dashboards" and "promdrift" in ln["tags"] for ln in links)
    (outcomes,) = [ln for ln in links if ln["type"] == "link"]
    uid = DASHBOARD_FILES["promdrift-outcomes.json"]["uid"]
    assert outcomes["url"].startswith(f"/d/{uid}/") and outcomes["keepTime"] is True


def test_outcomes_dashboard_rows():
    """One row per outcome monitor; quality split by output kind like the predictions
    dashboard ("Categorical ..." / "Numeric ..."), so each row applies to one kind."""
    d = DASHBOARD_FILES["promdrift-outcomes.json"]
    titles: dict = {}
    for row, p in rows(d):
        titles.setdefault(row, []).append(p["title"])
    assert list(titles) == ["Labels", "Categorical output: classification quality",
                            "Numeric output: regression quality", "Bias: facet groups",
                            "Attributions"]
    exprs = {t["expr"] for _, t in targets(d)}
    for rule in ("accuracy", "macro_f1", "mae", "rmse"):
        assert any(f"promdrift_quality_{rule}:$window" in e for e in exprs), rule
    for rule in ("precision", "recall", "f1"):
        assert any(f"model_output_class:promdrift_quality_{rule}:$window" in e
                   for e in exprs), rule
    assert any("promdrift_bias_dppl:$window" in e for e in exprs)
    assert any("promdrift_bias_recall_difference:$window" in e for e in exprs)
    assert any("model:promdrift_attribution_ndcg:min" in e for e in exprs)
    assert "promdrift:config:attribution_ndcg_min" in exprs


# ------------------------------------------------------------------------------ provisioning
def _yaml(*parts):
    with open(os.path.join(GRAFANA, *parts)) as f:
        return yaml.safe_load(f)


def test_datasource_provisioning():
    doc = _yaml("provisioning", "datasources", "prometheus.yml")
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    assert ds["url"] == "http://prometheus:9090", "the docker-compose service"
    assert re.fullmatch(r"\d+s", ds["jsonData"]["timeInterval"])


def test_dashboard_provisioning():
    doc = _yaml("provisioning", "dashboards", "promdrift.yml")
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["folder"] == "promdrift"
    assert provider["options"]["path"].startswith("/")


def test_readme_documents_every_dashboard():
    with open(os.path.join(GRAFANA, "README.md")) as f:
        readme = f.read()
    for d in DASHBOARD_FILES.values():
        assert d["title"] in readme and d["uid"] in readme
    assert os.path.isdir(DASHBOARDS)


# ------------------------------------------------------------------- names the queries use
def _rule_names():
    with open(os.path.join(ROOT, "promql", "rules.yml")) as f:
        return {r["record"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]
                if "record" in r}


def _metric_families():
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        return set(re.findall(r"`(promdrift_[a-z_]+)`", f.read()))


def _queries():
    for name, d in sorted(DASHBOARD_FILES.items()):
        exprs = [t["expr"] for _, t in targets(d)]
        exprs += [a["expr"] for a in d["annotations"]["list"] if a.get("expr")]
        exprs += [variable_query(v) for v in variables(d).values() if v["type"] == "query"]
        for window in ("1h", "5m"):
            values = {n: window if n == "window" else "x" for n in variables(d)}
            for e in exprs:
                yield name, substitute(re.sub(r'"(?:[^"\\]|\\.)*"', '""', e), values)


def test_every_recording_rule_a_dashboard_reads_exists():
    rules, used = _rule_names(), set()
    for name, expr in _queries():
        for metric in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr):
            assert metric in rules, f"{name}: {metric} is not a rule of promql/rules.yml"
            used.add(metric)
    assert len(used) >= 40


def test_every_raw_metric_a_dashboard_reads_is_documented():
    families, used = _metric_families(), set()
    suffixes = ("_bucket", "_count", "_sum")
    for name, expr in _queries():
        for metric in re.findall(r"(?<![:\w])promdrift_[a-z_]+\b", expr):
            base = next((metric[:-len(s)] for s in suffixes
                         if metric.endswith(s) and metric not in families), metric)
            assert base in families, f"{name}: {metric} is not in docs/metrics.md"
            used.add(metric)
    assert {"promdrift_inferences_total", "promdrift_baseline_info"} <= used
