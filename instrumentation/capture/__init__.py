"""Data capture: a random sample of the observed rows, written to rotating JSON Lines files
(``writer``: ``DataCapture``, and the plugin that feeds it from a monitor), and read back
(``reader``: ``read_capture``, ``CaptureFiles``, what ``promdrift report`` reads).

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
    from .reader import NONFINITE, CaptureFiles, file_time, read_capture
    from .writer import DROP_REASONS, CaptureTracker, DataCapture

__all__ = ["DataCapture", "CaptureTracker", "read_capture", "CaptureFiles", "DROP_REASONS",
           "NONFINITE", "file_time"]

__getattr__, __dir__ = _exports(__name__, {
    "DataCapture": ".writer",
    "CaptureTracker": ".writer",
    "DROP_REASONS": ".writer",
    "read_capture": ".reader",
    "CaptureFiles": ".reader",
    "NONFINITE": ".reader",
    "file_time": ".reader",
})
