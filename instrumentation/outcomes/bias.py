"""Bias drift: per-group prediction (and label) counters for configured facets.

A *facet* is a categorical feature such as a group column; its *groups* are the baseline's
top-K categories plus ``__other__``. For every categorical prediction output, the monitor
counts predictions per (facet, group, class) at ``observe`` time and, once labels arrive,
actual classes and true positives per (facet, group, class). The recording rules turn them
into the difference between a group and all other groups of

- the share of predictions of a class (``dppl``, SageMaker Clarify's "difference in positive
  proportions in predicted labels" with the class as the positive one), and
- the recall of a class (``recall_difference``),

and the alert compares them with the same values on validation data
(``Baseline.with_bias``, computed by ``promdrift.instrumentation.training.references``).

    >>> from promdrift.instrumentation import Baseline
    >>> b = Baseline.fit({"g": ["a", "b"], "y": ["p", "n"]}, predictions="y")
    >>> counters = BiasCounters(b, ["g"])
    >>> counters.count_predictions({"g": "a"}, {"y": "p"})
    >>> counters.predictions("g", "y").tolist()    # rows: groups a, b, __other__
    [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..counting.exposition import BlockPlan
from ..counting.plugins import Call, Plugin
from ..counting.store import Block, Labels
from ..training.columns import CategoricalColumn
from ..values import category

__all__ = ["BiasCounters", "FacetTracker"]


class BiasCounters:
    """Per (facet, group, class) counts of predictions, actual classes and true positives,
    in a block of counter slots kept in ``store``.

        >>> from promdrift.instrumentation import Baseline
        >>> b = Baseline.fit({"g": ["a", "b"], "y": ["p", "n"]}, predictions="y")
        >>> bc = BiasCounters(b, ["g"])
        >>> bc.count_predictions({"g": "a"}, {"y": "p"})
        >>> int(bc.predictions("g", "y")[0, 1])   # group a (index 0), class p (index 1)
        1
    """

    def __init__(self, baseline: Any, facets: Sequence[str], labels: Optional[Labels] = None,
                 store: Optional[Callable[[Block], Any]] = None):
        from ..counting.store import CounterStore
        self.facets: Dict[str, CategoricalColumn] = {}
        for name in facets:
            col = baseline.feature(name) if name in baseline.feature_names else None
            if not isinstance(col, CategoricalColumn):
                raise ValueError(f"facet {name!r} must be a categorical feature of the "
                                 f"baseline of {baseline.model!r}")
            self.facets[name] = col
        self.outputs: Dict[str, CategoricalColumn] = {
            c.name: c for c in baseline.predictions if isinstance(c, CategoricalColumn)}
        if not self.outputs:
            raise ValueError(f"model {baseline.model!r}: bias needs a categorical prediction "
                             f"output in the baseline")
        base = (("model", baseline.model),) if labels is None else tuple(labels)
        self.block = b = Block("bias", baseline.model, baseline.digest, base)
        #: first slot of each (facet, output) table; tables are (groups, classes), row-major,
        #: predictions then labels then true positives
        self._first: Dict[Tuple[str, str], int] = {}
        families = ("promdrift_bias_predictions", "promdrift_bias_labels",
                    "promdrift_bias_true_positives")
        for f, fc in self.facets.items():
            for o, oc in self.outputs.items():
                groups, classes = fc.labels, oc.labels
                size = len(groups) * len(classes)
                first = self._first[f, o] = b.slots(3 * size)
                for t, family in enumerate(families):
                    for gi, g in enumerate(groups):
                        for ci, c in enumerate(classes):
                            b.expose(family, "_total", (("facet", f), ("group", g),
                                                        ("output", o), ("class", c)),
                                     first + t * size + gi * len(classes) + ci)
        for f in self.facets:
            entry = baseline.bias.get(f)
            if not entry or entry.get("output") not in self.outputs:
                continue
            for metric in ("dppl", "recall_difference"):
                for g, row in sorted(entry.get(metric, {}).items()):
                    for c, v in sorted(row.items()):
                        b.constant("promdrift_baseline_bias", "", (
                            ("facet", f), ("group", g), ("output", entry["output"]),
                            ("class", c), ("metric", metric)), v)
        self.plan = BlockPlan(b)
        self.store = (store or CounterStore)(b)

    def _table(self, facet: str, output: str, which: int) -> np.ndarray:
        groups = len(self.facets[facet].categories) + 1
        classes = len(self.outputs[output].categories) + 1
        start = self._first[facet, output] + which * groups * classes
        return self.store.snapshot()[start:start + groups * classes].reshape(
            groups, classes).astype(np.int64)

    def predictions(self, facet: str, output: str) -> np.ndarray:
        """Predictions per (group, class) of a facet and an output."""
        return self._table(facet, output, 0)

    def _slot(self, facet: str, output: str, which: int, gi: int, ci: int) -> int:
        classes = len(self.outputs[output].categories) + 1
        groups = len(self.facets[facet].categories) + 1
        return self._first[facet, output] + which * groups * classes + gi * classes + ci

    def groups(self, row: Any, positions: Dict[str, int]) -> Dict[str, Optional[str]]:
        """``{facet: category key}`` of a row (a mapping, or a sequence in baseline order)."""
        out = {}
        for f in self.facets:
            v = row.get(f) if isinstance(row, Mapping) else row[positions[f]]
            out[f] = category(v)[1]
        return out

    def count_predictions(self, groups: Dict[str, Any], prediction: Dict[str, Any]) -> None:
        """One inference: ``groups`` ``{facet: value}``, ``prediction`` ``{output: value}``."""
        slots = []
        cls = [(o, c.index(prediction.get(o))) for o, c in self.outputs.items()
               if o in prediction]
        for f, c in self.facets.items():
            gi = c.index(groups.get(f))
            if gi is None:
                continue
            slots += [self._slot(f, o, 0, gi, ci) for o, ci in cls if ci is not None]
        if slots:
            self.store.add(slots)

    def count_labels(self, groups: Dict[str, Any], classes: Dict[str, Tuple[int, int]]) -> None:
        """One joined label: ``classes`` ``{output: (actual, predicted)}`` class indices."""
        slots = []
        for f, c in self.facets.items():
            gi = c.index(groups.get(f))
            if gi is None:
                continue
            for o, (a, p) in classes.items():
                if (f, o) in self._first:
                    slots.append(self._slot(f, o, 1, gi, a))
                    if a == p:
                        slots.append(self._slot(f, o, 2, gi, a))
        if slots:
            self.store.add(slots)


class FacetTracker(Plugin):
    """Counts predictions (and, with ``LabelTracker``, joined labels) per group of each facet
    (``DriftMonitor.track_facets`` builds one; default facets: the baseline's bias section).
    """

    name = "facets"

    def __init__(self, *facets: str):
        self.names = list(facets)

    def bind(self, monitor: Any) -> None:
        super().bind(monitor)
        names = self.names or sorted(monitor.baseline.bias)
        if not names:
            raise ValueError("name the facets (categorical features), or set them in the "
                             "baseline with Baseline.with_bias")
        self.counters = BiasCounters(monitor.baseline, names, monitor.plan_labels,
                                     monitor.store.sibling)
        self.facets = self.counters.facets
        self._positions = {n: i for i, n in enumerate(monitor.baseline.feature_names)}

    def observe(self, call: Call) -> None:
        if call.prediction is None:
            return
        for row, outs in zip(call.rows, call.outputs):
            self.counters.count_predictions(self.counters.groups(row, self._positions), outs)

    def remember(self, call: Call, i: int) -> Any:
        return self.counters.groups(call.rows[i], self._positions)

    def joined(self, memory: Any, classes: Dict[str, Tuple[int, int]]) -> None:
        self.counters.count_labels(memory, classes)

    def exposed(self) -> List[Tuple[Any, Any]]:
        return [(self.counters.plan, self.counters.store)]
