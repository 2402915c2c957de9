"""A small client for the exporter, for training jobs, batch scoring and tests.

    >>> client = ExporterClient("http://127.0.0.1:9108", "churn", batch_size=500)
    >>> client.observe({"age": 41, "plan": "b"}, prediction=0.3)   # buffered
    >>> client.pending
    1

``observe`` buffers rows and sends a batch every ``batch_size`` rows; ``flush`` (or leaving a
``with`` block, or ``close``) sends the rest. ``send`` posts rows at once. Connection errors,
timeouts, 429 and 5xx answers are retried ``retries`` times with exponential backoff
(``backoff``, doubled each time, honouring ``Retry-After``); other answers raise
:class:`ExporterError` at once, with the server's message and field path. A retried batch may
have reached the server before the connection broke, so delivery is at least once: a
connection error after sending can count a batch twice (``retry_after_send=False`` sends at
most once instead).
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

from promdrift.extras import require

require("client", "requests", "requests")

import requests  # noqa: E402
import urllib3  # noqa: E402  (a dependency of requests)

__all__ = ["ExporterClient", "ExporterError"]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ExporterError(Exception):
    """The exporter refused a batch (``status``, ``error`` and ``field`` from its answer), or
    it could not be reached after every retry (``status`` is ``None``).

        >>> e = ExporterError("exporter answered 400", 400, "must be an object", "rows[0].features")
        >>> e.status, e.field
        (400, 'rows[0].features')
    """

    def __init__(self, message: str, status: Optional[int] = None, error: Optional[str] = None,
                 field: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field


class ExporterClient:
    """Sends observations of one model to a promdrift exporter.

        >>> with ExporterClient("http://127.0.0.1:9108", "churn", token="s3cret") as c:
        ...     c.batch_size
        500

    ``url``: the exporter's base URL (``https://`` for an exporter with ``--web-config``'s
    TLS). ``model``: the model name. ``token``: the bearer token (``token_file`` reads it
    from a file). ``basic_auth``: ``(user, password)`` of the exporter's
    ``basic_auth_users``. ``ca_file``: the CA bundle (PEM) that signed the exporter's
    certificate (default: the system's). ``cert_file`` / ``key_file``: this client's
    certificate and key (PEM), for an exporter that requires one (``client_ca_file``).
    ``batch_size``: rows per request (at most the
    server's ``--max-rows``). ``timeout``: seconds per request. ``session``: a
    ``requests.Session`` to reuse (one is made otherwise).
    """

    def __init__(self, url: str, model: str, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, batch_size: int = 500, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.2, retry_after_send: bool = True,
                 session: Optional[requests.Session] = None,
                 basic_auth: Optional[Tuple[str, str]] = None, ca_file: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        if token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        self.endpoint = (f"{url.rstrip('/')}/v1/models/"
                         f"{requests.utils.quote(model, safe='')}/observations")
        self.batch_size = batch_size
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_after_send = retry_after_send
        if token and basic_auth:
            raise ValueError("give token or basic_auth, not both")
        if key_file is not None and cert_file is None:
            raise ValueError("key_file needs cert_file")
        self.session = session or requests.Session()
        # per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a
        # session's verify
        self._tls: Dict[str, Any] = {}
        if ca_file is not None:
            self._tls["verify"] = ca_file
        if cert_file is not None:
            self._tls["cert"] = (cert_file, key_file) if key_file else cert_file
        if basic_auth is not None:
            self.session.auth = tuple(basic_auth)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._buffer: List[Dict[str, Any]] = []
        #: Rows the server acknowledged, and requests sent (retries not included).
        self.sent_rows = 0
        self.requests = 0

    @property
    def pending(self) -> int:
        """Rows buffered and not sent yet."""
        return len(self._buffer)

    @staticmethod
    def row(features: Dict[str, Any], prediction: Any = None, id: Any = None,
            embedding: Any = None) -> Dict[str, Any]:
        """One observation object as the exporter reads it (``embedding``: a sequence or a
        1-D numpy array, sent as a list of numbers)."""
        out: Dict[str, Any] = {"features": features}
        if prediction is not None:
            out["prediction"] = prediction
        if id is not None:
            out["id"] = id
        if embedding is not None:
            out["embedding"] = embedding.tolist() if hasattr(embedding, "tolist") else embedding
        return out

    def observe(self, features: Dict[str, Any], prediction: Any = None, id: Any = None,
                embedding: Any = None) -> None:
        """Buffer one row; sends a batch when ``batch_size`` rows are buffered."""
        self._buffer.append(self.row(features, prediction, id, embedding))
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def observe_many(self, features: Iterable[Dict[str, Any]],
                     predictions: Optional[Iterable[Any]] = None) -> None:
        """Buffer many rows (and their predictions), sending full batches on the way."""
        preds = iter(predictions) if predictions is not None else None
        for f in features:
            self.observe(f, next(preds) if preds is not None else None)

    def flush(self) -> int:
        """Send every buffered row; returns how many were sent. On an error the rows that
        were not acknowledged stay buffered."""
        total = 0
        while self._buffer:
            batch = self._buffer[:self.batch_size]
            self._post(batch)
            del self._buffer[:len(batch)]
            total += len(batch)
        return total

    def send(self, rows: List[Dict[str, Any]]) -> int:
        """Post observation objects (see :meth:`row`) now, ``batch_size`` per request."""
        for s in range(0, len(rows), self.batch_size):
            self._post(rows[s:s + self.batch_size])
        return len(rows)

    def _post(self, batch: List[Dict[str, Any]]) -> None:
        body = json.dumps(batch, allow_nan=True).encode("utf-8")
        self.requests += 1
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.post(self.endpoint, data=body, headers=self.headers,
                                         timeout=self.timeout, **self._tls)
            except requests.exceptions.SSLError as e:  # a certificate fails every time
                raise ExporterError(f"TLS with {self.endpoint} failed: {e}") from e
            except requests.ConnectionError as e:
                if last or (not _never_sent(e) and not self.retry_after_send):
                    raise ExporterError(f"exporter unreachable at {self.endpoint}: {e}") from e
            except requests.Timeout as e:
                if last or not self.retry_after_send:
                    raise ExporterError(f"exporter timed out at {self.endpoint}") from e
            else:
                if resp.status_code == 200:
                    self.sent_rows += len(batch)
                    return
                info = _error_body(resp)
                if resp.status_code not in _RETRY_STATUS or last:
                    where = f" at {info.get('field')}" if info.get("field") else ""
                    raise ExporterError(
                        f"exporter answered {resp.status_code}: {info.get('error', resp.reason)}"
                        f"{where}", resp.status_code, info.get("error"), info.get("field"))
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, min(float(retry_after), 60.0))
            time.sleep(delay)
            delay *= 2

    def close(self) -> None:
        """Flush, then close the session."""
        try:
            self.flush()
        finally:
            self.session.close()

    def __enter__(self) -> "ExporterClient":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.session.close()


def _never_sent(error: requests.ConnectionError) -> bool:
    """True when the connection was never made (refused, connect timeout): safe to retry."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _error_body(resp: requests.Response) -> Dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
