"""promdrift instrumentation: fit a baseline on training data, count serving traffic against it.

    >>> from promdrift.instrumentation import Baseline, DriftMonitor

The names below are imported on first use (PEP 562), so importing a leaf module such as
``promdrift.instrumentation.values`` loads only that module. The code is cut by concept
(docs/architecture.md):

- leaf modules everyone uses: ``values`` (the value rules), ``binning``, ``spec`` (the
  statistics and thresholds), ``files``;
- ``training``: the baseline (``Baseline``), its columns, checks and CSV reader, the
  multivariate models and the outcomes' reference values;
- ``counting``: ``DriftMonitor``, the counter store and its multiprocess files, derived
  features, the plugin base, the exposition (``/metrics``);
- ``outcomes``: labels and quality, bias, attributions (plugins of the monitor);
- ``capture``: the capture writer (a plugin) and reader;
- ``web``: Flask and ASGI integrations, ``track``, the landing page; ``gunicorn`` and
  ``uvicorn`` stay here, at the module paths their command lines name
  (``gunicorn -c python:promdrift.instrumentation.gunicorn``,
  ``python -m promdrift.instrumentation.uvicorn``).
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from promdrift import __version__
    from .capture.writer import DataCapture
    from .counting.exposition import (collector_for, make_asgi_app, make_wsgi_app,
                                      metrics_text, start_http_server)
    from .counting.monitor import DriftMonitor
    from .counting.store import CounterStore, Layout
    from .outcomes.quality import LabelStore
    from .training.baseline import SCHEMA_VERSION, Baseline
    from .training.checks import BaselineWarning
    from .training.columns import OTHER, BaselineError, CategoricalColumn, NumericColumn
    from .values import REASONS
    from .web.landing import landing_page

__all__ = [
    "Baseline",
    "BaselineError",
    "BaselineWarning",
    "CategoricalColumn",
    "NumericColumn",
    "DriftMonitor",
    "CounterStore",
    "Layout",
    "REASONS",
    "OTHER",
    "SCHEMA_VERSION",
    "collector_for",
    "metrics_text",
    "make_wsgi_app",
    "make_asgi_app",
    "start_http_server",
    "landing_page",
    "LabelStore",
    "DataCapture",
    "__version__",
]

__getattr__, __dir__ = _exports(__name__, {
    "Baseline": ".training.baseline",
    "SCHEMA_VERSION": ".training.baseline",
    "BaselineError": ".training.columns",
    "CategoricalColumn": ".training.columns",
    "NumericColumn": ".training.columns",
    "OTHER": ".training.columns",
    "BaselineWarning": ".training.checks",
    "DriftMonitor": ".counting.monitor",
    "CounterStore": ".counting.store",
    "Layout": ".counting.store",
    "REASONS": ".values",
    "collector_for": ".counting.exposition",
    "metrics_text": ".counting.exposition",
    "make_wsgi_app": ".counting.exposition",
    "make_asgi_app": ".counting.exposition",
    "start_http_server": ".counting.exposition",
    "landing_page": ".web.landing",
    "LabelStore": ".outcomes.quality",
    "DataCapture": ".capture.writer",
    "__version__": "promdrift",
})
