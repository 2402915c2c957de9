"""The raw-series queries of docs/runbook.md, built from the generator's own fragments.

The recording rules no longer record intermediate series (per-``le`` CDFs, per-bin and
per-category shares, confusion counts), so the runbook gives the queries that compute them
from promdrift's raw series: the same ``promdrift.promql.Expressions`` text the rules are
made of, narrowed to one model and column. ``tests/promql/test_rule_files.py`` checks that
each appears in the runbook and is evaluated by a promtool test::

    >>> print(query("baseline_unseen_share", model="m", feature="color"))
    max by (model, model_version, baseline, feature) (promdrift_baseline_feature_category{model="m", feature="color", category="__other__"})
    / on (model, model_version, baseline, feature)
    (sum by (model, model_version, baseline, feature) (max by (model, model_version, baseline, feature, category) (promdrift_baseline_feature_category{model="m", feature="color"})) > 0)
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Tuple

from promdrift.promql import Expressions, RulesConfig
from promdrift.promql.expr import FEATURE, OUTPUT, Kind, indent

WINDOW = "1h"


def cdf_difference(e: Expressions, k: Kind) -> str:
    """Live minus baseline CDF at every bucket edge (what the KS statistic maximises)."""
    return f"{e.live_cdf(k, WINDOW)}\n- on ({e.by('model', k.key, 'le')})\n{e.baseline_cdf(k)}"


def bin_share_change(e: Expressions, k: Kind) -> str:
    """Live minus baseline share of every baseline bin (what PSI weighs)."""
    return (f"{e.live_bin_ratio(k, WINDOW)}\n- on ({e.by('model', k.key, 'upper')})\n"
            f"{e.baseline_bin_ratio(k)}")


def share_change(e: Expressions, k: Kind) -> str:
    """Live minus baseline share of every category or class (what TVD sums)."""
    return (f"{e.category_ratio(k, WINDOW)}\n- on ({e.by('model', k.key, k.cat_label)})\n"
            f"{e.baseline_category_ratio(k)}")


#: name -> (placeholders of the runbook, builder)
QUERIES: Dict[str, Tuple[Dict[str, str], Callable[[Expressions], str]]] = {
    "feature_cdf_difference": ({"model": "MODEL", "feature": "FEATURE"},
                               lambda e: cdf_difference(e, FEATURE)),
    "output_cdf_difference": ({"model": "MODEL", "output": "OUTPUT"},
                              lambda e: cdf_difference(e, OUTPUT)),
    "feature_bin_share_change": ({"model": "MODEL", "feature": "FEATURE"},
                                 lambda e: bin_share_change(e, FEATURE)),
    "feature_category_share_change": ({"model": "MODEL", "feature": "FEATURE"},
                                      lambda e: share_change(e, FEATURE)),
    "facet_share_change": ({"model": "MODEL", "feature": "FACET"},
                           lambda e: share_change(e, FEATURE)),
    "output_class_share_change": ({"model": "MODEL", "output": "OUTPUT"},
                                  lambda e: share_change(e, OUTPUT)),
    "baseline_unseen_share": ({"model": "MODEL", "feature": "FEATURE"},
                              lambda e: e.baseline_unseen_ratio()),
    "confusion": ({"model": "MODEL", "output": "OUTPUT"}, lambda e: e.confusion(WINDOW)),
}


def query(name: str, **values: str) -> str:
    """The query ``name`` for the label ``values`` (default: the runbook's placeholders)."""
    placeholders, build = QUERIES[name]
    labels = {**placeholders, **values}
    return build(Expressions(RulesConfig(), [f'{k}="{v}"' for k, v in labels.items()]))


def as_runbook_text(name: str) -> str:
    """The query as the runbook writes it: continuation lines indented by two spaces."""
    return indent(query(name), 2)


def normal(text: str) -> str:
    """``text`` with every run of whitespace made one space."""
    return " ".join(text.split())


def pattern(name: str) -> "re.Pattern[str]":
    """A regex of the normalised query for any values of its placeholders."""
    text = re.escape(normal(query(name)))
    for value in QUERIES[name][0].values():
        text = text.replace(re.escape(f'"{value}"'), '"[^"]*"')
    return re.compile(text)
