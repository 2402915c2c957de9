"""Rules and dashboards generated for tests: the production text over windows of seconds.

    config = fast_config(keep_labels=["cluster"], thresholds={"min_samples": 100})
    rule_files = write_rules(config, f"{workdir}/rules")     # rules.yml, alerts.yml
    boards = generated(config)                               # (grafana.py) its dashboards
    demo = fast_config(ranges={"5m": "30s", "1h": "60s"}, pending={"*": "10s"})

:func:`fast_config` is a :class:`promdrift.promql.RulesConfig` whose windows keep their names
(``...:5m`` and ``...:1h`` rules) but cover :data:`FAST_RANGES` (15 s and 60 s: with a 1 s
scrape interval the "1h" statistics cover the last minute of traffic), whose groups all run
at the engine's global evaluation interval, and whose alerts are pending for
:data:`PENDING`. Everything else (expressions, thresholds, names) is what ``promdrift rules``
generates for users; the dashboards of the same configuration read these rules, their
``window`` variable pairing each window's name with its range.

This is the one place that configures fast rule files for the tests: the integration tests
on every engine (engines.py) and the rule benchmark (benchmarks/rules.py) use it.
:func:`write_rules` is ``promdrift trial``'s (``promdrift.exporter.trial``), which the demo
(demo/run.py, which runs without tests/) uses too.
"""

from __future__ import annotations

from typing import Any

from promdrift.exporter.trial import write_rules  # noqa: F401 (re-exported for the tests)
from promdrift.promql import RulesConfig

FAST_RANGES = {"5m": "15s", "1h": "60s"}
PENDING = "3s"


def fast_config(**options: Any) -> RulesConfig:
    """The options, over :data:`FAST_RANGES` and :data:`PENDING` unless given; every
    window's groups run at the global evaluation interval unless ``intervals`` says
    otherwise."""
    ranges = dict(options.pop("ranges", FAST_RANGES))
    defaults = {"ranges": ranges, "intervals": {w: None for w in ranges},
                "pending": {"*": PENDING}}
    return RulesConfig(**{**defaults, **options})
