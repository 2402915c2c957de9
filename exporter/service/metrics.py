"""The exporter's own metrics: every answer by route and status code, refused ingest requests
by reason, accepted rows by model, request durations and body sizes.

    >>> m = ExporterMetrics(["churn"])
    >>> m.answered("observations", 200, seconds=0.004, body_bytes=512)
    >>> m.rows("observations", "churn", 3)
    >>> m.answered("observations", 401)
    >>> m.refused("observations", "unauthorized")
    >>> m.sample("promdrift_exporter_requests_total", route="observations", code="401")
    1.0
    >>> m.sample("promdrift_exporter_rows_total", route="observations", model="churn")
    3.0
    >>> m.sample("promdrift_exporter_request_body_bytes_bucket", route="observations", le="1024.0")
    1.0

They are counted into a :class:`~promdrift.instrumentation.counting.store.Block` kept in the same kind of
counts store as every promdrift family (``multiprocess.default_store``: one file per worker
process under ``PROMDRIFT_MULTIPROC_DIR``), so a scrape of any worker reports the totals of
all of them, also across ``--max-requests`` restarts. Every label value comes from the fixed
tables below, never from a request: a path the exporter does not serve is ``route="other"``,
an answer given before a request head was complete (too many connections, a head that did
not arrive in time, a malformed head) is ``route="none"``, a status code outside
:data:`CODES` is ``code="other"``. See docs/metrics.md.
"""

from __future__ import annotations

import bisect
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from promdrift.instrumentation.binning import format_le
from promdrift.instrumentation.counting.exposition import BlockPlan, PromdriftCollector, Sample
from promdrift.instrumentation.counting.multiprocess import default_store
from promdrift.instrumentation.counting.store import Block

__all__ = ["ExporterMetrics", "METRICS_KEY", "ROUTES", "INGEST_ROUTES", "CODES", "REJECTIONS",
           "DURATION_BUCKETS", "BODY_BUCKETS", "route_of"]

#: Where a Flask app keeps its ``ExporterMetrics`` (``app.extensions``), so that the server
#: counts the answers it gives itself (408, 503, malformed heads) with the app's.
METRICS_KEY = "promdrift.exporter"
#: ``route`` label values: the ingest routes, the scrape routes, a path not served here
#: (``other``), and answers given before a request head was complete (``none``).
ROUTES: Tuple[str, ...] = ("observations", "labels", "metrics", "landing", "healthz", "other",
                           "none")
#: The routes that take rows; their refusals are counted by reason and their bodies by size.
INGEST_ROUTES: Tuple[str, ...] = ("observations", "labels")
#: ``code`` label values (any other status is counted as ``other``).
CODES: Tuple[int, ...] = (200, 400, 401, 404, 405, 408, 409, 413, 415, 431, 500, 501, 503)
#: Why an ingest request was refused (``reason`` of ``promdrift_exporter_rejected_total``).
REJECTIONS: Tuple[str, ...] = (
    "unauthorized",         # 401: no or wrong credentials
    "unknown_model",        # 404: no model of that name
    "bad_payload",          # 400: not UTF-8 / JSON, or structurally wrong (field named)
    "unsupported_type",     # 415: a content type other than JSON or NDJSON
    "body_too_large",       # 413: more than --max-body bytes
    "too_many_rows",        # 413: more than --max-rows observations (10,000 labels)
    "not_tracking_labels",  # 409: labels for a model started without --labels-dir
    "timeout",              # 408: the body did not arrive within --read-timeout
    "overloaded",           # 503: the bytes held for bodies would exceed --max-buffer
    "method_not_allowed",   # 405
)
#: Upper bounds (seconds) of the request duration histogram.
DURATION_BUCKETS: Tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1.0, 2.5, 5.0, 10.0)
#: Upper bounds (bytes) of the request body size histogram.
BODY_BUCKETS: Tuple[float, ...] = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_TIMED = ("observations", "labels", "metrics")
_PREFIX = "/v1/models/"
_FIXED = {"/metrics": "metrics", "/": "landing", "/healthz": "healthz"}


def route_of(path: str) -> str:
    """The ``route`` label of a request path (never the path itself)::

        >>> route_of("/v1/models/churn/observations"), route_of("/metrics"), route_of("/x")
        ('observations', 'metrics', 'other')
    """
    fixed = _FIXED.get(path)
    if fixed is not None:
        return fixed
    if path.startswith(_PREFIX):
        name, _, tail = path[len(_PREFIX):].partition("/")
        if name and tail in INGEST_ROUTES:
            return tail
    return "other"


class _Histogram:
    """Slots of one labelled histogram of a block: cumulative buckets, then the sum."""

    def __init__(self, block: Block, family: str, bounds: Sequence[float], labels) -> None:
        self.bounds = list(bounds)
        les = [format_le(float(b)) for b in bounds] + [format_le(float("inf"))]
        self.first, self.sum = block.histogram(family, les, labels)

    def slots(self, value: float) -> Tuple[List[int], List[float]]:
        start = bisect.bisect_left(self.bounds, value)
        buckets = list(range(self.first + start, self.first + len(self.bounds) + 1))
        return buckets + [self.sum], [1.0] * len(buckets) + [float(value)]


class ExporterMetrics:
    """Counters of one exporter (every worker process of it, see the module's documentation).

    ``models``: the model names served (the ``model`` label of the row counts). The object
    is what ``PromdriftCollector`` renders (:meth:`exposed`, :meth:`scrape_samples`);
    :meth:`render` gives its text exposition.
    """

    def __init__(self, models: Iterable[str] = ()) -> None:
        self.models = tuple(models)
        b = self.block = Block("exporter", "promdrift-exporter",
                               "\0".join(sorted(self.models)))
        self._requests: Dict[Tuple[str, str], int] = {}
        for route in ROUTES:
            for code in [str(c) for c in CODES] + ["other"]:
                self._requests[(route, code)] = b.counter(
                    "promdrift_exporter_requests", "_total", (("route", route), ("code", code)))
        self._rejected = {(route, reason): b.counter(
            "promdrift_exporter_rejected", "_total", (("route", route), ("reason", reason)))
            for route in INGEST_ROUTES for reason in REJECTIONS}
        self._rows = {(route, model): b.counter(
            "promdrift_exporter_rows", "_total", (("route", route), ("model", model)))
            for route in INGEST_ROUTES for model in self.models}
        self._duration = {route: _Histogram(b, "promdrift_exporter_request_duration_seconds",
                                            DURATION_BUCKETS, (("route", route),))
                          for route in _TIMED}
        self._body = {route: _Histogram(b, "promdrift_exporter_request_body_bytes",
                                        BODY_BUCKETS, (("route", route),))
                      for route in INGEST_ROUTES}
        self.store = default_store(b)
        self.plan = BlockPlan(b)

    def answered(self, route: str, code: int, seconds: Optional[float] = None,
                 body_bytes: Optional[int] = None) -> None:
        """Count an answer of ``route`` with status ``code``; with ``seconds`` (the time to
        answer) and ``body_bytes`` (the request body read) for the routes that have them."""
        key = str(code) if code in CODES else "other"
        slots = [self._requests[(route if route in ROUTES else "other", key)]]
        amounts = [1.0]
        for hist, value in ((self._duration.get(route), seconds),
                            (self._body.get(route), body_bytes)):
            if hist is not None and value is not None:
                s, a = hist.slots(value)
                slots += s
                amounts += a
        self.store.add(slots, amounts)

    def refused(self, route: str, reason: str) -> None:
        """Count an ingest request refused whole, by ``reason`` (one of :data:`REJECTIONS`)."""
        slot = self._rejected.get((route, reason))
        if slot is not None:
            self.store.add([slot])

    def rows(self, route: str, model: str, n: int) -> None:
        """Count ``n`` rows of an accepted ingest request for ``model``."""
        slot = self._rows.get((route, model))
        if slot is not None and n:
            self.store.add([slot], [float(n)])

    # ------------------------------------------------------------------ exposition
    def exposed(self) -> List[Tuple[BlockPlan, object]]:
        """``(plan, store)`` of the counts (what ``PromdriftCollector`` renders)."""
        return [(self.plan, self.store)]

    def scrape_samples(self) -> List[Sample]:
        """No sample is computed at scrape."""
        return []

    def render(self) -> str:
        """The families as text exposition (format 0.0.4)."""
        return PromdriftCollector([self]).render()

    def sample(self, name: str, **labels: str) -> Optional[float]:
        """The current value of one sample (``None`` if there is none)."""
        counts = self.store.snapshot()
        want = set(labels.items())
        for family, suffix, slabels, slot, _ in self.block.series:
            if family + suffix == name and set(slabels) == want:
                return float(counts[slot])
        return None
