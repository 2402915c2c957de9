"""Rule sets that change the generated rules in one respect, so that benchmarks/rules.py can
measure a change before the generator (``promdrift.promql``) adopts it:

    .venv/bin/python benchmarks/rules.py --prometheus PATH --rules generated=generated \\
        --rules shared=variant:shared --rules slow=variant:generated@5m=1m

``variant:NAME[@WINDOW=INTERVAL,...]``: the structure NAME (below) with the generator's
options, and the given group intervals (``@5m=1m``: the 5m groups run once a minute). Rule
and alert names are the generated ones, and so are the alerts (they read the same rules).

- ``generated``: the generator's rules unchanged (to vary only the intervals).
- ``shared``: for every window, a group ``promdrift-<w>-increase`` records the per-``le``
  increase of the feature histograms summed across replicas
  (``model_feature_le:promdrift_feature_value_bucket:increase<w>``, one series per bucket);
  n, KS, its critical value and PSI of the drift group read it instead of computing
  ``increase()`` of the raw buckets three times. A rule of another group: the statistics lag
  the increase by up to one evaluation interval.
- ``shared-1h``: the same for the alert window only.
- ``bins``: for every window, a group ``promdrift-<w>-bins`` records the live count of every
  baseline bin (``model_feature_upper:promdrift_feature_value_bin:increase<w>``, the
  edge-sign join of PSI done once instead of twice); PSI reads it, KS and n read the raw
  buckets as generated. Lags like ``shared``.
- ``short``: one group ``promdrift-increase-1m`` (interval 1m) records the per-``le`` increase
  over 1m; every window's statistics sum it over the window (``sum_over_time``), so a long
  window reads one sample a minute per bucket instead of every scrape. Not exact: a sum of
  1m increases is not ``increase()`` over the window (extrapolation at every 1m boundary).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List

import yaml

from promdrift.promql import RulesConfig, alerts_yaml, recording_groups
from promdrift.promql.expr import FEATURE, Expressions, Kind, indent
from promdrift.promql.rules import Group, Rule, drift_rules

__all__ = ["VARIANTS", "write"]

INCREASE = "model_feature_le:promdrift_feature_value_bucket:increase{w}"
BINS = "model_feature_upper:promdrift_feature_value_bin:increase{w}"
SHORT = "1m"


class FromRecorded(Expressions):
    """Feature histograms read from a recorded per-``le`` increase: ``source(w, matchers)`` is
    the PromQL of that increase over window ``w``."""

    def __init__(self, config: RulesConfig, source: Callable[[str, str], str]) -> None:
        super().__init__(config)
        self.source = source

    def numeric_cumulative(self, k: Kind, w: str) -> str:
        if k is not FEATURE:
            return super().numeric_cumulative(k, w)
        return self.source(w, "")

    def numeric_count(self, k: Kind, w: str) -> str:
        if k is not FEATURE:
            return super().numeric_count(k, w)
        inf = self.source(w, 'le="+Inf"')
        return f"sum by ({self.by('model', k.key)}) ({inf})"


class BinsRecorded(Expressions):
    """PSI's live bin counts read from a recorded per-bin increase."""

    def live_bin_ratio(self, k: Kind, w: str) -> str:
        if k is not FEATURE:
            return super().live_bin_ratio(k, w)
        bins = BINS.format(w=w)  # n is their sum: both from the same evaluation
        return (f"clamp_min(\n"
                f"    {bins}\n"
                f"  / on ({self.by('model', k.key)}) group_left ()\n"
                f"    (sum by ({self.by('model', k.key)}) ({bins}) > 0),\n"
                f"  {self.num(self.t.psi_bin_floor)}\n"
                f")")

    def live_bin_count(self, k: Kind, w: str) -> str:
        """The numerator of ``Expressions.live_bin_ratio`` (the per-bin live counts), as a
        rule of its own; a copy kept here until the generator splits it out."""
        return (f"sum by ({self.by('model', k.key, 'upper')}) (\n"
                f"    (\n"
                f"      {indent(self.bin_edge_signs(k), 6)}\n"
                f"    )\n"
                f"  * on ({self.by('model', k.key, 'le')}) group_left\n"
                f"    {indent(self.numeric_cumulative(k, w), 4)}\n"
                f")")


def bins(config: RulesConfig) -> List[Group]:
    e = BinsRecorded(config)

    def bins_group(w: str) -> List[Group]:
        return [Group(f"promdrift-{w}-bins", [
            Rule(e.live_bin_count(FEATURE, w), BINS.format(w=w))], config.interval(w))]
    return _with_drift(config, e, list(config.windows), bins_group)


def _selector(name: str, matchers: str) -> str:
    return f"{name}{{{matchers}}}" if matchers else name


def _with_drift(config: RulesConfig, e: Expressions, windows: List[str],
                before: Callable[[str], List[Group]]) -> List[Group]:
    """The generated groups, with the drift groups of ``windows`` built from ``e`` and the
    groups ``before(w)`` inserted ahead of them."""
    out = []
    for g in recording_groups(config):
        w = g.name[len("promdrift-"):]
        if w in windows:
            out += before(w)
            g = Group(g.name, drift_rules(e, w), g.interval, g.doc)
        out.append(g)
    return out


def shared(config: RulesConfig, windows: List[str]) -> List[Group]:
    raw = Expressions(config)
    e = FromRecorded(config, lambda w, m: _selector(INCREASE.format(w=w), m))

    def increase_group(w: str) -> List[Group]:
        return [Group(f"promdrift-{w}-increase", [
            Rule(raw.numeric_cumulative(FEATURE, w), INCREASE.format(w=w))],
            config.interval(w))]
    return _with_drift(config, e, windows, increase_group)


def short(config: RulesConfig) -> List[Group]:
    raw = Expressions(config)
    name = INCREASE.format(w=SHORT)
    e = FromRecorded(config,
                     lambda w, m: f"sum_over_time({_selector(name, m)}[{config.range(w)}])")
    groups = _with_drift(config, e, list(config.windows), lambda w: [])
    return [Group(f"promdrift-increase-{SHORT}", [
        Rule(raw.numeric_cumulative(FEATURE, SHORT), name)], SHORT)] + groups


VARIANTS: Dict[str, Callable[[RulesConfig], List[Group]]] = {
    "generated": recording_groups,
    "shared": lambda c: shared(c, list(c.windows)),
    "shared-1h": lambda c: shared(c, [c.alert_window]),
    "bins": bins,
    "short": short,
}


def write(spec: str, outdir: str) -> List[str]:
    """Write ``rules.yml`` and ``alerts.yml`` of variant ``spec`` into ``outdir``."""
    name, _, intervals = spec.partition("@")
    if name not in VARIANTS:
        raise SystemExit(f"variant {name!r}: not one of {', '.join(VARIANTS)}")
    config = RulesConfig()
    if intervals:
        config = config.replace(intervals=dict(p.split("=", 1) for p in intervals.split(",")))
    groups = VARIANTS[name](config)
    os.makedirs(outdir, exist_ok=True)
    paths = [os.path.join(outdir, "rules.yml"), os.path.join(outdir, "alerts.yml")]
    with open(paths[0], "w") as f:
        yaml.safe_dump({"groups": [g.as_dict() for g in groups]}, f, sort_keys=False, width=200)
    with open(paths[1], "w") as f:
        f.write(alerts_yaml(config))
    return paths
