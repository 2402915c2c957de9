"""Fast rule files for tests, benchmarks and the demo, from the generator's own options.

Production windows (5m, 1h) and pending durations (15m ...) would make a test wait an hour.
:func:`fast_rules` asks ``promdrift.promql`` for rule files in which

- every window's range selector is the one given in ``windows`` (default 15s for "5m" and
  60s for "1h": with a 1 s scrape interval the "1h" statistics cover the last minute),
- every alert's ``for:`` is ``pending`` (default 3s),
- every group runs at the evaluating engine's global interval (no group ``interval:``),
- thresholds can be overridden (``config={"min_samples": 100}``), as ``--set`` does.

Rule and alert names are unchanged (``...:1h`` still names the longer window), so queries and
alert expressions are exactly the production ones. ``rules_config`` returns the
:class:`~promdrift.promql.RulesConfig` itself, for tests that need its expressions.

    paths = fast_rules(tmpdir, windows={"5m": "10s", "1h": "30s"}, pending="2s",
                       config={"min_samples": 100})
"""

from __future__ import annotations

import os
from typing import Any, List, Mapping, Optional, Sequence

from promdrift.promql import RulesConfig

from .generated import FAST_RANGES, PENDING, fast_config, write_rules

RULE_FILES = ("rules.yml", "alerts.yml")
DEFAULT_WINDOWS = FAST_RANGES


def rules_config(windows: Optional[Mapping[str, str]] = None, pending: str = PENDING,
                 config: Optional[Mapping[str, Any]] = None,
                 keep_labels: Sequence[str] = (), selector: str = "") -> RulesConfig:
    """The generator options of the fast rules (``generated.fast_config``)."""
    windows = dict(DEFAULT_WINDOWS if windows is None else windows)
    return fast_config(windows=tuple(windows), ranges=windows, pending={"*": pending},
                       intervals={w: None for w in windows}, thresholds=dict(config or {}),
                       keep_labels=tuple(keep_labels), selector=selector)


def fast_rules(outdir: str, windows: Optional[Mapping[str, str]] = None,
               pending: str = PENDING, config: Optional[Mapping[str, Any]] = None,
               keep_labels: Sequence[str] = (), selector: str = "") -> List[str]:
    """Write the fast rules.yml and alerts.yml into ``outdir``; return their paths."""
    os.makedirs(outdir, exist_ok=True)
    return write_rules(rules_config(windows, pending, config, keep_labels, selector), outdir)
