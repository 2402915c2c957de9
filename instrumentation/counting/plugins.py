"""What plugs into a ``DriftMonitor``: data capture and the outcome monitors (labels, facets,
attributions) are :class:`Plugin` objects that see every ``observe`` call and count into
:class:`~promdrift.instrumentation.counting.store.Block` stores of the monitor's kind, so their
families are rendered by the one renderer and are exact across worker processes.

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> class Rows(Plugin):
    ...     name = "rows"
    ...     def bind(self, monitor):
    ...         super().bind(monitor)
    ...         self.seen = 0
    ...     def observe(self, call):
    ...         self.seen += call.n
    >>> m = DriftMonitor(Baseline.fit({"x": [1.0, 2.0]}, bins=2), registry=None)
    >>> rows = m.use(Rows())
    >>> m.observe([{"x": 1.0}, {"x": 3.0}])
    >>> rows.seen
    2

``DriftMonitor.observe`` counts the drift families first, then hands each plugin the same
:class:`Call` (rows, predictions, ids and attributions, each split per row once, on first
use). A plugin's ``observe`` must not raise (the monitor counts an error if it does) and
should be cheap: it runs in the request.

A label joins its prediction later (``record_label``): a plugin that wants to count labels
keeps what it needs with the prediction through :meth:`Plugin.remember` and gets it back
with the classes of the join in :meth:`Plugin.joined` (the facets do this).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

from ..values import is_batch

__all__ = ["Plugin", "Call"]


class Call:
    """One ``observe`` call, split per row on demand (``rows``, ``outputs``, ``ids``,
    ``attributions``), so that every plugin sees the same reading of it.

        >>> c = Call(None, [{"x": 1}, {"x": 2}], [0.5, 0.7], ["a", "b"], None)
        >>> c.batch, c.n, c.ids
        (True, 2, ['a', 'b'])
    """

    __slots__ = ("monitor", "features", "prediction", "inference_id", "attributions_given",
                 "batch", "_rows", "_outputs")

    def __init__(self, monitor: Any, features: Any, prediction: Any, inference_id: Any,
                 attributions: Any):
        self.monitor = monitor
        self.features = features
        self.prediction = prediction
        self.inference_id = inference_id
        self.attributions_given = attributions
        self.batch = is_batch(features)
        self._rows: Optional[List[Any]] = None
        self._outputs: Optional[List[Dict[str, Any]]] = None

    @property
    def rows(self) -> List[Any]:
        """The rows (one for a single inference)."""
        if self._rows is None:
            self._rows = list(self.features) if self.batch else [self.features]
        return self._rows

    @property
    def n(self) -> int:
        return len(self.rows)

    def _per_row(self, value: Any, what: str) -> List[Any]:
        if not self.batch:
            return [value]
        values = list(value)
        if len(values) != self.n:
            raise ValueError(f"{len(values)} {what} for {self.n} rows")
        return values

    @property
    def outputs(self) -> List[Dict[str, Any]]:
        """``{output: value}`` of each row's prediction (empty without a prediction)."""
        if self._outputs is None:
            if self.prediction is None:
                self._outputs = [{}] * self.n
            else:
                names = self.monitor.baseline.prediction_names
                out = []
                for p in self._per_row(self.prediction, "predictions"):
                    prow = self.monitor._prediction_row(p)
                    if prow is None:
                        out.append({})
                    elif isinstance(prow, Mapping):
                        out.append({o: prow[o] for o in names if o in prow})
                    else:
                        out.append(dict(zip(names, prow)))
                self._outputs = out
        return self._outputs

    @property
    def ids(self) -> List[Any]:
        """Each row's inference id (``None`` without ids)."""
        if self.inference_id is None:
            return [None] * self.n
        return self._per_row(self.inference_id, "inference ids")

    @property
    def attributions(self) -> List[Any]:
        """Each row's attributions (``None`` without them)."""
        if self.attributions_given is None:
            return [None] * self.n
        return self._per_row(self.attributions_given, "attribution rows")


class Plugin:
    """Base class of what plugs into a monitor (``DriftMonitor.use``); every method has a
    do-nothing default.

    - :meth:`bind` is called once by ``use``: build the plugin's blocks there, with stores of
      the monitor's kind (``monitor.store.sibling(block)``).
    - :meth:`observe` sees every ``observe`` call of the monitor.
    - :meth:`exposed` lists ``(plan, store)`` pairs the monitor's ``/metrics`` renders;
      :meth:`scrape_samples` samples computed at scrape (gauges); :meth:`flush` runs first.
    - :meth:`remember` / :meth:`joined`: what to keep with a prediction until its label.
    - :meth:`startup` / :meth:`shutdown` when the server starts and stops (the ASGI
      lifespan); :meth:`close` when the monitor closes.
    """

    name = "plugin"
    monitor: Any = None

    def bind(self, monitor: Any) -> None:
        self.monitor = monitor

    def observe(self, call: Call) -> None:
        pass

    def exposed(self) -> List[Tuple[Any, Any]]:
        return []

    def scrape_samples(self) -> List[Tuple[str, str, Tuple[Tuple[str, str], ...], float]]:
        return []

    def remember(self, call: Call, i: int) -> Any:
        return None

    def joined(self, memory: Any, classes: Dict[str, Tuple[int, int]]) -> None:
        pass

    def flush(self) -> None:
        pass

    def startup(self) -> None:
        pass

    def shutdown(self) -> None:
        self.flush()

    def close(self) -> None:
        pass
