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
(``promdrift.promql.generate``); ``grafana/dashboards/*.json`` are those of the default
configuration, never edited by hand.
"""

from typing import Any, Callable, Dict

from promdrift.promql.config import RulesConfig

from .feature import feature
from .outcomes import outcomes
from .overview import overview
from .predictions import predictions

__all__ = ["dashboards", "BUILDERS"]

#: Dashboard uid (also its file name) -> the function that builds it.
BUILDERS: Dict[str, Callable[[RulesConfig], Dict[str, Any]]] = {
    "promdrift-overview": overview,
    "promdrift-feature": feature,
    "promdrift-predictions": predictions,
    "promdrift-outcomes": outcomes,
}


def dashboards(config: RulesConfig) -> Dict[str, Dict[str, Any]]:
    """Every dashboard of ``config`` by uid, as Grafana JSON models (plain data)."""
    return {uid: build(config) for uid, build in BUILDERS.items()}
