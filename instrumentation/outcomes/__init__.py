"""What happens after a prediction: ground-truth labels (model quality), per-group
predictions (bias) and feature attributions, for one ``DriftMonitor``.

Switch them on with the monitor's builder methods (each plugs one of
``quality.LabelTracker``, ``bias.FacetTracker``, ``attribution.AttributionTracker`` into the
monitor), then pass ``inference_id`` / ``attributions`` to ``observe`` and labels to
``record_label``::

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> b = Baseline.fit({"g": ["a", "b", "a", "b"], "y": ["n", "p", "n", "p"]},
    ...                  model="m", predictions="y")
    >>> monitor = (DriftMonitor(b, registry=CollectorRegistry())
    ...            .track_labels(":memory:").track_facets("g"))
    >>> monitor.observe({"g": "a"}, "p", inference_id="req-1")
    >>> monitor.record_label("req-1", "n")
    'matched'
    >>> monitor.record_label("req-1", "n")
    'duplicate'
    >>> monitor.sample("promdrift_quality_confusion_total", output="y", actual="n", predicted="p")
    1.0
    >>> monitor.close()

Their counters live in blocks of the monitor's counts store (exact across worker processes
with ``PROMDRIFT_MULTIPROC_DIR``). The exporter service accepts labels over HTTP with
:func:`labels_handler` (``labels``). The reference values a baseline holds for them
(``Baseline.with_quality``, ``with_bias``, ``with_attributions``) are computed by
``promdrift.instrumentation.training.references``, which needs neither SQLite nor threads.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .attribution import AttributionTracker
    from .bias import FacetTracker
    from .labels import MAX_LABELS_PER_REQUEST, labels_handler
    from .quality import LabelStore, LabelTracker

__all__ = ["labels_handler", "MAX_LABELS_PER_REQUEST", "LabelStore", "LabelTracker",
           "FacetTracker", "AttributionTracker"]

__getattr__, __dir__ = _exports(__name__, {
    "labels_handler": ".labels",
    "MAX_LABELS_PER_REQUEST": ".labels",
    "LabelStore": ".quality",
    "LabelTracker": ".quality",
    "FacetTracker": ".bias",
    "AttributionTracker": ".attribution",
})
