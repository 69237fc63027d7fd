"""The simulator's HTTP side: a threaded HTTP/1.1 server (keep-alive, TLS if asked) and `Simulator`.

`Simulator` is what tests and the `ccs-sim` command use: it binds, serves in a background thread
as soon as it is made, and stops (quickly, open keep-alive connections included) on `close()` or
at the end of a `with` block. The CCS behaviour itself lives in `api.py`; this module moves bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .api import CcsApi, Request, Response, message_response
from .auth import DEFAULT_USERS, SimUser, TokenBook
from .faults import FaultInjector
from .requestlog import RequestLog, RequestRecord
from .settings import SimSettings, check_setting_names
from .store import DEFAULT_TICKETS, TicketStore, generate_tickets, load_seed_file

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12431  # the CCS default
MAX_BODY_BYTES = 1 << 20
_JOIN_TIMEOUT = 2.0

logger = logging.getLogger(__name__)


class _BodyError(Exception):
    """The request body cannot be read; answer `response` and close the connection."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection and writes the API's answer."""

    protocol_version = "HTTP/1.1"
    server_version = "ccs-sim"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # The base class writes every request to stderr; the Simulator keeps its own log.
        return

    def _dispatch(self) -> None:
        t, wall = time.monotonic(), time.time()
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(exc.response)
            return
        except OSError:
            self.close_connection = True
            return
        response = self.server.api.handle(
            Request(self.command, self.path, self.headers, body, t, wall)
        )
        if response is None:
            self.close_connection = True  # an injected drop: no answer at all
            return
        self._send(response)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        text = self.headers.get("Content-Length")
        if not text:
            return b""
        try:
            length = int(text)
        except ValueError:
            raise _BodyError(message_response(400, "Invalid Content-Length.")) from None
        if length < 0:
            raise _BodyError(message_response(400, "Invalid Content-Length."))
        if length > MAX_BODY_BYTES:
            raise _BodyError(message_response(413, "The request body is too large."))
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("the client closed the connection in the middle of the body")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(message_response(400, "Invalid chunked body.")) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: read and ignored
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(message_response(413, "The request body is too large."))
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _send(self, response: Response) -> None:
        reason = self.responses.get(response.status, ("",))[0]
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
            f"Content-Length: {len(response.body)}",
        ]
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            # One write for head and body: two small writes meet Nagle's algorithm and the
            # peer's delayed ACK, and every answer with a body would wait up to 40 ms.
            self.wfile.write(head + response.body)
        except OSError:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so that closing it closes them too."""

    daemon_threads = True
    request_queue_size = 128
    # On Windows SO_REUSEADDR lets a second server bind a port that is in use, silently.
    allow_reuse_address = os.name != "nt"

    def __init__(
        self, address: tuple[str, int], api: CcsApi, context: ssl.SSLContext | None
    ) -> None:
        self.api = api
        self._context = context
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # serve_forever() notices shutdown() only at its next poll; a wake-up socket makes
        # stopping immediate (the tests start and stop a simulator per test).
        self._stopping = threading.Event()
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        try:
            super().__init__(address, _Handler)
        except BaseException:
            self._wakeup_reader.close()
            self._wakeup_writer.close()
            raise

    def serve_until_stopped(self) -> None:
        """Accept connections (each served in its own thread) until stop() is called."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wakeup_reader, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not self._stopping.is_set():
                        self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver's own step

    def stop(self) -> None:
        """Make serve_until_stopped() return now."""
        self._stopping.set()
        try:
            self._wakeup_writer.send(b"\0")
        except OSError:
            pass

    def server_close(self) -> None:
        super().server_close()
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which stalls for seconds where DNS is
        # slow; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def server_activate(self) -> None:
        super().server_activate()
        if self._context is not None:
            # The handshake happens on first read, in the connection's own thread, so a slow or
            # broken client cannot hold up the accept loop.
            self.socket = self._context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def process_request(self, request: Any, client_address: Any) -> None:
        # Known before its thread starts, so that close() cannot miss a connection just accepted.
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._workers.add(threading.current_thread())
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away, or fail the TLS handshake, are normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        logger.error("ccs-sim: error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Wake every connection thread (idle keep-alive ones too) and wait for them to end."""
        with self._lock:
            connections, workers = list(self._connections), list(self._workers)
        for connection in connections:
            try:
                # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would pull the
                # TLS object from under a thread that is reading.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class Simulator:
    """A running CCS simulator: `with Simulator(port=0, seed=1) as sim: ... sim.url ...`.

    Keyword settings (see SimSettings) can be given here and changed later with configure().
    The server is listening and serving as soon as the object exists. `clock` (POSIX seconds,
    time.time by default) is the tickets' clock: LastModified and the verification job's
    timing; a test passes its own to let a delayed job finish without sleeping.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        tickets: int = DEFAULT_TICKETS,
        seed_file: str | Path | None = None,
        seed: int | None = None,
        users: Iterable[SimUser] | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> None:
        check_setting_names(settings)
        self._settings = SimSettings(**settings)
        self._settings_lock = threading.Lock()
        self.store = TicketStore(
            load_seed_file(seed_file) if seed_file is not None else generate_tickets(tickets),
            clock=clock,
        )
        self._tokens = TokenBook(DEFAULT_USERS if users is None else users)
        self._log = RequestLog(on_request)
        self._closing = threading.Event()
        context = None
        if certfile is not None:
            for path in (certfile, keyfile):
                # ssl says "No such file" without naming the file; say which one.
                if path is not None and not Path(path).is_file():
                    raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
        elif keyfile is not None:
            raise ValueError("keyfile needs a certfile.")
        api = CcsApi(
            store=self.store,
            tokens=self._tokens,
            log=self._log,
            faults=FaultInjector(seed),
            settings=lambda: self._settings,
            configure=self.configure,
            restart=self.restart,
            wait=self._closing.wait,  # latency ends at once when the simulator closes
        )
        self._server = _Server((host, port), api, context)
        self._scheme = "https" if context is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_until_stopped,
            name=f"ccs-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Simulator {self.url} tickets={len(self.store)}>"

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one when created with port=0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. 'http://127.0.0.1:54321' (https when TLS is on)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{self._scheme}://{host}:{self.port}"

    @property
    def settings(self) -> SimSettings:
        """The settings in force now."""
        return self._settings

    @property
    def users(self) -> tuple[SimUser, ...]:
        """The accounts the server knows."""
        return self._tokens.users

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, in order of arrival (/_sim/ requests are not logged)."""
        return self._log.snapshot()

    def configure(self, **changes: Any) -> SimSettings:
        """Change settings while running (thread-safe); the new settings are returned."""
        with self._settings_lock:
            self._settings = self._settings.replace(**changes)
            return self._settings

    def issued_tokens(self) -> tuple[str, ...]:
        """Every access and refresh token the server handed out so far."""
        return self._tokens.issued()

    def restart(self) -> None:
        """Simulate a restart of the CCS service: every access token stops working."""
        self._tokens.restart()

    def ticket(self, number: str) -> dict[str, Any]:
        """A copy of the stored ticket (case-insensitive number); KeyError if there is none."""
        ticket = self.store.get(number)
        if ticket is None:
            raise KeyError(number)
        return ticket

    def tickets(self) -> list[dict[str, Any]]:
        """A copy of every stored ticket."""
        return self.store.snapshot()

    def patch_count(self, ticket: str, status: int | None = None) -> int:
        """How many PATCH requests named `ticket`, optionally only those answered with `status`."""
        return self._log.patch_count(ticket, status)

    def max_requests_in_window(
        self,
        seconds: float = 1.0,
        method: str | None = None,
        *,
        statuses: Collection[int | None] | None = None,
        include_tokens: bool = False,
    ) -> int:
        """The most API requests arriving in any window [t, t + seconds) (see RequestLog)."""
        return self._log.max_in_window(
            seconds, method, statuses=statuses, include_tokens=include_tokens
        )

    def counts(self) -> dict[str, Any]:
        """Request totals by method, by status, and PATCHes by ticket."""
        return self._log.counts()

    def clear_requests(self) -> None:
        """Forget the request log (tickets and tokens stay as they are)."""
        self._log.clear()

    def close(self) -> None:
        """Stop serving, close every connection, and wait for the threads; safe to call twice."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._server.stop()
        self._thread.join(_JOIN_TIMEOUT)
        self._server.server_close()
        self._server.close_connections()
