"""promdrift: detect machine-learning model drift in production with Prometheus.

    >>> from promdrift import Baseline, DriftMonitor
    >>> baseline = Baseline.fit({"age": [23, 35, 41, 58], "plan": ["a", "b", "a", "c"]},
    ...                         model="churn", bins=2)
    >>> monitor = DriftMonitor(baseline, registry=None)
    >>> monitor.observe({"age": 40, "plan": "z"})
    >>> monitor.sample("promdrift_feature_category_total", feature="plan", category="__other__")
    1.0

Every name is imported on first use (PEP 562): ``import promdrift`` loads this module only.
``Baseline`` loads the training side (numpy), ``DriftMonitor`` the counting core (numpy,
prometheus_client), ``LabelStore`` the label store (sqlite3), ``DataCapture`` the capture
writer, ``ExporterClient`` the exporter's client (requests: ``pip install
'promdrift[client]'``). ``__version__`` is the installed distribution's version
(``importlib.metadata``), written once, in pyproject.toml.

The code lives in the folders ``instrumentation/`` (``promdrift.instrumentation``),
``exporter/``, ``promql/`` and ``grafana/``; docs/architecture.md draws its layers.
"""

from ._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any, List

    from .exporter.client import ExporterClient
    from .instrumentation.capture.writer import DataCapture
    from .instrumentation.counting.monitor import DriftMonitor
    from .instrumentation.outcomes.quality import LabelStore
    from .instrumentation.training.baseline import Baseline
    from .instrumentation.training.checks import BaselineWarning
    from .instrumentation.training.columns import BaselineError

__all__ = ["Baseline", "BaselineError", "BaselineWarning", "DriftMonitor", "DataCapture",
           "LabelStore", "ExporterClient", "__version__"]

_EXPORTS = {
    "Baseline": ".instrumentation.training.baseline",
    "BaselineError": ".instrumentation.training.columns",
    "BaselineWarning": ".instrumentation.training.checks",
    "DriftMonitor": ".instrumentation.counting.monitor",
    "DataCapture": ".instrumentation.capture.writer",
    "LabelStore": ".instrumentation.outcomes.quality",
    "ExporterClient": ".exporter.client",
}
_getattr, _dir = _exports(__name__, _EXPORTS)


def __getattr__(name: str) -> "Any":
    if name == "__version__":
        from importlib.metadata import version
        value = globals()["__version__"] = version("promdrift")
        return value
    return _getattr(name)


__getattr__.exports = _EXPORTS  # type: ignore[attr-defined]


def __dir__() -> "List[str]":
    return sorted(set(_dir()) | {"__version__"})
