"""Labels sent over HTTP: :func:`labels_handler` validates a labels request (JSON, an array,
``{"labels": [...]}`` or NDJSON) and records it with a monitor that tracks labels. Framework
free: the exporter's ``POST /v1/models/<model>/labels`` calls it; the outcome monitors it
feeds are described in ``promdrift.instrumentation.outcomes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

from .quality import _ident

__all__ = ["labels_handler", "MAX_LABELS_PER_REQUEST"]

#: Labels accepted in one ``labels_handler`` request.
MAX_LABELS_PER_REQUEST = 10_000


# ------------------------------------------------------------------------------ HTTP
def _parse_labels(body: Any, content_type: Optional[str]) -> List[Any]:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("body is not UTF-8") from None
    if isinstance(body, str):
        ndjson = content_type is not None and "ndjson" in content_type.lower()
        text = body.strip()
        if not text:
            raise ValueError("empty body")
        if ndjson:
            items = []
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        items.append(json.loads(line))
                    except ValueError as e:
                        raise ValueError(f"line {i}: not JSON ({e})") from None
            return items
        try:
            body = json.loads(text)
        except ValueError as e:
            raise ValueError(f"not JSON ({e}); send a JSON object or array, or NDJSON with "
                             f"Content-Type: application/x-ndjson") from None
    if isinstance(body, Mapping) and "labels" in body:
        body = body["labels"]
        if not isinstance(body, list):
            raise ValueError('"labels" must be an array')
    return body if isinstance(body, list) else [body]


def labels_handler(monitor: Any, body: Any, content_type: Optional[str] = None
                   ) -> Tuple[int, Dict[str, Any]]:
    """Validate and record a labels request for ``monitor``; returns ``(HTTP status, JSON
    body)``. Framework free: the exporter's ``POST /v1/models/<model>/labels`` calls it.

    ``body``: bytes / text (JSON, or NDJSON when ``content_type`` says ``ndjson``) or parsed
    JSON. Accepted shapes: one object ``{"inference_id": ..., "label": ...}``, an array of
    them, or ``{"labels": [...]}``; ``label`` is the value of the only output or an
    ``{output: value}`` object. Nothing is recorded unless every item is well formed (400
    otherwise, naming the first bad item); more than ``MAX_LABELS_PER_REQUEST`` items is 413.

        >>> from promdrift.instrumentation import Baseline, DriftMonitor
        >>> b = Baseline.fit({"x": [1.0, 2.0], "y": [0.5, 1.5]}, predictions="y")
        >>> m = DriftMonitor(b, registry=None).track_labels(":memory:")
        >>> m.observe({"x": 1.0}, 0.7, inference_id="r1")
        >>> labels_handler(m, b'{"inference_id": "r1", "label": 0.5}')
        (200, {'received': 1, 'matched': 1, 'held': 0, 'duplicate': 0, 'invalid': 0})
        >>> labels_handler(m, b'[{"label": 1}]')
        (400, {'error': 'item 0: needs "inference_id" and "label"'})
    """
    if getattr(monitor, "labels", None) is None:
        return 409, {"error": f"model {monitor.model!r} does not track labels"}
    try:
        items = _parse_labels(body, content_type)
    except ValueError as e:
        return 400, {"error": str(e)}
    if len(items) > MAX_LABELS_PER_REQUEST:
        return 413, {"error": f"{len(items)} labels in one request; at most "
                              f"{MAX_LABELS_PER_REQUEST}"}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "inference_id" not in item or "label" not in item:
            return 400, {"error": f'item {i}: needs "inference_id" and "label"'}
        try:
            _ident(item["inference_id"])
        except ValueError as e:
            return 400, {"error": f"item {i}: {e}"}
    counts = {"received": len(items), "matched": 0, "held": 0, "duplicate": 0, "invalid": 0}
    for item in items:
        status = monitor.record_label(item["inference_id"], item["label"])
        if status in counts:
            counts[status] += 1
    return 200, counts
