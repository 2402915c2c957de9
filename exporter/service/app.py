"""The standalone exporter: model servers in any language POST their rows, Prometheus scrapes
the same metric families an in-process ``DriftMonitor`` exposes.

    >>> from prometheus_client import CollectorRegistry
    >>> from promdrift.instrumentation import Baseline, DriftMonitor
    >>> monitor = DriftMonitor(Baseline.fit({"x": [1.0, 2.0, 3.0, 4.0]}, model="m", bins=2),
    ...                        registry=CollectorRegistry())
    >>> client = create_app([monitor], token="s3cret").test_client()
    >>> client.post("/v1/models/m/observations", json=[{"features": {"x": 1.5}}]).status_code
    401
    >>> resp = client.post("/v1/models/m/observations", headers={"Authorization": "Bearer s3cret"},
    ...                    json=[{"features": {"x": 1.5}}, {"features": {"x": "oops"}, "id": "r2"}])
    >>> resp.status_code, resp.get_json()
    (200, {'accepted': 2})
    >>> monitor.sample("promdrift_feature_invalid_total", feature="x", reason="wrong_type")
    1.0

Endpoints: ``GET /`` (landing page), ``GET /metrics``, ``GET /healthz``,
``POST /v1/models/<model>/labels`` (ground truth for observations sent with an ``id``, for
models that track labels: see ``promdrift.instrumentation.outcomes.labels.labels_handler``) and
``POST /v1/models/<model>/observations``, whose body is one observation object, a JSON array
of them, or NDJSON (``Content-Type: application/x-ndjson``, one object per line). An
observation is ``{"features": {...}, "prediction": ..., "id": ..., "embedding": [...]}``
with ``prediction`` (a value, or ``{output: value}`` / a list for several outputs), ``id``
(a string or an integer, never a label; it reaches data capture and the label store of
monitors that have them, see ``DriftMonitor.observe``) and ``embedding`` (the input vector
of a model whose baseline was fitted with embeddings; judged like a feature value, see
docs/multivariate.md) optional.

Values are judged exactly as in-process: a feature value of the wrong type (a string that
spells no number for a numeric feature, a nested object, ...) is counted in
``promdrift_feature_invalid_total``, a string that spells one counts as that number (and in
``promdrift_feature_coerced_total``; ``--no-coerce-numbers``: ``wrong_type``), missing
features are counted as ``missing``, features the baseline does not know are ignored. Only a
structurally bad payload is refused, whole (none of its rows is counted), with a 400 (415 for
a body not sent as JSON) whose JSON body names the field, e.g. ``{"error": "must be an
object", "field": "rows[3].features"}``; the model's ``promdrift_requests_invalid_total``
counts it by reason (``not_json``, ``not_object``, ``no_features``, ``bad_shape``), as
``track`` counts an unreadable request body, and ``promdrift_requests_total`` counts every
observations request of the model but those refused for credentials or size (401, 413). Payload values never appear in a response,
a log line or a label. See docs/exporter.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from promdrift.extras import require
from promdrift.instrumentation import DriftMonitor
from promdrift.instrumentation.counting.exposition import PromdriftCollector, metrics_text
from promdrift.instrumentation.outcomes.labels import labels_handler
from promdrift.instrumentation.values import ABSENT, BAD_SHAPE, NO_FEATURES, NOT_JSON, NOT_OBJECT
from promdrift.instrumentation.web.flask import CONTENT_TYPE

from .limits import DEFAULT_MAX_BODY, DEFAULT_MAX_ROWS
from .metrics import INGEST_ROUTES, METRICS_KEY, ExporterMetrics, route_of

require("exporter", "flask", "Flask")

from flask import Flask, Response, g, request  # noqa: E402

__all__ = ["create_app", "landing_page", "parse_observations", "PayloadError",
           "nesting_depth", "bearer_matches", "DEFAULT_MAX_BODY", "DEFAULT_MAX_ROWS",
           "MAX_DEPTH", "NDJSON_TYPES", "UNSUPPORTED_TYPE"]

log = logging.getLogger("promdrift.exporter")

#: Content types read as NDJSON; ``application/json`` (or none) is read as JSON.
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/json-seq"})
#: Deepest nesting of arrays and objects accepted in a body (a row needs 3 or 4).
MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_ROW_KEYS = frozenset({"features", "prediction", "id", "embedding"})
_MAX_ID = 256


#: The 415 answer: which header to send.
UNSUPPORTED_TYPE = ("unsupported media type: send the header 'Content-Type: application/json' "
                    "(a JSON object or array) or 'Content-Type: application/x-ndjson' (one "
                    "JSON object per line)")


def bearer_matches(header: str, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``token`` in the bearer scheme, whose name
    is case-insensitive (RFC 7235: ``Bearer``, ``bearer``, ``BEARER``); the token is compared
    in constant time::

        >>> bearer_matches("bearer s3cret", b"s3cret"), bearer_matches("Basic s3cret", b"s3cret")
        (True, False)
    """
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8", "replace"), token)


#: The ``reason`` (``promdrift_exporter_rejected_total``) of a refusal with each status.
_REASON_OF = {400: "bad_payload", 401: "unauthorized", 404: "unknown_model",
              405: "method_not_allowed", 409: "not_tracking_labels", 413: "body_too_large",
              415: "unsupported_type"}


class PayloadError(Exception):
    """A request the exporter refuses: HTTP ``status``, a fixed ``message`` and the ``field``
    path (``rows[3].features``). Neither ever contains a payload value. ``reason`` is what
    ``promdrift_exporter_rejected_total`` counts it as (by default the status's);
    ``request_reason`` what the model's ``promdrift_requests_invalid_total`` counts a body
    that cannot be read as (``None``: not counted there, e.g. a limit).

        >>> e = PayloadError(400, "must be an object of feature values", "rows[3].features",
        ...                  request_reason="bad_shape")
        >>> e.response().status_code, e.response().get_json()["field"], e.reason
        (400, 'rows[3].features', 'bad_payload')
    """

    def __init__(self, status: int, message: str, field: Optional[str] = None,
                 reason: Optional[str] = None, request_reason: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.reason = reason or _REASON_OF.get(status, "bad_payload")
        self.request_reason = request_reason

    def response(self) -> Response:
        body: Dict[str, Any] = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        return _json(body, self.status)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body) + "\n", status=status, content_type="application/json")


def _key_name(key: str) -> str:
    """A JSON key as shown in a field path: at most 40 characters, JSON-escaped."""
    short = key if len(key) <= 40 else key[:40] + "..."
    return json.dumps(short, ensure_ascii=True)


def _loads(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, integer digit limit
        raise PayloadError(400, "not valid JSON", field, request_reason=NOT_JSON) from None


def nesting_depth(text: str) -> int:
    """Deepest nesting of JSON arrays and objects in ``text`` (brackets inside strings do not
    count); 0 when there cannot be more than :data:`MAX_DEPTH` levels. Vectorised: a body of
    1 MB costs a few milliseconds, and JSON never reaches the recursion limit of the parser
    (whose depth would depend on the server's stack)::

        >>> nesting_depth('[' * 70 + ']' * 70), nesting_depth('{"a": "[[[["}')
        (70, 0)
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    codes = np.frombuffer(_STRING.sub("0", text).encode("ascii", "replace"), dtype=np.uint8)
    step = ((codes == 91).astype(np.int32) + (codes == 123)) - (codes == 93) - (codes == 125)
    return int(np.cumsum(step).max(initial=0))


def parse_observations(body: bytes, ndjson: bool, n_outputs: int, max_rows: int
                       ) -> Tuple[List[Dict[str, Any]], List[Any], List[Any], List[Any]]:
    """The feature dicts, predictions and inference ids (``None``: not given) and embeddings
    (``ABSENT``: not given; any other value is judged by the monitor) of a body.

    Raises :class:`PayloadError` (400 for a structural error, 413 for more than
    ``max_rows`` observations) naming the first bad field::

        >>> parse_observations(b'{"features": {"x": 1}, "prediction": 0.5}', False, 1, 10)
        ([{'x': 1}], [0.5], [None], [ABSENT])
        >>> parse_observations(b'{"features": [1]}', False, 1, 10)
        Traceback (most recent call last):
        ...
        promdrift.exporter.service.app.PayloadError: must be an object of feature values
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(400, "not valid UTF-8", "body", request_reason=NOT_JSON) from None
    if nesting_depth(text) > MAX_DEPTH:
        raise PayloadError(400, f"nested deeper than {MAX_DEPTH} levels", "body",
                           request_reason=BAD_SHAPE)
    if ndjson:
        rows = []
        for line in text.split("\n"):
            if line.strip(" \t\r"):  # JSON's whitespace
                if len(rows) >= max_rows:
                    raise PayloadError(413, f"more than {max_rows} observations in one request",
                                       "rows", "too_many_rows")
                rows.append(_loads(line, f"rows[{len(rows)}]"))
    else:
        doc = _loads(text, "body")
        if isinstance(doc, dict):
            rows = [doc]
        elif isinstance(doc, list):
            rows = doc
        else:
            raise PayloadError(400, "must be an observation object or an array of them", "body",
                               request_reason=NOT_OBJECT)
    if len(rows) > max_rows:
        raise PayloadError(413, f"more than {max_rows} observations in one request", "rows",
                           "too_many_rows")
    features: List[Dict[str, Any]] = []
    predictions: List[Any] = []
    ids: List[Any] = []
    embeddings: List[Any] = []
    for i, row in enumerate(rows):
        where = f"rows[{i}]"
        if not isinstance(row, dict):
            raise PayloadError(400, "must be an object with a 'features' object", where,
                               request_reason=NOT_OBJECT)
        for key in row:
            if key not in _ROW_KEYS:
                raise PayloadError(400, "unknown field (expected features, prediction, id, "
                                        "embedding)",
                                   f"{where}.{_key_name(key)}" if not key.isidentifier()
                                   else f"{where}.{key[:40]}", request_reason=BAD_SHAPE)
        feats = row.get("features")
        if feats is None:
            raise PayloadError(400, "required field is missing or null", f"{where}.features",
                               request_reason=NO_FEATURES)
        if not isinstance(feats, dict):
            raise PayloadError(400, "must be an object of feature values", f"{where}.features",
                               request_reason=BAD_SHAPE)
        ident = row.get("id")
        if ident is not None and not (
                (isinstance(ident, str) and len(ident) <= _MAX_ID)
                or (isinstance(ident, int) and not isinstance(ident, bool)
                    and abs(ident) < 2 ** 63)):
            raise PayloadError(400, f"must be a string of at most {_MAX_ID} characters or a "
                                    "64-bit integer", f"{where}.id", request_reason=BAD_SHAPE)
        pred = row.get("prediction")
        if pred is not None and n_outputs > 1 and not (
                isinstance(pred, dict) or (isinstance(pred, list) and len(pred) == n_outputs)):
            raise PayloadError(400, f"the model has {n_outputs} outputs: must be an object "
                                    f"{{output: value}} or a list of {n_outputs} values",
                               f"{where}.prediction", request_reason=BAD_SHAPE)
        features.append(feats)
        predictions.append(pred)
        ids.append(ident)
        embeddings.append(row.get("embedding", ABSENT))
    return features, predictions, ids, embeddings


def landing_page(monitors: Iterable[DriftMonitor]) -> str:
    """The HTML of ``GET /``: promdrift's landing page (every model's columns against the
    baseline, inference counts, the baseline served; see docs/landing.md) titled for the
    exporter, linking ``metrics`` and ``healthz`` (relative, so a path prefix in front of the
    exporter keeps them working)."""
    from promdrift.instrumentation.web.landing import landing_page as page
    text = page(list(monitors), title="promdrift exporter", metrics_path="metrics")
    return text.replace("</footer>", ' Health check: <a href="healthz">healthz</a>.</footer>', 1)


def create_app(monitors: Union[Iterable[DriftMonitor], Mapping], token: Optional[str] = None,
               max_body: int = DEFAULT_MAX_BODY, max_rows: int = DEFAULT_MAX_ROWS,
               protect_metrics: bool = False, import_name: str = "promdrift_exporter",
               basic_auth: Optional[Any] = None,
               metrics: Optional[ExporterMetrics] = None) -> Flask:
    """The exporter's Flask app for ``monitors`` (``DriftMonitor`` objects, one per model).

    ``token``: when set, every ingest request (and, with ``protect_metrics``, every other
    endpoint but ``/healthz``) must carry ``Authorization: Bearer <token>`` (the scheme in any
    case, the token compared in constant time; 401 otherwise). ``basic_auth``: a
    ``webconfig.BasicAuth`` whose users are accepted as well (with or without a token).
    ``max_body``: bytes per request body (413 beyond). ``max_rows``: observations per
    request (413 beyond). ``/metrics`` renders the monitors' registry when they share one,
    else just their families, and the exporter's own (``metrics``, an ``ExporterMetrics``
    made for the models when not given; kept in ``app.extensions["promdrift.exporter"]``).
    """
    ms = list(monitors.values()) if isinstance(monitors, Mapping) else list(monitors)
    by_model: Dict[str, DriftMonitor] = {}
    for m in ms:
        if m.model in by_model:
            raise ValueError(f"model {m.model!r} is given twice")
        by_model[m.model] = m
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ValueError("token must be a non-empty string")
    if not (isinstance(max_body, int) and max_body > 0):
        raise ValueError(f"max_body must be a positive integer, got {max_body!r}")
    if not (isinstance(max_rows, int) and max_rows > 0):
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    expected = token.strip().encode("utf-8") if token is not None else None
    registries = {id(m.registry) for m in ms}
    shared = ms[0].registry if ms and len(registries) == 1 else None
    collector = PromdriftCollector(ms)
    own = metrics if metrics is not None else ExporterMetrics(by_model)
    challenges = (['Bearer realm="promdrift"'] if expected is not None else []) + (
        ['Basic realm="promdrift", charset="UTF-8"'] if basic_auth is not None else [])

    app = Flask(import_name)
    app.config["MAX_CONTENT_LENGTH"] = max_body
    app.extensions[METRICS_KEY] = own

    def authorized() -> bool:
        if not challenges:
            return True
        header = request.headers.get("Authorization", "")
        if expected is not None and bearer_matches(header, expected):
            return True
        return basic_auth is not None and basic_auth.check(header)

    def denied() -> Response:
        resp = PayloadError(401, "missing or wrong credentials").response()
        for challenge in challenges:
            resp.headers.add("WWW-Authenticate", challenge)
        return resp

    def served(model: str) -> DriftMonitor:
        monitor = by_model.get(model)
        if monitor is None:
            raise PayloadError(404, "no model of that name is served here (see /healthz)",
                               "model")
        return monitor

    def read_body() -> bytes:
        """The request body, read no further than ``max_body`` + 1 bytes (413 beyond)."""
        body = request.stream.read(max_body + 1)
        g.body_bytes = len(body)
        if len(body) > max_body:
            raise PayloadError(413, f"request body larger than {max_body} bytes")
        return body

    def refused(e: PayloadError) -> Response:
        log.debug("promdrift exporter: %d on %s: %s", e.status, request.path, e.message)
        g.reason = e.reason
        return e.response()

    @app.before_request
    def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def counted(response: Response) -> Response:
        route = route_of(request.path)
        own.answered(route, response.status_code,
                     seconds=time.perf_counter() - g.get("started", time.perf_counter()),
                     body_bytes=g.get("body_bytes"))
        if route in INGEST_ROUTES and response.status_code != 200:
            own.refused(route, g.get("reason") or _REASON_OF.get(response.status_code,
                                                                  "bad_payload"))
        return response

    @app.get("/")
    def index() -> Any:
        if protect_metrics and not authorized():
            return denied()
        return Response(landing_page(ms), content_type="text/html; charset=utf-8")

    @app.get("/metrics")
    def metrics_page() -> Any:
        if protect_metrics and not authorized():
            return denied()
        text = metrics_text(shared) if shared is not None else collector.render().encode()
        return Response(text + own.render().encode(), content_type=CONTENT_TYPE)

    @app.get("/healthz")
    def healthz() -> Any:
        return _json({"status": "ok", "models": sorted(by_model)})

    @app.post("/v1/models/<model>/observations")
    def observations(model: str) -> Any:
        monitor = None
        try:
            if not authorized():
                return denied()
            monitor = served(model)
            if request.content_length is not None and request.content_length > max_body:
                raise PayloadError(413, f"request body larger than {max_body} bytes")
            mimetype = request.mimetype
            if mimetype not in NDJSON_TYPES and mimetype not in ("", "application/json"):
                raise PayloadError(415, UNSUPPORTED_TYPE, "Content-Type",
                                   request_reason=NOT_JSON)
            body = read_body()
            features, predictions, ids, embeddings = parse_observations(
                body, mimetype in NDJSON_TYPES, len(monitor.baseline.predictions), max_rows)
        except PayloadError as e:
            if monitor is not None and e.request_reason is not None:
                monitor.invalid_request(e.request_reason)  # the model's clients, by reason
            return refused(e)
        if not features or (monitor.plugins and any(i is not None for i in ids)):
            # one request: the drift families count the rows as one batch; ids feed the
            # plugins (data capture, the label store) row by row, each with its own id
            monitor.observe_rows(features, predictions, ids, embeddings)
        elif len(features) == 1:
            monitor.observe(features[0], predictions[0], embedding=embeddings[0])
        else:
            given = any(p is not None for p in predictions)
            vectors = embeddings if any(e is not ABSENT for e in embeddings) else ABSENT
            monitor.observe(features, predictions if given else None, embedding=vectors)
        own.rows("observations", model, len(features))
        return _json({"accepted": len(features)})

    @app.post("/v1/models/<model>/labels")
    def labels(model: str) -> Any:
        """Ground truth for earlier observations (``labels_handler``); 409 unless the
        model tracks labels (``promdrift exporter --labels-dir``)."""
        try:
            if not authorized():
                return denied()
            monitor = served(model)
            body = read_body()
        except PayloadError as e:
            return refused(e)
        status, answer = labels_handler(monitor, body, request.content_type)
        if status == 200:
            own.rows("labels", model, int(answer.get("received", 0)))
        elif status == 413:
            g.reason = "too_many_rows"
        return _json(answer, status)

    @app.errorhandler(404)
    def not_found(e: Any) -> Any:
        return PayloadError(404, "not found").response()

    @app.errorhandler(405)
    def not_allowed(e: Any) -> Any:
        return PayloadError(405, "method not allowed").response()

    @app.errorhandler(413)
    def too_large(e: Any) -> Any:
        return PayloadError(413, f"request body larger than {max_body} bytes").response()

    return app
