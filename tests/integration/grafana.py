"""Reading promdrift's dashboards the way Grafana does, for the dashboard tests.

    dash = load_dashboards()["promdrift-feature.json"]          # the committed files
    dash = generated(config)["promdrift-feature.json"]          # or those of a configuration
    window = custom_options(variables(dash)["window"])[-1]      # Option(text="1h", value="60s")
    for panel, target in targets(dash):
        expr = substitute(target["expr"], {"model": "penguins", "feature": "island",
                                           "window": window}, interval_s=1, scrape_s=1)

:func:`substitute` expands dashboard variables (``$name``, ``${name}``, ``${name:fmt}``,
``[[name]]``; ``${name:text}`` is the text of an :class:`Option`, the value otherwise) and
Grafana's built-in time variables (``$__interval``, ``$__rate_interval``, ``$__range`` ...)
and raises ``KeyError`` for any variable it was not given, so a query can never reach
Prometheus with a variable left in it (``$1`` in a ``label_replace`` replacement is no
variable: Grafana, which knows no variable named ``1``, leaves it alone, and so does this).
:func:`label_values` parses the ``label_values(...)`` query of a query variable,
:func:`custom_options` the options of a custom variable as Grafana does.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
GRAFANA = os.path.join(ROOT, "grafana")
DASHBOARDS = os.path.join(GRAFANA, "dashboards")
# Dashboards of the outcome monitors (labels, facets, attributions): their queries run against
# the outcomes stack (test_outcomes_dashboard.py), the others against the drift stack
# (test_grafana_queries.py).
OUTCOME_DASHBOARDS = frozenset({"promdrift-outcomes.json"})

# Grafana's variable syntaxes: $name, [[name]] / [[name:fmt]], ${name} / ${name:fmt}.
_VARIABLE = re.compile(r"\$(\w+)"
                       r"|\[\[(\w+?)(?::(\w+))?\]\]"
                       r"|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


# Grafana's custom variable syntax (public/app/features/variables/custom/reducer.ts and
# @grafana/scenes' CustomVariable): comma-separated options, "text : value" pairs.
_CUSTOM_OPTION = re.compile(r"^\s*(.+)\s:\s(.+)$")


@dataclass(frozen=True)
class Option:
    """One option of a custom variable: what the user sees and what queries get."""

    text: str
    value: str


def load_dashboards(directory: str = DASHBOARDS) -> Dict[str, Dict[str, Any]]:
    """Every ``*.json`` of ``directory`` by file name, parsed."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = json.load(f)
    return out


def generated(config: Any) -> Dict[str, Dict[str, Any]]:
    """The dashboards ``promdrift rules`` writes for ``config``, by file name, as the JSON
    text they are written as, parsed again."""
    from promdrift.promql import outputs
    return {rel.split("/", 1)[1]: json.loads(text)
            for rel, text in outputs(config).items() if rel.startswith("dashboards/")}


def custom_options(variable: Mapping[str, Any]) -> List[Option]:
    """The options Grafana derives from a custom variable's query."""
    out = []
    for item in re.findall(r"(?:\\,|[^,])+", variable["query"]):
        item = item.replace("\\,", ",")
        m = _CUSTOM_OPTION.match(item)
        text, value = (m.group(1), m.group(2)) if m else (item, item)
        out.append(Option(text.strip(), value.strip()))
    return out


def panels(dashboard: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    out: List[Dict[str, Any]] = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def rows(dashboard: Mapping[str, Any]) -> Iterator[Tuple[Optional[str], Dict[str, Any]]]:
    """``(title of the row the panel sits in, or None, panel)`` for every non-row panel."""
    current: Optional[str] = None
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            current = p.get("title")
            for inner in p.get("panels", []):
                yield current, inner
        else:
            yield current, p


def targets(dashboard: Mapping[str, Any]) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``(panel, target)`` for every query of every panel."""
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p, t


def variables(dashboard: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: Mapping[str, Any]) -> str:
    """The PromQL text of a query variable (Grafana stores a string or an object)."""
    q = variable.get("query")
    return q.get("query", "") if isinstance(q, Mapping) else str(q or "")


def label_values(query: str) -> Tuple[Optional[str], str]:
    """``label_values(selector, label)`` -> ``(selector or None, label)``."""
    m = _LABEL_VALUES.match(query)
    if not m:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m.group("selector"), m.group("label")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"


def builtins(interval_s: float, scrape_s: float, range_s: float) -> Dict[str, str]:
    """Grafana's time variables for a query step ``interval_s``, a data source scrape
    interval ``scrape_s`` and a dashboard time range ``range_s``
    (``$__rate_interval`` = max(``$__interval`` + scrape interval, 4 x scrape interval))."""
    return {
        "__interval": _duration(interval_s),
        "__interval_ms": str(int(interval_s * 1000)),
        "__rate_interval": _duration(max(interval_s + scrape_s, 4 * scrape_s)),
        "__range": _duration(range_s),
        "__range_s": str(int(range_s)),
        "__range_ms": str(int(range_s * 1000)),
    }


Value = Union[str, Option, Sequence[str]]


def format_value(value: Value, fmt: Optional[str] = None) -> str:
    """A variable's value as Grafana's Prometheus data source writes it into a query: a
    single value as is, several as a regex alternation ``(a|b)`` of escaped values; with
    the ``text`` format, an option's text."""
    if isinstance(value, Option):
        return value.text if fmt == "text" else value.value
    if isinstance(value, str):
        return value
    if fmt == "text":
        return " + ".join(value)
    values = list(value)
    if fmt == "csv":
        return ",".join(values)
    if len(values) == 1:
        return re.escape(values[0])
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def substitute(text: str, values: Mapping[str, Value],
               interval_s: float = 15, scrape_s: float = 15, range_s: float = 3600) -> str:
    """``text`` with every variable replaced; ``KeyError`` for a variable not in ``values``
    and not a built-in."""
    known: Dict[str, Value] = {**builtins(interval_s, scrape_s, range_s), **values}

    def repl(m: "re.Match[str]") -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name.isdigit() and m.group(1):
            return m.group(0)          # a regex backreference ($1), not a variable
        if name not in known:
            raise KeyError(f"unknown variable ${name} in {text!r}")
        return format_value(known[name], fmt)

    out = _VARIABLE.sub(repl, text)
    if re.search(r"\$(?!\d)", out):
        raise KeyError(f"unexpanded '$' left in {out!r}")
    return out


# --------------------------------------------------------------- running a dashboard's queries
def query_series(server: Any, expr: str, instant: bool, at: float, range_s: float = 20,
                 step_s: float = 1) -> List[Dict[str, Any]]:
    """``[{"metric": labels, "values": [floats]}]`` of an instant query at ``at``, or of a
    range query over the ``range_s`` seconds before it, through ``server.api`` (any engine
    serving Prometheus' HTTP API)."""
    if instant:
        data = server.api("query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] == "vector", expr
        return [{"metric": r["metric"], "values": [float(r["value"][1])]}
                for r in data["result"]]
    data = server.api("query_range", query=expr, start=f"{at - range_s:.3f}",
                      end=f"{at:.3f}", step=str(step_s))
    assert data["resultType"] == "matrix", expr
    return [{"metric": r["metric"], "values": [float(v) for _, v in r["values"]]}
            for r in data["result"]]


def has_data(series: List[Dict[str, Any]]) -> bool:
    """Whether any series has a finite value."""
    return any(math.isfinite(v) for s in series for v in s["values"])


def combinations(server: Any, dashboard: Mapping[str, Any], at: float,
                 optional: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Every combination of the dashboard's variable values, as Grafana resolves them: query
    variables through ``/api/v1/series`` in dashboard order (a later variable's query uses
    the earlier ones' values; a multi-value variable with All takes its ``allValue``, unless
    rows repeat over it: then, as Grafana's repeated rows, each of its values), custom
    variables each of their options. A variable of ``optional`` that finds nothing takes
    None (Grafana's empty variable, substituted as ""); any other must find values."""
    repeated = {p.get("repeat") for p in dashboard.get("panels", []) if p.get("repeat")}
    combos: List[Dict[str, Any]] = [{}]
    for name, v in variables(dashboard).items():
        if name == "datasource":
            continue
        nxt = []
        for c in combos:
            if v["type"] == "custom":
                values: List[Any] = list(custom_options(v))
            else:
                known = {k: ("" if x is None else x) for k, x in c.items()}
                selector, label = label_values(substitute(variable_query(v), known))
                found = server.api("series", **{"match[]": selector or '{__name__=~".+"}',
                                                "start": f"{at - 60:.3f}", "end": f"{at:.3f}"})
                values = sorted({s[label] for s in found if label in s})
                if not values and name in optional:
                    values = [None]
                assert values, f"variable {name}: {variable_query(v)} found nothing"
                if v.get("multi") and name not in repeated:
                    values = [v["allValue"]] if v.get("includeAll") else [values]
            nxt.extend({**c, name: val} for val in values)
        combos = nxt
    return combos


def row_applies(row: Optional[str], kind: Optional[str]) -> bool:
    """Whether a panel of ``row`` applies to a feature or output of ``kind`` (``numeric`` /
    ``categorical``): panels of a "Numeric ..." or "Categorical ..." row to that kind only."""
    if row is None or kind is None:
        return True
    if row.startswith("Numeric"):
        return kind == "numeric"
    if row.startswith("Categorical"):
        return kind == "categorical"
    return True


def queries_without_data(server: Any, dashboard: Mapping[str, Any],
                         combos: Sequence[Mapping[str, Any]], at: float,
                         applies: Any, range_s: float = 20, step_s: float = 1,
                         alerts_at: Optional[float] = None) -> Tuple[int, List[Any]]:
    """Run every target of ``dashboard`` for every combination ``applies(row, panel, target,
    combo)`` accepts (instant targets at ``at``, range targets over the ``range_s`` before
    it; those reading ``ALERTS`` at ``alerts_at`` if given); return how many ran and
    ``(panel title, refId, combination, query)`` of those that returned no data."""
    ran, empty = 0, []
    for row, panel in rows(dashboard):
        for t in panel.get("targets", []):
            applicable = [c for c in combos if applies(row, panel, t, c)]
            assert applicable, (panel["title"], t["refId"])
            when = alerts_at if alerts_at is not None and "ALERTS" in t["expr"] else at
            for c in applicable:
                values = {k: ("" if v is None else v) for k, v in c.items()}
                expr = substitute(t["expr"], values, interval_s=step_s, scrape_s=step_s,
                                  range_s=range_s)
                if not has_data(query_series(server, expr, t["instant"], when, range_s,
                                             step_s)):
                    empty.append((panel["title"], t["refId"], c, expr))
                ran += 1
    return ran, empty
