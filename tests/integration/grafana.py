"""Reading grafana/dashboards/*.json the way Grafana does, for the dashboard tests.

    dash = load_dashboards()["promdrift-feature.json"]
    for panel, target in targets(dash):
        expr = substitute(target["expr"], {"model": "penguins", "feature": "island",
                                           "window": "1h"}, interval_s=1, scrape_s=1)

:func:`substitute` expands dashboard variables (``$name``, ``${name}``, ``${name:fmt}``,
``[[name]]``) and Grafana's built-in time variables (``$__interval``, ``$__rate_interval``,
``$__range`` ...) and raises ``KeyError`` for any variable it was not given, so a query can
never reach Prometheus with a ``$`` left in it. :func:`label_values` parses the
``label_values(...)`` query of a query variable.
"""

from __future__ import annotations

import glob
import json
import os
import re
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


def load_dashboards(directory: str = DASHBOARDS) -> Dict[str, Dict[str, Any]]:
    """Every ``*.json`` of ``directory`` by file name, parsed."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            out[os.path.basename(path)] = json.load(f)
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


def format_value(value: Union[str, Sequence[str]], fmt: Optional[str] = None) -> str:
    """A variable's value as Grafana's Prometheus data source writes it into a query: a
    single value as is, several as a regex alternation ``(a|b)`` of escaped values."""
    if isinstance(value, str):
        return value
    values = list(value)
    if fmt == "csv":
        return ",".join(values)
    if len(values) == 1:
        return re.escape(values[0])
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def substitute(text: str, values: Mapping[str, Union[str, Sequence[str]]],
               interval_s: float = 15, scrape_s: float = 15, range_s: float = 3600) -> str:
    """``text`` with every variable replaced; ``KeyError`` for a variable not in ``values``
    and not a built-in."""
    known: Dict[str, Union[str, Sequence[str]]] = {
        **builtins(interval_s, scrape_s, range_s), **values}

    def repl(m: "re.Match[str]") -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name not in known:
            raise KeyError(f"unknown variable ${name} in {text!r}")
        return format_value(known[name], fmt)

    out = _VARIABLE.sub(repl, text)
    if "$" in out:
        raise KeyError(f"unexpanded '$' left in {out!r}")
    return out
