"""Every dashboard of a configuration, by uid.

    >>> from promdrift.promql import RulesConfig
    >>> sorted(dashboards(RulesConfig()))
    ['promdrift-feature', 'promdrift-outcomes', 'promdrift-overview', 'promdrift-predictions']
"""

from __future__ import annotations

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
