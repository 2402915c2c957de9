"""Data capture: a random sample of the observed rows, written to rotating JSON Lines files
and read back (``writer``: ``DataCapture``, the plugin that feeds it from a monitor,
``read_capture``, ``CaptureFiles``).

    >>> import tempfile
    >>> from promdrift.instrumentation.capture import DataCapture, read_capture
    >>> directory = tempfile.mkdtemp()
    >>> capture = DataCapture(directory, sample_rate=1.0, registry=None)
    >>> capture.record({"age": 41}, 0.7, inference_id="req-1", model="churn")
    1
    >>> capture.close()
    >>> [(r["inference_id"], r["features"]) for r in read_capture(directory)]
    [('req-1', {'age': 41})]

See docs/capture.md.
"""

from __future__ import annotations

from promdrift._lazy import exports as _exports

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .writer import (DROP_REASONS, NONFINITE, CaptureFiles, CaptureTracker, DataCapture,
                         file_time, read_capture)

__all__ = ["DataCapture", "CaptureTracker", "read_capture", "CaptureFiles", "DROP_REASONS",
           "NONFINITE", "file_time"]

__getattr__, __dir__ = _exports(__name__, {
    "DataCapture": ".writer",
    "CaptureTracker": ".writer",
    "DROP_REASONS": ".writer",
    "read_capture": ".writer",
    "CaptureFiles": ".writer",
    "NONFINITE": ".writer",
    "file_time": ".writer",
})
