"""``promdrift exporter`` on a network, against real processes on 127.0.0.1: slow and hostile
clients (408, 503 with Retry-After, ingest keeps serving), TLS and basic authentication
(``--web-config``, certificates made by ``openssl`` here), its own metrics, and SIGTERM
draining in-flight requests without losing an acknowledged row."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import threading
import time

import pytest

from promdrift.exporter import cli
from promdrift.exporter.client import ExporterClient, ExporterError
from promdrift.exporter.service.webconfig import WebConfig, WebConfigError

from exporter_helpers import (BIN, OWN, GunicornProcess, free_port, make_certs, samples,
                              wait_until)
from exporter_helpers import http as http_request

pytest.importorskip("gunicorn")
bcrypt = pytest.importorskip("bcrypt")

PATH = "/v1/models/penguins/observations"
ROW = json.dumps([{"features": {"bill_length_mm": 39.1, "island": "Dream"},
                   "prediction": "Adelie"}]).encode()
#: A request head announcing a body that never comes (one byte of it is sent).
HOSTILE = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: 100000\r\n\r\n[").encode()


def exporter(baseline_path, tmp_path, *options, workers=1, context=None, name="exporter"):
    """A ``promdrift exporter`` process (its own --multiproc-dir) for a ``with`` block."""
    port = free_port()
    mp = tmp_path / f"{name}-mp"
    mp.mkdir()
    argv = [os.path.join(BIN, "promdrift"), "exporter", "--baseline", baseline_path,
            "--listen", f"127.0.0.1:{port}", "--workers", str(workers),
            "--multiproc-dir", str(mp), *options]
    return GunicornProcess(argv, port, log_path=str(tmp_path / f"{name}.log"), context=context)


def value(text, name, **labels):
    """A sample of ``text``; the ``baseline`` label of a model's series (not the exporter's
    own families) is the one its ``promdrift_baseline_info`` gives."""
    got = samples(text)
    if "model" in labels and not name.startswith(OWN):
        (info,) = [dict(k) for n, k in got if n == "promdrift_baseline_info"
                   and dict(k)["model"] == labels["model"]]
        labels = {"baseline": info["baseline"], **labels}
    return got.get((name, tuple(sorted(labels.items()))))


def answer_of(sock, timeout):
    """What the server sent on ``sock`` before closing it (or ``timeout`` s passed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


# ------------------------------------------------------------------ slow and hostile clients

def test_slow_clients_hold_no_thread_and_get_408(baseline_path, tmp_path):
    """64 connections that announce a body and send one byte of it: a normal POST and
    /metrics are still answered (at once; the client's timeout bounds the wait), and every
    slow connection gets 408 after --read-timeout, counted as a rejection."""
    conns = []
    with exporter(baseline_path, tmp_path, "--read-timeout", "3", "--threads", "4",
                  workers=2) as server:
        try:
            for _ in range(64):
                c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                c.sendall(HOSTILE)
                conns.append(c)
            t0 = time.monotonic()
            status, body = http_request("POST", server.url + PATH, ROW, timeout=20,
                                        headers={"Content-Type": "application/json"})
            post_seconds = time.monotonic() - t0
            assert (status, json.loads(body)) == (200, {"accepted": 1})
            assert http_request("GET", server.url + "/metrics", timeout=20)[0] == 200
            answers = [answer_of(c, 60) for c in conns]
        finally:
            for c in conns:
                c.close()
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
        text = http_request("GET", server.url + "/metrics")[1].decode()
    print(f"normal POST answered in {post_seconds:.3f} s with 64 slow connections open")
    assert value(text, "promdrift_exporter_rejected_total", route="observations",
                 reason="timeout") == 64
    assert value(text, "promdrift_exporter_requests_total", route="observations",
                 code="408") == 64
    assert value(text, "promdrift_exporter_rows_total", route="observations",
                 model="penguins") == 1


def test_connections_beyond_the_limit_get_503_with_retry_after(baseline_path, tmp_path):
    with exporter(baseline_path, tmp_path, "--max-connections", "4",
                  "--read-timeout", "10") as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(4)]
        try:
            held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half a head
            wait_until(lambda: b"503" in _get_raw(server.port), timeout=30,
                       what="a 503 for the fifth connection")
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("POST", PATH, ROW, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 503 and resp.getheader("Retry-After") == "1"
            assert "retry later" in json.loads(resp.read())["error"]
            conn.close()
        finally:
            for c in held:
                c.close()
        # the slots are free again: the client's retries (Retry-After) get through
        client = ExporterClient(server.url, "penguins", retries=5, backoff=0.5)
        assert client.send([{"features": {"bill_length_mm": 40.0}}]) == 1
        text = http_request("GET", server.url + "/metrics")[1].decode()
    assert value(text, "promdrift_exporter_requests_total", route="none", code="503") >= 1


def _get_raw(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return answer_of(c, 10)


def test_a_head_that_never_ends_gets_408(baseline_path, tmp_path):
    with exporter(baseline_path, tmp_path, "--read-timeout", "2") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
            c.sendall(b"POST /v1/models/penguins/observations HTTP/1.1\r\nHost: x\r\n")
            assert answer_of(c, 30).startswith(b"HTTP/1.1 408 ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
            c.sendall(b"GARBAGE\r\n\r\n")
            assert answer_of(c, 30).startswith(b"HTTP/1.1 400 ")


# ------------------------------------------------------------------ TLS and basic auth

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by the CA,
    and a certificate of another CA (:func:`exporter_helpers.make_certs`)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"))


def web_config(certs, name, text):
    path = certs / name
    path.write_text(text)
    return str(path)


def test_https_basic_auth_and_plain_http_to_the_tls_port(baseline_path, tmp_path, certs):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    config = web_config(certs, "web.yml", f"tls_server_config:\n  cert_file: server.crt\n"
                        f"  key_file: server.key\nbasic_auth_users:\n  alice: '{hashed}'\n")
    ca = str(certs / "ca.crt")
    context = ssl.create_default_context(cafile=ca)
    with exporter(baseline_path, tmp_path, "--web-config", config, "--protect-metrics",
                  context=context) as server:
        assert server.url.startswith("https://")
        good = ExporterClient(server.url, "penguins", basic_auth=("alice", "s3cret"),
                              ca_file=ca)
        assert good.send([{"features": {"bill_length_mm": 39.0}}] * 3) == 3
        with pytest.raises(ExporterError) as wrong:
            ExporterClient(server.url, "penguins", basic_auth=("alice", "nope"),
                           ca_file=ca).send([{"features": {}}])
        assert wrong.value.status == 401
        with pytest.raises(ExporterError) as unknown_ca:  # a certificate nobody vouches for
            ExporterClient(server.url, "penguins", basic_auth=("alice", "s3cret"),
                           ca_file=str(certs / "other-ca.crt"), retries=0).send(
                [{"features": {}}])
        assert "TLS" in str(unknown_ca.value)
        # plain HTTP to the TLS port: the connection fails, nothing is served in clear text
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/metrics")
            conn.getresponse().read()
        conn.close()
        # /metrics needs the credentials too (--protect-metrics)
        assert http_request("GET", server.url + "/metrics", context=context)[0] == 401
        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        status, body = http_request("GET", server.url + "/metrics", context=context,
                                    headers={"Authorization": auth})
        assert status == 200
    text = body.decode()
    assert value(text, "promdrift_inferences_total", model="penguins") == 3
    assert value(text, "promdrift_exporter_rejected_total", route="observations",
                 reason="unauthorized") == 1
    assert value(text, "promdrift_exporter_requests_total", route="metrics", code="401") == 1


def test_mtls_without_a_client_certificate_fails_the_handshake(baseline_path, tmp_path,
                                                                 certs):
    config = web_config(certs, "mtls.yml", "tls_server_config:\n  cert_file: server.crt\n"
                        "  key_file: server.key\n  client_ca_file: ca.crt\n"
                        "  min_version: TLS12\n")
    ca, crt, key = (str(certs / n) for n in ("ca.crt", "client.crt", "client.key"))
    with_cert = ssl.create_default_context(cafile=ca)
    with_cert.load_cert_chain(crt, key)
    with exporter(baseline_path, tmp_path, "--web-config", config, context=with_cert) as server:
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            without = ssl.create_default_context(cafile=ca)
            without.maximum_version = version
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                    with without.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        got = tls.recv(100)
            except (ssl.SSLError, ConnectionError) as e:
                got = e
            if version == ssl.TLSVersion.TLSv1_2:  # the handshake itself fails
                assert isinstance(got, ssl.SSLError), got
            else:  # TLS 1.3 ends the handshake before the server judges the client: the
                assert not isinstance(got, bytes) or got == b"", got  # answer is an alert
        client = ExporterClient(server.url, "penguins", ca_file=ca, cert_file=crt,
                                key_file=key)
        assert client.send([{"features": {"bill_length_mm": 41.0}}]) == 1
        text = http_request("GET", server.url + "/metrics", context=with_cert)[1].decode()
    assert value(text, "promdrift_inferences_total", model="penguins") == 1


@pytest.mark.parametrize("text, key", [
    ("tls_server_config:\n  cert_file: server.crt\n", "tls_server_config.key_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: nope.key\n",
     "tls_server_config.key_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
     "tls_server_config.cert_file, key_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  min_version: TLS14\n", "tls_server_config.min_version"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites"),
    ("basic_auth_users:\n  alice: plain-password\n", "basic_auth_users.alice"),
    ("basic_auth_user:\n  alice: x\n", "basic_auth_user"),
    ("- a list\n", "must be a mapping"),
])
def test_bad_web_config_files_are_refused_at_start_naming_the_key(certs, baseline_path, text,
                                                                  key, capsys):
    path = web_config(certs, "bad.yml", text)
    with pytest.raises(WebConfigError, match=key.replace(".", r"\.")):
        WebConfig.load(path)
    assert cli.main(["exporter", "--baseline", baseline_path, "--web-config", path]) == 2
    assert key in capsys.readouterr().err


# ------------------------------------------------------------------ clean shutdown

def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_sigterm_drains_and_every_acknowledged_row_is_counted(baseline_path, tmp_path):
    """Requests run while each worker, then the master, gets SIGTERM (what Kubernetes sends
    a deleted pod): every row the exporter acknowledged is in /metrics (read after the
    workers were replaced) and in the label store written at exit."""
    labels = tmp_path / "labels"
    acknowledged, failures, lock = [], [], threading.Lock()
    stop = threading.Event()
    server = exporter(baseline_path, tmp_path, "--threads", "4", "--labels-dir", str(labels),
                      "--graceful-timeout", "20", workers=2)

    def load(t):
        for i in range(100_000):
            if stop.is_set():
                return
            rows = [{"features": {"bill_length_mm": 35.0 + j, "island": "Dream"},
                     "prediction": "Adelie", "id": f"{t}-{i}-{j}"} for j in range(50)]
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                conn.request("POST", PATH, json.dumps(rows), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        acknowledged.extend(r["id"] for r in rows)
                else:
                    failures.append(resp.status)
            except (ConnectionError, http.client.HTTPException) as e:
                failures.append(repr(e))  # never acknowledged: may or may not be counted
                time.sleep(0.05)
            finally:
                conn.close()

    with server:
        threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        try:
            for _ in range(2):  # each worker of the moment drains and is replaced
                time.sleep(1.0)
                for pid in _children(server.proc.pid):
                    os.kill(pid, signal.SIGTERM)
            time.sleep(1.0)
        finally:
            stop.set()
            for th in threads:
                th.join(60)
        assert not any(th.is_alive() for th in threads)
        text = http_request("GET", server.url + "/metrics")[1].decode()
        assert failures == [], failures[:5]
        assert value(text, "promdrift_inferences_total", model="penguins") == len(acknowledged)
        assert value(text, "promdrift_exporter_rows_total", route="observations",
                     model="penguins") == len(acknowledged)
        # and now the master: it drains its workers and exits 0
        more = ExporterClient(server.url, "penguins")
        more.send([{"features": {"bill_length_mm": 50.0}, "prediction": "Gentoo",
                    "id": "last"}])  # still queued for the label store: the exit writes it
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    assert len(acknowledged) > 0
    with sqlite3.connect(str(labels / "labels-penguins.sqlite3")) as db:
        stored = {r[0] for r in db.execute("SELECT id FROM outcomes")}
    assert stored == set(acknowledged) | {"last"}


def test_the_documented_example_web_config_loads(certs, tmp_path):
    """docs/examples/web-config.yml, with this test's certificate in place of its paths."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "docs", "examples", "web-config.yml")) as f:
        text = f.read()
    text = text.replace("/etc/promdrift/tls/tls.crt", str(certs / "server.crt")).replace(
        "/etc/promdrift/tls/tls.key", str(certs / "server.key"))
    path = tmp_path / "web-config.yml"
    path.write_text(text)
    config = WebConfig.load(str(path))
    assert config.tls and config.min_version == "TLS12"
    auth = config.basic_auth()
    assert auth.check("Basic " + base64.b64encode(b"model-server:change-me").decode())
    assert not auth.check("Basic " + base64.b64encode(b"prometheus:change-me").decode())
