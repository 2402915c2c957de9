"""Static checks of grafana/: the generated dashboards and the provisioning files.

No Grafana runs here; tests/integration/test_grafana_queries.py and
test_grafana_kept_labels.py run every panel query against a real Prometheus. These tests check
that the committed dashboards are what ``promdrift rules`` generates, and, for the default
configuration and for configurations with kept labels, a target selector, other windows and
other thresholds, what Grafana itself would reject or show wrongly: duplicate uids or panel
ids, panels overlapping on the 24-column grid, a panel not bound to the ``datasource``
variable, a query using a variable the dashboard does not define or a recording rule the
configuration does not record, a selector missing a kept label or the target selector,
transformations naming a query that does not exist.
"""

import json
import os
import re

import pytest
import yaml

from integration.grafana import (DASHBOARDS, GRAFANA, ROOT, custom_options, generated,
                                 label_values, load_dashboards, panels, rows, substitute,
                                 targets, variable_query, variables)
from promdrift.grafana import dashboards
from promdrift.grafana.board import window_options
from promdrift.promql import RulesConfig, outputs, recording_groups

DS_VARIABLE = {"type": "prometheus", "uid": "${datasource}"}
CONFIGS = {
    "default": RulesConfig(),
    "kept": RulesConfig(keep_labels=["cluster", "env"], selector='job="model", env!="dev"'),
    "windows": RulesConfig(windows=["5m", "1h", "1d"], alert_window="1d",
                           ranges={"5m": "15s", "1h": "60s", "1d": "5m"}),
    "thresholds": RulesConfig(thresholds={"psi_max": 0.3, "tvd_max": 0.15,
                                          "ks_min_effect": 0.07, "bias_tolerance": 0.12}),
}
BOARDS = {c: generated(config) for c, config in CONFIGS.items()}
SUBJECTS = {"promdrift-overview.json": ("promdrift-overview", []),
            "promdrift-feature.json": ("promdrift-feature", ["feature"]),
            "promdrift-predictions.json": ("promdrift-predictions", ["output"]),
            "promdrift-outcomes.json": ("promdrift-outcomes", ["output", "facet"])}
GRID_WIDTH = 24
CASES = [(c, n) for c in CONFIGS for n in sorted(SUBJECTS)]

each_dashboard = pytest.mark.parametrize("config_name,name", CASES,
                                         ids=[f"{c}:{n}" for c, n in CASES])
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\{([^{}]*)\}")


def _without_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def _window_values(d):
    return {o.text: o for o in custom_options(variables(d)["window"])}


def _all_values(d, window):
    return {n: (window if n == "window" else "x") for n in variables(d)}


# ------------------------------------------------------------------------ generated files
def test_committed_dashboards_are_what_the_generator_writes():
    """grafana/dashboards/*.json are the default configuration's output, byte for byte
    (regenerate: see grafana/README.md, "Generating")."""
    expected = {rel.split("/", 1)[1]: text for rel, text in outputs(RulesConfig()).items()
                if rel.startswith("dashboards/")}
    on_disk = {}
    for name in sorted(os.listdir(DASHBOARDS)):
        with open(os.path.join(DASHBOARDS, name), encoding="utf-8") as f:
            on_disk[name] = f.read()
    assert sorted(on_disk) == sorted(expected)
    stale = [n for n in expected if on_disk[n] != expected[n]]
    assert not stale, f"{stale} differ from what `promdrift rules` generates"
    assert load_dashboards() == BOARDS["default"]


def test_dashboards_are_plain_json_data():
    for config in CONFIGS.values():
        boards = dashboards(config)
        assert set(boards) == {uid for uid, _ in SUBJECTS.values()}
        for board in boards.values():
            assert json.loads(json.dumps(board)) == board


def test_window_options_pair_names_with_ranges():
    opts = window_options(CONFIGS["windows"])
    assert [(o.text, o.value, o.selected) for o in opts] == [
        ("5m", "15s", False), ("1h", "60s", False), ("1d", "5m", True)]
    scaled = window_options(RulesConfig(time_scale=60))
    assert [(o.text, o.value, o.selected) for o in scaled] == [
        ("5m", "5s", False), ("1h", "1m", True)]
    with pytest.raises(ValueError, match="'5m' and '1h' both cover 30s"):
        window_options(RulesConfig(ranges={"5m": "30s", "1h": "30s"}))


# ------------------------------------------------------------------------------- structure
def test_uids_and_titles_are_unique():
    for boards in BOARDS.values():
        assert set(boards) == set(SUBJECTS)
        uids = [d["uid"] for d in boards.values()]
        titles = [d["title"] for d in boards.values()]
        assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
        for name, d in boards.items():
            assert d["uid"] == SUBJECTS[name][0] == name[:-len(".json")]
            assert len(d["uid"]) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", d["uid"])


@each_dashboard
def test_dashboard_model_fields(config_name, name):
    d = BOARDS[config_name][name]
    assert d.get("id") is None, "provisioned dashboards carry no database id"
    assert 39 <= d["schemaVersion"] <= 41
    assert d["title"].startswith("promdrift / ")
    assert "promdrift" in d["tags"]
    assert d["time"]["from"].startswith("now-") and d["time"]["to"] == "now"
    assert d["editable"] is True
    assert "Generated by `promdrift rules`" in d["description"]


@each_dashboard
def test_variables(config_name, name):
    config, d = CONFIGS[config_name], BOARDS[config_name][name]
    vs = variables(d)
    overview = name == "promdrift-overview.json"
    kept = list(config.keep_labels)
    order = [v["name"] for v in d["templating"]["list"]]
    assert order == ["datasource", *kept, "model", "baseline", *SUBJECTS[name][1], "window"]
    ds = vs["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for v in vs.values():
        if v["type"] != "query":
            continue
        assert v["datasource"] == DS_VARIABLE, v["name"]
        selector, label = label_values(variable_query(v))
        assert label == v["name"]
        # a variable may use only the variables defined before it, and uses all of them
        earlier = order[1:order.index(v["name"])]
        substitute(variable_query(v), {n: "x" for n in earlier})
        for n in earlier:
            assert f"${n}" in selector, (v["name"], n)
        if config.selector:
            assert selector.startswith("promdrift_") and config.selector in selector
        assert v["refresh"] in (1, 2), "refreshed on load or on time range change"
        # several baselines (all by default): one row each on the detail dashboards
        multi = (overview and v["name"] in ["model", *kept]) or v["name"] == "baseline"
        assert v["multi"] is multi and v["includeAll"] is multi, v["name"]
        if multi:
            assert v["allValue"] == (".+" if v["name"] == "model" else ".*")
    window = vs["window"]
    options = custom_options(window)
    assert [o.text for o in options] == list(config.windows)
    assert [o.value for o in options] == [config.range(w) for w in config.windows]
    assert window["current"]["text"] == config.alert_window
    assert window["current"]["value"] == config.range(config.alert_window)
    assert not window["multi"] and not window["includeAll"]


@each_dashboard
def test_panel_ids_unique_and_gridpos_without_overlap(config_name, name):
    ps = panels(BOARDS[config_name][name])
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
def test_every_panel_uses_the_datasource_variable(config_name, name):
    d = BOARDS[config_name][name]
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
    annotations = [a for a in d["annotations"]["list"] if not a.get("builtIn")]
    assert annotations
    for a in annotations:
        assert a["datasource"] == DS_VARIABLE and a["expr"].startswith("ALERTS{")
        assert a["titleFormat"] and a["textFormat"]
    assert n >= 5


@each_dashboard
def test_every_target_has_a_refid_and_an_expression_using_known_variables(config_name, name):
    d = BOARDS[config_name][name]
    for window in _window_values(d).values():
        values = _all_values(d, window)
        for p, t in targets(d):
            assert re.fullmatch(r"[A-Z]", t["refId"]), (p["title"], t)
            expr = substitute(t["expr"], values)     # KeyError on an undefined variable
            assert expr.count("(") == expr.count(")"), (p["title"], t["refId"])
            assert t["instant"] is not t["range"], "one query type per target"
            if t.get("format") == "table":
                assert t["instant"], "table queries are instant"
    for p in panels(d):
        refs = [t["refId"] for t in p.get("targets", [])]
        assert refs == [chr(ord("A") + i) for i in range(len(refs))], p["title"]


def _queries(d):
    """Every PromQL text of a dashboard: targets, annotations, variable queries."""
    out = [(p["title"], t["expr"]) for p, t in targets(d)]
    out += [(a["name"], a["expr"]) for a in d["annotations"]["list"] if a.get("expr")]
    out += [(v["name"], variable_query(v)) for v in variables(d).values()
            if v["type"] == "query"]
    return out


@each_dashboard
def test_every_recording_rule_a_query_reads_is_recorded(config_name, name):
    """Rule names are checked for every window of the configuration: ``${window:text}``
    takes each window's name."""
    config, d = CONFIGS[config_name], BOARDS[config_name][name]
    records = {r.record for g in recording_groups(config) for r in g.rules}
    used = set()
    for window in _window_values(d).values():
        values = _all_values(d, window)
        for title, e in _queries(d):
            code = substitute(_without_strings(e), values)
            for metric in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", code):
                assert metric in records, f"{name} {title!r}: {metric} is not recorded"
                used.add(metric)
    assert len(used) >= {"promdrift-overview.json": 10, "promdrift-feature.json": 8,
                         "promdrift-predictions.json": 5,
                         "promdrift-outcomes.json": 13}[name] * len(config.windows)


@each_dashboard
def test_every_selector_carries_the_selection(config_name, name):
    """Every series selector of every query filters by the kept labels and the model (and,
    for promdrift's raw series, the configured target selector), so that a panel never mixes
    clusters, environments or models the user did not select."""
    config, d = CONFIGS[config_name], BOARDS[config_name][name]
    vs = variables(d)
    checked = 0
    for p, t in targets(d):
        for m in _SELECTOR.finditer(t["expr"].replace("${window:text}", "WINDOW")):
            metric, body = m.groups()
            for label in [*config.keep_labels, "model"]:
                op = "=~" if vs[label].get("multi") else "="
                assert f'{label}{op}"${label}"' in body, (name, p["title"], metric, label)
            if metric.startswith("promdrift_") and config.selector:
                assert body.startswith(config.selector), (name, p["title"], metric)
            checked += 1
    assert checked >= 10


@each_dashboard
def test_time_series_never_scan_buckets(config_name, name):
    """Range queries (time series, stats over time) read recording rules, baseline gauges and
    rate() of a few counters at $__rate_interval, so a 7-day dashboard does not scan every
    histogram bucket; instant queries (tables, bar charts) may compute bin shares and CDFs
    from the buckets at the selected window."""
    d = BOARDS[config_name][name]
    for p, t in targets(d):
        code = _without_strings(t["expr"])
        ranges = set(re.findall(r"\[([^\]]+)\]", code))
        if t["range"]:
            assert ranges <= {"$__rate_interval"}, (p["title"], ranges)
            assert "_bucket" not in code, p["title"]
        else:
            assert ranges <= {"$__rate_interval", "$window"}, (p["title"], ranges)


@each_dashboard
def test_thresholds_are_the_configurations(config_name, name):
    """Every threshold line and every threshold literal of a condition is one of the
    configuration's thresholds (or 1 for ratios to a threshold)."""
    config, d = CONFIGS[config_name], BOARDS[config_name][name]
    allowed = {float(v) for v in config.thresholds.values()
               if isinstance(v, (int, float)) and not isinstance(v, bool)} | {1.0}
    lines = 0
    for p in panels(d):
        steps = p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
        if p["type"] == "timeseries" and steps and len(steps) > 1:
            assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
            for s in steps[1:]:
                assert s["value"] in allowed, (p["title"], s)
                lines += 1
    assert lines >= 1


def test_thresholds_follow_the_configuration():
    d = BOARDS["thresholds"]
    psi = next(p for p in panels(d["promdrift-feature.json"]) if p["title"] == "PSI")
    assert psi["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 0.3
    ks = next(p for p in panels(d["promdrift-feature.json"])
              if p["title"] == "KS statistic vs critical value")
    assert ks["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 0.07
    stat = next(p for p in panels(d["promdrift-overview.json"])
                if p["title"] == "Categorical features drifting")
    assert stat["targets"][0]["expr"].rstrip(")\n").endswith("> 0.15")
    assert "0.07" in next(p for p in panels(d["promdrift-overview.json"])
                          if p["title"] == "Numeric features drifting")["targets"][0]["expr"]
    bias = next(p for p in panels(d["promdrift-outcomes.json"])
                if p["title"] == "Bias: live vs validation")
    assert "/ 0.12" in bias["targets"][-1]["expr"]


@each_dashboard
def test_transformations_refer_to_existing_queries(config_name, name):
    config, d = CONFIGS[config_name], BOARDS[config_name][name]
    for p in panels(d):
        refs = {t["refId"] for t in p.get("targets", [])}
        for tr in p.get("transformations", []):
            if tr["id"] == "organize":
                for field in tr["options"].get("renameByName", {}):
                    if field.startswith("Value #"):
                        assert field[len("Value #"):] in refs, (p["title"], field)
                for k in config.keep_labels:
                    if p["type"] == "barchart":
                        assert tr["options"]["excludeByName"].get(k), (p["title"], k)
        if any(tr["id"] == "merge" for tr in p.get("transformations", [])):
            assert len(refs) >= 2 and all(t.get("format") == "table" for t in p["targets"])
        if p["type"] == "barchart":
            x = p["options"]["xField"]
            assert all(re.search(rf"by \([^)]*\b{x}\b", t["expr"]) for t in p["targets"]), \
                (p["title"], x)
        if p["type"] == "table":
            organize = next(tr for tr in p["transformations"] if tr["id"] == "organize")
            shown = set(organize["options"]["renameByName"].values())
            for sort in p["options"]["sortBy"]:
                assert sort["displayName"] in shown, p["title"]


def test_feature_dashboard_rows_split_numeric_and_categorical():
    d = BOARDS["default"]["promdrift-feature.json"]
    titles = {}
    for row, p in rows(d):
        titles.setdefault(row, []).append(p["title"])
    numeric = next(v for r, v in titles.items() if r.startswith("Numeric"))
    categorical = next(v for r, v in titles.items() if r.startswith("Categorical"))
    assert {"KS statistic vs critical value", "PSI", "Distribution per bin: live vs baseline",
            "Cumulative distribution: live vs baseline"} <= set(numeric)
    assert {"Category shares: live vs baseline", "Total variation distance"} <= set(categorical)


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_overview_lists_every_feature_worst_first(config_name):
    config = CONFIGS[config_name]
    d = BOARDS[config_name]["promdrift-overview.json"]
    tables = [p for p in panels(d) if p["type"] == "table" and "features" in p["title"]]
    assert len(tables) == 2
    for p in tables:
        sort = next(tr for tr in p["transformations"] if tr["id"] == "sortBy")
        assert sort["options"]["sort"][0]["desc"] is True
        assert p["options"]["sortBy"][0]["desc"] is True
        link = [pr for o in p["fieldConfig"]["overrides"] for pr in o["properties"]
                if pr["id"] == "links"]
        url = link[0]["value"][0]["url"]
        assert url.startswith("/d/promdrift-feature/")
        # the row's model, baseline, feature and kept labels, and the window (its value,
        # the range)
        for label in ["model", "baseline", "feature", *config.keep_labels]:
            assert f"var-{label}=${{__data.fields.{label}}}" in url
        assert "var-window=${window}" in url


def test_overview_links_to_the_outcomes_dashboard():
    links = BOARDS["default"]["promdrift-overview.json"]["links"]
    assert any(ln["type"] == "dashboards" and "promdrift" in ln["tags"] for ln in links)
    (outcomes,) = [ln for ln in links if ln["type"] == "link"]
    uid = BOARDS["default"]["promdrift-outcomes.json"]["uid"]
    assert outcomes["url"].startswith(f"/d/{uid}/") and outcomes["keepTime"] is True


def test_outcomes_dashboard_rows():
    """One row per outcome monitor; quality split by output kind like the predictions
    dashboard ("Categorical ..." / "Numeric ..."), so each row applies to one kind."""
    d = BOARDS["default"]["promdrift-outcomes.json"]
    titles: dict = {}
    for row, p in rows(d):
        titles.setdefault(row, []).append(p["title"])
    assert list(titles) == [f"{t} (baseline $baseline)" for t in [
        "Labels", "Categorical output: classification quality",
        "Numeric output: regression quality", "Bias: facet groups", "Attributions"]]
    exprs = {t["expr"] for _, t in targets(d)}
    for rule in ("accuracy", "macro_f1", "mae", "rmse"):
        assert any(f"promdrift_quality_{rule}:${{window:text}}" in e for e in exprs), rule
    for rule in ("precision", "recall", "f1"):
        assert any(f"model_output_class:promdrift_quality_{rule}:${{window:text}}" in e
                   for e in exprs), rule
    assert any("promdrift_bias_dppl:${window:text}" in e for e in exprs)
    assert any("model:promdrift_attribution_ndcg:min" in e for e in exprs)


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
    for d in BOARDS["default"].values():
        assert d["title"] in readme and d["uid"] in readme
    assert "${window:text}" in readme and "keep_labels" in readme


# ------------------------------------------------------------------- names the queries use
def _metric_families():
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        return set(re.findall(r"`(promdrift_[a-z_]+)`", f.read()))


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_every_raw_metric_a_dashboard_reads_is_documented(config_name):
    families, used = _metric_families(), set()
    suffixes = ("_bucket", "_count", "_sum")
    for name, d in BOARDS[config_name].items():
        for window in _window_values(d).values():
            for _, e in _queries(d):
                code = substitute(_without_strings(e), _all_values(d, window))
                for metric in re.findall(r"(?<![:\w])promdrift_[a-z_]+\b", code):
                    base = next((metric[:-len(s)] for s in suffixes
                                 if metric.endswith(s) and metric not in families), metric)
                    # a histogram is documented as `name_bucket` / `_count`
                    assert base in families or f"{base}_bucket" in families, \
                        f"{name}: {metric} is not in docs/metrics.md"
                    used.add(metric)
    assert {"promdrift_inferences_total", "promdrift_baseline_info",
            "promdrift_feature_value_bucket", "promdrift_baseline_feature_bin"} <= used


@each_dashboard
def test_detail_dashboards_show_one_row_per_baseline(config_name, name):
    """The detail dashboards repeat every row per baseline (all baselines by default), so that
    no panel mixes two baselines' bins during a rolling update or a canary; the overview lists
    every baseline in its tables (its rules keep the baseline label) and does not repeat."""
    d = BOARDS[config_name][name]
    row_panels = [p for p in d["panels"] if p["type"] == "row"]
    assert row_panels
    baseline = variables(d)["baseline"]
    assert baseline["multi"] and baseline["includeAll"]
    assert label_values(variable_query(baseline))[1] == "baseline"
    if name == "promdrift-overview.json":
        assert all(not p.get("repeat") for p in row_panels)
        assert any(p["title"].startswith("Versions") for p in row_panels)
        return
    for p in row_panels:
        assert p["repeat"] == "baseline" and "$baseline" in p["title"], p["title"]
    for _, t in targets(d):
        if "promdrift_" in t["expr"] and "ALERTS" not in t["expr"]:
            assert 'baseline=~"$baseline"' in t["expr"], t["expr"]
