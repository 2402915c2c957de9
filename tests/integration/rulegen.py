"""A fast copy of promql/rules.yml and promql/alerts.yml for tests and benchmarks.

Production windows (5m, 1h) and pending durations (15m ...) would make a test wait an hour.
:func:`fast_rules` writes copies in which

- every range selector ``[5m]`` / ``[1h]`` becomes the window given in ``windows``
  (default 15s and 60s: with a 1 s scrape interval the "1h" statistics then cover the last
  minute of traffic),
- every alert's ``for:`` becomes ``pending`` (default 3s),
- group-level ``interval:`` settings are dropped (the baseline group's 1m), so every group
  runs at the test Prometheus' global evaluation interval,
- ``promdrift:config:*`` thresholds can be overridden (``config={"min_samples": 100}``).

Rule and alert names are unchanged (``...:1h`` still names the longer window), so queries
and alert expressions are exactly the production ones. Any range selector not listed in
``windows`` is an error, so a new window in rules.yml cannot silently keep its length here.

    paths = fast_rules(tmpdir, windows={"5m": "10s", "1h": "30s"}, pending="2s",
                       config={"min_samples": 100})
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping, Optional

import yaml

PROMQL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "promql")
RULE_FILES = ("rules.yml", "alerts.yml")
DEFAULT_WINDOWS = {"5m": "15s", "1h": "60s"}

_RANGE = re.compile(r"\[(\w+)\]")


def _rewrite_expr(expr: str, windows: Mapping[str, str]) -> str:
    def repl(m: "re.Match[str]") -> str:
        if m.group(1) not in windows:
            raise ValueError(f"range selector [{m.group(1)}] has no fast window: {expr!r}")
        return f"[{windows[m.group(1)]}]"
    return _RANGE.sub(repl, expr)


def fast_rules(outdir: str, windows: Optional[Mapping[str, str]] = None,
               pending: str = "3s", config: Optional[Mapping[str, float]] = None,
               promql_dir: str = PROMQL_DIR) -> List[str]:
    """Write the fast copies of rules.yml and alerts.yml into ``outdir``; return their paths."""
    windows = dict(DEFAULT_WINDOWS if windows is None else windows)
    overrides: Dict[str, float] = {f"promdrift:config:{k}": float(v)
                                   for k, v in (config or {}).items()}
    os.makedirs(outdir, exist_ok=True)
    paths = []
    seen_config = set()
    for name in RULE_FILES:
        with open(os.path.join(promql_dir, name)) as f:
            doc = yaml.safe_load(f)
        for group in doc["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                rule["expr"] = _rewrite_expr(rule["expr"], windows)
                if "alert" in rule and "for" in rule:
                    rule["for"] = pending
                if rule.get("record") in overrides:
                    rule["expr"] = f"vector({overrides[rule['record']]!r})"
                    seen_config.add(rule["record"])
        path = os.path.join(outdir, name)
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False, width=1000)
        paths.append(path)
    unknown = set(overrides) - seen_config
    if unknown:
        raise ValueError(f"no such config rule(s): {sorted(unknown)}")
    return paths
