"""The exporter's HTTP server: connections are read on an asyncio event loop, and the app (any
WSGI app; the exporter's is Flask) runs in a thread pool on complete requests only, so a client
that sends slowly holds a connection slot and a buffer, never a thread.

    >>> import urllib.request
    >>> from flask import Flask
    >>> app = Flask("demo")
    >>> _ = app.get("/")(lambda: "hello")
    >>> with Server(app, Limits(read_timeout=2.0)).running("127.0.0.1", 0) as url:
    ...     urllib.request.urlopen(url + "/").read()
    b'hello'

Limits, per process (:class:`Limits`; ``promdrift exporter``'s options):

- ``read_timeout``: a request head must be complete within this many seconds of the
  connection being ready for it (accepted, TLS handshake done, or its previous answer sent),
  and its body within as many seconds of the head; otherwise the answer is 408 (or, when
  nothing of a request arrived, the connection is closed). A TLS handshake has as long.
- ``max_connections``: a connection beyond this many open ones is answered 503 with
  ``Retry-After`` and closed.
- ``max_buffer``: bytes of request bodies held at once; a request whose body would go beyond
  is answered 503 with ``Retry-After`` before its body is read.
- ``max_body``: a body is read up to ``max_body + 1`` bytes and no further (a larger
  ``Content-Length`` is not read at all): the app sees that it is too large and answers 413,
  then the connection is closed.
- ``max_head``: bytes of request line and headers (431 beyond).

So the memory clients can hold in one process is bounded by about ``max_buffer`` plus
``max_connections`` times (``max_head`` + 128 KiB of stream and socket buffers).

:meth:`Server.stop` (SIGTERM) closes the listening sockets, closes the connections that are
waiting for a request, answers the requests in flight (with ``Connection: close``) for up to
``graceful_timeout`` seconds, cuts what is left, and waits for the app calls under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import ssl
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple
from urllib.parse import unquote_to_bytes

from promdrift.extras import require

from .limits import Limits
from .metrics import INGEST_ROUTES, METRICS_KEY, route_of

require("exporter", "h11", "h11")

import h11  # noqa: E402

__all__ = ["Server", "Limits", "listen", "METRICS_KEY"]

log = logging.getLogger("promdrift.exporter")

_READ = 65536
_ACCEPTS = 64  # connections accepted at most per wake-up of a listener
_LINGER = 1.0  # seconds a refused connection is read (and dropped) so the client sees the answer


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` holds a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


class _Cycle:
    """What one request of a connection has received so far; ``first``: the connection's
    first request (a connection is idle, and closed by :meth:`Server.stop`, only between
    requests, never before its first one: the client has just sent it)."""

    def __init__(self, first: bool) -> None:
        self.first = first
        self.received = False


class Server:
    """Serves a WSGI ``app`` on listening sockets (see the module's documentation).

    ``ssl_context``: serve HTTPS (``WebConfig.ssl_context()``). ``max_requests``: after this
    many answers (0: never) ``on_max_requests`` is called once, and every later answer closes
    its connection (gunicorn's worker recycling). :meth:`start` / :meth:`stop` run in an
    event loop (``promdrift.exporter.service.worker`` runs them in each gunicorn worker);
    :meth:`running` serves from a background thread.
    """

    def __init__(self, app: Callable[..., Any], limits: Limits = Limits(),
                 ssl_context: Optional[ssl.SSLContext] = None, max_requests: int = 0,
                 on_max_requests: Optional[Callable[[], None]] = None):
        self.app = app
        self.limits = limits
        self.ssl = ssl_context
        extensions = getattr(app, "extensions", None)
        self.metrics = extensions.get(METRICS_KEY) if isinstance(extensions, dict) else None
        self.pool = ThreadPoolExecutor(limits.threads, thread_name_prefix="promdrift-exporter")
        self.max_requests = max_requests
        self.on_max_requests = on_max_requests
        self.answered = 0
        self.buffered = 0  # bytes reserved for bodies being read or handled
        self.stopping = False
        self._listeners: List[socket.socket] = []
        self._connections: Set[asyncio.Task] = set()
        self._idle: Set[asyncio.Task] = set()
        #: connections accepted and not yet served: their TLS handshakes (tasks), and the
        #: protocols whose serving task has not started yet
        self._opening: Set[Any] = set()

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    # ------------------------------------------------------------------ life cycle
    async def start(self, sockets: List[Any]) -> None:
        """Accept connections on listening ``sockets`` (``socket.socket`` or gunicorn's)."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            sock = getattr(sock, "sock", sock)
            sock.setblocking(False)
            self._listeners.append(sock)
            loop.add_reader(sock.fileno(), self._ready, sock)

    def _ready(self, sock: socket.socket) -> None:
        """Accept the connections waiting on ``sock`` (called by the loop when it is readable;
        several workers may be woken for one connection). Each is set up (its TLS handshake,
        within ``read_timeout``) in a task of its own."""
        for _ in range(_ACCEPTS):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it
            except OSError as e:  # EMFILE and the like: pause this listener a moment
                log.warning("promdrift exporter: accept failed: %s", e)
                loop = asyncio.get_running_loop()
                loop.remove_reader(sock.fileno())
                loop.call_later(0.5, lambda: sock in self._listeners and loop.add_reader(
                    sock.fileno(), self._ready, sock))
                return
            conn.setblocking(False)
            opening = asyncio.ensure_future(self._open(conn))
            self._opening.add(opening)
            opening.add_done_callback(self._opening.discard)

    async def _open(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: _Protocol(self), conn, ssl=self.ssl,
                ssl_handshake_timeout=self.limits.read_timeout if self.ssl else None)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as e:
            log.debug("promdrift exporter: connection not set up: %s", e)
            conn.close()

    async def stop(self, timeout: Optional[float] = None) -> None:
        """Stop accepting, close idle connections, let the requests in flight finish for up to
        ``timeout`` seconds (default ``graceful_timeout``), cut the rest and wait for the app
        calls under way."""
        self.stopping = True
        self._stop_accepting()
        for task in list(self._idle):
            task.cancel()
        loop = asyncio.get_running_loop()
        wait = self.limits.graceful_timeout if timeout is None else timeout
        deadline = loop.time() + wait
        while self._connections or self._opening:
            left = deadline - loop.time()
            pending = set(self._connections)
            if left > 0:
                if pending:
                    _, pending = await asyncio.wait(pending, timeout=min(left, 0.1))
                else:  # connections being set up (TLS handshakes are bounded)
                    await asyncio.sleep(0.01)
                continue
            for task in list(self._opening):
                if isinstance(task, asyncio.Task):
                    task.cancel()
            self._opening.clear()
            for task in pending:
                task.cancel()
            log.warning("promdrift exporter: %d connections cut after %.0f s of shutdown",
                        len(pending), wait)
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.to_thread(self.pool.shutdown, True)

    def _stop_accepting(self) -> None:
        """Stop accepting now; the listening sockets are closed (in this process: gunicorn's
        other workers keep accepting on theirs)."""
        loop = asyncio.get_running_loop()
        for sock in self._listeners:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners = []

    @contextlib.contextmanager
    def running(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve from a background thread while the ``with`` block runs; yields the base URL.
        Leaving the block stops the server as :meth:`stop` does."""
        sock = listen(host, port)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failed: List[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start([sock]))
            except BaseException as e:  # reported to the caller below
                failed.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="promdrift-exporter-loop", daemon=True)
        thread.start()
        started.wait(30)
        if failed:
            sock.close()
            raise failed[0]
        name = f"[{host}]" if ":" in host else host
        try:
            yield f"{'https' if self.ssl else 'http'}://{name}:{sock.getsockname()[1]}"
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(
                self.limits.graceful_timeout + 30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()
            sock.close()

    # ------------------------------------------------------------------ connections
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      protocol: "_Protocol") -> None:
        task = asyncio.current_task()
        self._opening.discard(protocol)
        try:
            if len(self._connections) >= self.limits.max_connections:
                await self._refuse(reader, writer, 503, "too many connections: retry later",
                                   "none", retry=True)
                return
            self._connections.add(task)
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() closed an idle connection or cut one at its deadline
        except (ConnectionError, TimeoutError, ssl.SSLError, h11.ProtocolError):
            pass  # the client went away, or would not take its answer in time
        except Exception:  # a bug here must not take the loop down
            log.exception("promdrift exporter: connection failed")
        finally:
            self._connections.discard(task)
            self._idle.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
        loop = asyncio.get_running_loop()
        limits = self.limits
        first = True
        while True:
            cycle = _Cycle(first)
            first = False
            try:
                event = await self._next(conn, reader, loop.time() + limits.read_timeout,
                                         cycle)
            except TimeoutError:
                if cycle.received or conn.trailing_data[0]:
                    await self._refuse(reader, writer, 408, f"request head not received within "
                                       f"{limits.read_timeout:g} s", "none")
                return
            except h11.RemoteProtocolError as e:
                await self._refuse(reader, writer, e.error_status_hint,
                                   "malformed request head", "none")
                return
            if not isinstance(event, h11.Request):
                return  # the client closed, or asked for a protocol switch
            target = event.target.decode("latin-1")
            path = target.partition("?")[0]
            route = route_of(path) if self.metrics is not None else "other"
            length = _content_length(event)
            read = length is None or length <= limits.max_body
            need = min(length if length is not None else limits.max_body + 1,
                       limits.max_body + 1) if read else 0
            if self.buffered + need > limits.max_buffer:
                await self._refuse(reader, writer, 503, "too many request bodies held: retry "
                                   "later", route, "overloaded", retry=True)
                return
            self.buffered += need
            try:
                body, complete = b"", not read
                if read:
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(conn.send(h11.InformationalResponse(status_code=100,
                                                                         headers=[])))
                    try:
                        body, complete = await self._body(
                            conn, reader, loop.time() + limits.read_timeout, limits.max_body + 1)
                    except TimeoutError:
                        await self._refuse(reader, writer, 408, f"request body not received "
                                           f"within {limits.read_timeout:g} s", route, "timeout")
                        return
                environ = self._environ(event, body, read, length, writer)
                status, headers, data = await loop.run_in_executor(self.pool, self._call,
                                                                   environ)
            finally:
                self.buffered -= need
            self.answered += 1
            if self.max_requests and self.answered == self.max_requests:
                self._stop_accepting()  # the other workers take the new connections
                if self.on_max_requests is not None:
                    self.on_max_requests()
            close = (not complete or self.stopping
                     or (self.max_requests and self.answered >= self.max_requests))
            await self._respond(conn, writer, event.method, status, headers, data, close)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader,
                    deadline: float, cycle: Optional[_Cycle] = None) -> Any:
        """The next h11 event, reading until ``deadline`` (``TimeoutError`` after it). While
        nothing of a request has arrived the connection is idle: :meth:`stop` closes it."""
        task = asyncio.current_task()
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            idle = (cycle is not None and not cycle.first and not cycle.received
                    and not conn.trailing_data[0])
            if idle:
                if self.stopping:
                    return h11.ConnectionClosed()
                self._idle.add(task)
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(_READ)
            finally:
                if idle:
                    self._idle.discard(task)
            if data and cycle is not None:
                cycle.received = True
            conn.receive_data(data)

    async def _body(self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: float,
                    limit: int) -> Tuple[bytes, bool]:
        """The request body, at most ``limit`` bytes, and whether it was read to its end."""
        parts: List[bytes] = []
        size = 0
        while True:
            event = await self._next(conn, reader, deadline)
            if isinstance(event, h11.Data):
                parts.append(event.data)
                size += len(event.data)
                if size >= limit:
                    return b"".join(parts)[:limit], False
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts), True
            else:
                raise ConnectionError("the client closed during the body")

    def _environ(self, req: h11.Request, body: bytes, read: bool, length: Optional[int],
                 writer: asyncio.StreamWriter) -> dict:
        path, _, query = req.target.partition(b"?")
        local = writer.get_extra_info("sockname") or ("", 0)
        peer = writer.get_extra_info("peername") or ("", 0)
        environ = {
            "REQUEST_METHOD": req.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": str(local[0]), "SERVER_PORT": str(local[1]),
            "SERVER_PROTOCOL": "HTTP/" + req.http_version.decode("ascii"),
            "REMOTE_ADDR": str(peer[0]), "REMOTE_PORT": str(peer[1]),
            "CONTENT_LENGTH": str(len(body) if read else length),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "https" if self.ssl else "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        for name, value in req.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            if key == "CONTENT_TYPE":
                environ[key] = text
            elif key not in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _call(self, environ: dict) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """Run the app on one request (in a pool thread): status, headers, body."""
        started: List[Any] = []
        chunks: List[bytes] = []

        def start_response(status: str, headers: List[Tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.app(environ, start_response)
            try:
                chunks.extend(chunk for chunk in result if chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            return int(started[0].split(" ", 1)[0]), list(started[1]), b"".join(chunks)
        except Exception:
            log.exception("promdrift exporter: the app failed on %s", environ["PATH_INFO"])
            if self.metrics is not None:
                self.metrics.answered(route_of(environ["PATH_INFO"]), 500)
            return 500, [("Content-Type", "application/json")], b'{"error": "internal error"}\n'

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, method: bytes,
                       status: int, headers: List[Tuple[str, str]], data: bytes,
                       close: bool) -> None:
        head = method == b"HEAD"
        drop = ("connection", "transfer-encoding") if head else (
            "connection", "transfer-encoding", "content-length")
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers
               if k.lower() not in drop]
        if not head:
            out.append((b"Content-Length", str(len(data)).encode("ascii")))
        if close:
            out.append((b"Connection", b"close"))
        writer.write(conn.send(h11.Response(status_code=status, headers=out,
                                            reason=_phrase(status))))
        if data and not head:
            writer.write(conn.send(h11.Data(data=data)))
        writer.write(conn.send(h11.EndOfMessage()))
        async with asyncio.timeout(self.limits.read_timeout):
            await writer.drain()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      status: int, message: str, route: str, reason: Optional[str] = None,
                      retry: bool = False) -> None:
        """Answer ``status`` with a JSON error and close, reading (and dropping) what the
        client still sends for a moment, so that it sees the answer rather than a reset."""
        if self.metrics is not None:
            self.metrics.answered(route, status)
            if reason is not None and route in INGEST_ROUTES:
                self.metrics.refused(route, reason)
        body = (json.dumps({"error": message}) + "\n").encode("utf-8")
        lines = [f"HTTP/1.1 {status} {_phrase(status).decode('ascii')}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}",
                 "Connection: close"]
        if retry:
            lines.append(f"Retry-After: {self.limits.retry_after}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_LINGER):
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                while await reader.read(_READ):
                    pass


class _Protocol(asyncio.StreamReaderProtocol):
    """A connection of a :class:`Server`, served by ``Server._accept`` in a task of its own;
    counted as opening from its connection until that task starts (so that
    :meth:`Server.stop` waits for it)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        loop = asyncio.get_running_loop()
        super().__init__(asyncio.StreamReader(limit=_READ, loop=loop),
                         lambda reader, writer: server._accept(reader, writer, self), loop=loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._server._opening.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._server._opening.discard(self)
        super().connection_lost(exc)


def _content_length(req: h11.Request) -> Optional[int]:
    """The body length a request declares: ``None`` for a chunked body (h11 has checked the
    framing headers; their names are lower case), 0 without a body."""
    for name, value in req.headers:
        if name == b"content-length":
            return int(value)
        if name == b"transfer-encoding":
            return None
    return 0


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
