"""promdrift instrumentation: fit a baseline on training data, count serving traffic against it.

    >>> from promdrift.instrumentation import Baseline, DriftMonitor
"""

from .baseline import (OTHER, SCHEMA_VERSION, Baseline, BaselineError, BaselineWarning,
                       CategoricalColumn, NumericColumn)
from .exposition import (collector_for, make_asgi_app, make_wsgi_app, metrics_text,
                         start_http_server)
from .landing import landing_page
from .monitor import DriftMonitor
from .store import REASONS, CounterStore, Layout

__version__ = "0.1.0"

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
    "__version__",
]
