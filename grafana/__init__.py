"""promdrift's Grafana dashboards, built in Python with Grafana's own SDK.

    >>> from promdrift.promql import RulesConfig
    >>> from promdrift.grafana import dashboards
    >>> boards = dashboards(RulesConfig(keep_labels=["cluster"]))
    >>> sorted(boards)
    ['promdrift-feature', 'promdrift-outcomes', 'promdrift-overview', 'promdrift-predictions']
    >>> [v["name"] for v in boards["promdrift-feature"]["templating"]["list"]]
    ['datasource', 'cluster', 'model', 'baseline', 'feature', 'window']

Each dashboard is a function of a :class:`promdrift.promql.RulesConfig`: its ``window``
variable lists the configured windows, its kept labels become variables that every query
filters by, its queries read the recording rules that configuration generates (checked when
the dashboard is built) or, for what no rule records (bin and category shares, CDFs), the
same PromQL fragments the rules are built from, and its threshold lines are the
configuration's thresholds. ``promdrift rules -o DIR`` writes them to ``DIR/dashboards/``
(``promdrift.promql.generator``); ``grafana/dashboards/*.json`` are those of the default
configuration, never edited by hand.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .build import BUILDERS, dashboards

__all__ = ["dashboards", "BUILDERS"]

__getattr__, __dir__ = _exports(__name__, {"dashboards": ".build", "BUILDERS": ".build"})
