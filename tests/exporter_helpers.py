"""Helpers shared by the exporter, client, load and gunicorn tests."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.client import HTTPConnection, RemoteDisconnected
from typing import Any, Dict, List, Optional, Tuple

from prometheus_client.parser import text_string_to_metric_families

from integration.servers import free_port, wait_until

__all__ = ["samples", "drift_samples", "OWN", "assert_same_counts", "post_all", "post_each",
           "GunicornProcess", "free_port", "wait_until", "BIN", "TIMING", "make_certs"]

BIN = os.path.dirname(sys.executable)

Key = Tuple[str, Tuple[Tuple[str, str], ...]]


def samples(text: str) -> Dict[Key, float]:
    """Every sample of an exposition text: (name, sorted labels) -> value."""
    out: Dict[Key, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def http(method: str, url: str, body: Optional[bytes] = None, timeout: float = 10.0,
         headers: Optional[Dict[str, str]] = None, context: Any = None) -> Tuple[int, bytes]:
    """``(status, body)`` of one request (``context``: an ``ssl.SSLContext`` for https)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


#: Prefix of the exporter's own families (requests, rejections, rows, durations, body sizes):
#: an in-process reference monitor has none of them.
OWN = "promdrift_exporter_"


def drift_samples(text: str) -> Dict[Key, float]:
    """:func:`samples` of ``text`` without the exporter's own families (:data:`OWN`)."""
    return {k: v for k, v in samples(text).items() if not k[0].startswith(OWN)}


#: Families whose values depend on when things happened (label delays) or on one process
#: (the nDCG window): a server and its reference agree on their ``_count`` only.
TIMING = ("promdrift_quality_label_delay_seconds", "promdrift_attribution_window_rows",
          "promdrift_attribution_ndcg")


def assert_same_counts(text: str, reference: Any) -> Dict[Key, float]:
    """``text`` has exactly the samples of ``reference.render()``: every count equal, float
    sums within a relative 1e-9 (their order of additions differs); of the :data:`TIMING`
    families only the ``_count``; the exporter's own families are left out. Returns
    ``text``'s."""
    import pytest
    got, want = drift_samples(text), samples(reference.render())
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key[0].startswith(TIMING) and not key[0].endswith("_count"):
            continue
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert got[key] == value, key
    return got


def post_each(port: int, make_request: Any, threads: int, per_thread: int,
              retries: int = 0) -> List[Any]:
    """``threads`` x ``per_thread`` POSTs, ``make_request(thread, i) -> (path, body)``, a new
    connection each (a worker recycled by max_requests closes its connections); returns
    the failures (non-200 statuses, exceptions). ``retries``: a connection that a stopping
    worker closed or reset before answering (its request never read: a reset, a broken pipe
    while sending, a disconnect without a status line) is tried again, that often; a request
    the server did count twice would show in the caller's exact totals."""
    failures: List[Any] = []

    def run(t: int) -> None:
        for i in range(per_thread):
            path, body = make_request(t, i)
            for attempt in range(retries + 1):
                conn = HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request("POST", path, body, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(resp.status)
                    break
                except (ConnectionError, RemoteDisconnected) as e:
                    if attempt == retries:
                        failures.append(repr(e))
                    time.sleep(0.2)
                except Exception as e:  # noqa: BLE001 - any failure fails the caller's test
                    failures.append(repr(e))
                    break
                finally:
                    conn.close()

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not any(w.is_alive() for w in workers)
    return failures


def post_all(port: int, parts: List[List[bytes]], path: str, timeout: float = 30.0,
             deadline: Optional[float] = None, join_timeout: Optional[float] = None
             ) -> List[Any]:
    """POST every body of each part (``application/json``) to ``path`` on 127.0.0.1:``port``,
    one thread and keep-alive connection per part, reconnecting when the server closes.

    Returns the failures: non-200 statuses, exceptions (``repr``), and ``"time limit"`` for
    a thread that reached ``deadline`` (``time.monotonic()``) before its last body.
    """
    failures: List[Any] = []

    def run(part: List[bytes]) -> None:
        conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            for body in part:
                if deadline is not None and time.monotonic() > deadline:
                    failures.append("time limit")
                    return
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures.append(resp.status)
                if resp.will_close:
                    conn.close()
                    conn = HTTPConnection("127.0.0.1", port, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported through failures
            failures.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)
    return failures


class GunicornProcess:
    """A server process (``promdrift exporter`` or ``gunicorn``) on a free 127.0.0.1 port,
    stopped (SIGTERM, then SIGKILL) through its own Popen handle by the ``with`` block.
    ``context``: an ``ssl.SSLContext`` trusting the server's certificate (``url`` is then
    https)."""

    def __init__(self, argv: List[str], port: int, env: Optional[Dict[str, str]] = None,
                 log_path: Optional[str] = None, ready_path: str = "/healthz",
                 context: Any = None):
        self.argv = argv
        self.port = port
        self.context = context
        self.url = f"{'https' if context is not None else 'http'}://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.ready_path = ready_path
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "GunicornProcess":
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            return http("GET", self.url + self.ready_path, timeout=2,
                        context=self.context)[0] == 200

        wait_until(ready, timeout=60, what=f"{self.argv[0]} on port {self.port}")
        return self

    def log(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def wait_for_workers(log_path: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` distinct workers booted (per gunicorn's log)."""
    def booted() -> bool:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return f.read().count("Booting worker") >= count
    wait_until(booted, timeout=timeout, what=f"{count} workers booted")


def openssl(*args: str, cwd: Any) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory: Any, names: Tuple[str, ...] = ()) -> pathlib.Path:
    """Make, with ``openssl`` (EC keys: fast), in ``directory``: a CA (``ca.crt``,
    ``ca.key``), a server certificate for 127.0.0.1, localhost and the DNS ``names``
    (``server.crt``, ``server.key``) and a client certificate (``client.crt``,
    ``client.key``), both signed by the CA, and a certificate of another CA
    (``other-ca.crt``). Callers skip when ``shutil.which("openssl")`` is None."""
    d = pathlib.Path(directory)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days",
                "2", "-subj", f"/CN=promdrift test {ca}", cwd=d)
    sans = ",".join(["IP:127.0.0.1", "DNS:localhost"] + [f"DNS:{n}" for n in names])
    (d / "server.ext").write_text(f"subjectAltName={sans}\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                f"/CN=promdrift test {name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)
    return d
