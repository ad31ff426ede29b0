"""A small threaded TCP proxy on loopback that sits between the functions and the AWS
emulator (moto) and injects faults on demand.

Modes (``proxy.set_mode(name, **options)``):

``pass``      pipe bytes both ways, untouched (HTTP/1.1 keep-alive works: the
              connection lives as long as client and upstream keep it open).
``down``      accept, then reset the connection at once (client sees ECONNRESET /
              "connection closed before message completed").
``refuse``    close the listening socket: new connections are refused (ECONNREFUSED).
              Switching to another mode re-binds the same port.
``slow``      hold every request ``delay`` seconds before forwarding it upstream.
``throttle``  answer every HTTP request with HTTP 400 and a DynamoDB-style
              ``ThrottlingException`` (keep-alive honoured, nothing reaches upstream).
``error``     answer every request with HTTP ``status`` (default 500) and a
              DynamoDB-style ``InternalServerError`` body.
``unprocessed`` answer every DynamoDB ``BatchGetItem`` after ``delay`` seconds with a
              200 whose ``UnprocessedKeys`` hold every requested key and whose
              ``Responses`` are empty (built from the request's ``RequestItems``; nothing
              reaches upstream), as DynamoDB does under throttling; every other request
              is forwarded as in ``pass``.

``targets=("DynamoDB_20120810",)`` limits a fault (down/slow/throttle/error) to
requests whose ``X-Amz-Target`` header starts with one of the prefixes; other
requests are forwarded as in ``pass`` (e.g. throttle DynamoDB, leave Secrets Manager
alone).

Switching modes closes every connection that is currently being piped, so that
pooled keep-alive connections in the client pick up the new mode on their next
request. ``proxy.stats`` counts what happened (``accepted``, ``piped``, ``forwarded``,
``reset``, ``delayed``, ``throttled``, ``errored``, ``unprocessed``).

The proxy is bounded: every socket has a timeout, all threads are daemons, and
``stop()`` (or the ``with`` block, or ``max_lifetime`` seconds) shuts everything down.
Only loopback addresses are used.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from typing import Iterable, Optional

MODES = ("pass", "down", "refuse", "slow", "throttle", "error", "unprocessed")
BATCH_GET_ITEM = "DynamoDB_20120810.BatchGetItem"

_HEADER_LIMIT = 64 * 1024
_BODY_LIMIT = 16 * 1024 * 1024


class ProxyError(RuntimeError):
    pass


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _close(*socks: Optional[socket.socket]) -> None:
    for s in socks:
        if s is None:
            continue
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


class _Request:
    """An HTTP/1.1 request head read off a client socket (body read on demand)."""

    def __init__(self, head: bytes, rest: bytes):
        self.head = head  # bytes up to and including the blank line
        self.rest = rest  # bytes already read past the head
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def wants_close(self) -> bool:
        return (self.header("connection") or "").lower() == "close" or self.request_line.endswith(
            "HTTP/1.0"
        )

    def with_connection_close(self) -> bytes:
        out = [self.request_line]
        for k, v in self.headers:
            if k.lower() in ("connection", "keep-alive"):
                continue
            out.append(f"{k}: {v}")
        out.append("Connection: close")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        listen_port: int = 0,
        *,
        upstream_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        io_timeout: float = 60.0,
        max_lifetime: Optional[float] = 3600.0,
    ):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = listen_port
        self.io_timeout = io_timeout
        self.max_lifetime = max_lifetime
        self.stats: Counter = Counter()
        self._lock = threading.Lock()
        self._mode = "pass"
        self._delay = 0.0
        self._targets: Optional[tuple[str, ...]] = None
        self._status = 500
        self._gen = 0
        self._applied_gen = 0
        self._applied = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._listener: Optional[socket.socket] = None
        self._live: set[socket.socket] = set()
        self._accept_thread: Optional[threading.Thread] = None
        self._started_at = 0.0

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "FaultProxy":
        self._listener = self._bind()
        self.port = self._listener.getsockname()[1]
        self._started_at = time.monotonic()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            live = list(self._live)
            self._live.clear()
            self._applied.notify_all()
        for s in live:
            _close(s)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        if self._listener is not None:
            _close(self._listener)
            self._listener = None

    def __enter__(self) -> "FaultProxy":
        return self.start() if self._accept_thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- mode control
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(
        self,
        mode: str,
        *,
        delay: float = 0.0,
        targets: Optional[Iterable[str]] = None,
        status: int = 500,
        keep_connections: bool = False,
    ) -> None:
        """Switch mode. Returns once the listener reflects it (refuse/re-bind).

        Unless ``keep_connections``, connections currently being piped are closed so
        that the client's next request opens a new connection under the new mode.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        if mode == "slow" and delay <= 0:
            raise ValueError("slow mode needs delay > 0")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if mode == "unprocessed" and not targets:
            targets = (BATCH_GET_ITEM,)
        with self._lock:
            self._mode = mode
            self._delay = float(delay)
            self._targets = tuple(targets) if targets else None
            self._status = int(status)
            self._gen += 1
            gen = self._gen
            live = [] if keep_connections else list(self._live)
            if not keep_connections:
                self._live.clear()
        for s in live:
            _close(s)
        with self._lock:
            ok = self._applied.wait_for(
                lambda: self._applied_gen >= gen or self._stop.is_set(), timeout=10
            )
        if not ok:
            raise ProxyError(f"proxy did not apply mode {mode!r} in time")

    def reset_stats(self) -> None:
        with self._lock:
            self.stats.clear()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _snapshot(self):
        with self._lock:
            return self._mode, self._delay, self._targets, self._status

    # ---------------------------------------------------------------- internals
    def _bind(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                s.bind((self.host, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    s.close()
                    raise
                time.sleep(0.05)
        s.listen(128)
        s.settimeout(0.1)
        return s

    def _accept_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self.max_lifetime and time.monotonic() - self._started_at > self.max_lifetime:
                    break
                with self._lock:
                    mode, gen = self._mode, self._gen
                if mode == "refuse":
                    if self._listener is not None:
                        _close(self._listener)
                        self._listener = None
                elif self._listener is None:
                    self._listener = self._bind()
                with self._lock:
                    if self._applied_gen < gen:
                        self._applied_gen = gen
                        self._applied.notify_all()
                if self._listener is None:
                    self._stop.wait(0.05)
                    continue
                try:
                    conn, _ = self._listener.accept()
                except (socket.timeout, BlockingIOError):
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    continue
                self._count("accepted")
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            self._stop.set()
            if self._listener is not None:
                _close(self._listener)
                self._listener = None
            with self._lock:
                live = list(self._live)
                self._live.clear()
                self._applied.notify_all()
            for s in live:
                _close(s)

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._live.add(s)

    def _untrack(self, *socks: Optional[socket.socket]) -> None:
        with self._lock:
            for s in socks:
                self._live.discard(s)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(self.io_timeout)
        self._track(conn)
        try:
            mode, _, targets, _ = self._snapshot()
            if mode == "pass":
                self._pipe_connection(conn, b"")
            elif mode == "down" and targets is None:
                self._count("reset")
                _reset(conn)
            else:
                self._request_loop(conn)
        except OSError:
            pass
        finally:
            self._untrack(conn)
            _close(conn)

    def _connect_upstream(self) -> socket.socket:
        up = socket.create_connection(self.upstream, timeout=self.io_timeout)
        up.settimeout(self.io_timeout)
        return up

    def _pipe_connection(self, conn: socket.socket, first: bytes) -> None:
        """Raw bidirectional pipe (pass mode)."""
        up = self._connect_upstream()
        self._track(up)
        self._count("piped")
        try:
            if first:
                up.sendall(first)
            self._pump_both(conn, up)
        finally:
            self._untrack(up)
            _close(up)

    def _pump_both(self, a: socket.socket, b: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while not self._stop.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                # One side is done: end the whole exchange.
                _close(src, dst)

        t = threading.Thread(target=pump, args=(b, a), daemon=True)
        t.start()
        pump(a, b)
        t.join(timeout=self.io_timeout)

    def _read_head(self, conn: socket.socket, buf: bytes) -> Optional[_Request]:
        while b"\r\n\r\n" not in buf:
            if len(buf) > _HEADER_LIMIT:
                raise OSError("request head too large")
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        return _Request(head + b"\r\n\r\n", rest)

    def _read_body(self, conn: socket.socket, req: _Request) -> bytes:
        """Consume the request body; return bytes read past it (pipelined data)."""
        return self._read_full_body(conn, req)[1]

    def _read_full_body(self, conn: socket.socket, req: _Request) -> tuple[bytes, bytes]:
        """Consume the request body; return (body, bytes read past it)."""
        buf = req.rest
        te = (req.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                while b"\r\n" not in buf:
                    buf += self._recv_some(conn)
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    while True:
                        while b"\r\n" not in buf:
                            buf += self._recv_some(conn)
                        line, _, buf = buf.partition(b"\r\n")
                        if not line:
                            return body, buf
                while len(buf) < size + 2:
                    buf += self._recv_some(conn)
                if len(body) + size > _BODY_LIMIT:
                    raise OSError("request body too large")
                body += buf[:size]
                buf = buf[size + 2 :]
        length = int(req.header("content-length") or 0)
        if length > _BODY_LIMIT:
            raise OSError("request body too large")
        while len(buf) < length:
            buf += self._recv_some(conn)
        return buf[:length], buf[length:]

    @staticmethod
    def _recv_some(conn: socket.socket) -> bytes:
        data = conn.recv(65536)
        if not data:
            raise OSError("client closed mid-request")
        return data

    def _fault_response(self, status: int, err_type: str, message: str, close: bool) -> bytes:
        body = json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{err_type}", "message": message}
        ).encode()
        reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
            status, "Error"
        )
        head = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/x-amz-json-1.0",
            f"Content-Length: {len(body)}",
            f"x-amzn-RequestId: {uuid.uuid4()}",
            f"x-amzn-ErrorType: {err_type}",
            "Connection: close" if close else "Connection: keep-alive",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    @staticmethod
    def _unprocessed_response(body: bytes, close: bool) -> bytes:
        """A BatchGetItem success that processed nothing: every requested key comes back in
        `UnprocessedKeys` (each table's entry is the request's own KeysAndAttributes)."""
        try:
            request_items = json.loads(body or b"{}").get("RequestItems") or {}
        except (ValueError, AttributeError):
            request_items = {}
        payload = json.dumps(
            {"Responses": {table: [] for table in request_items}, "UnprocessedKeys": request_items}
        ).encode()
        head = [
            "HTTP/1.1 200 OK",
            "Content-Type: application/x-amz-json-1.0",
            f"Content-Length: {len(payload)}",
            f"x-amzn-RequestId: {uuid.uuid4()}",
            f"x-amz-crc32: {zlib.crc32(payload)}",
            "Connection: close" if close else "Connection: keep-alive",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload

    def _request_loop(self, conn: socket.socket) -> None:
        """Request-aware handling for fault modes: decide per request."""
        buf = b""
        while not self._stop.is_set():
            req = self._read_head(conn, buf)
            if req is None:
                return
            mode, delay, targets, status = self._snapshot()
            target = req.header("x-amz-target") or ""
            hit = targets is None or any(target.startswith(t) for t in targets)
            if not hit or mode == "pass":
                return self._forward_one(conn, req)
            if mode == "down":
                self._count("reset")
                _reset(conn)
                return
            if mode == "slow":
                self._count("delayed")
                if self._stop.wait(delay):
                    return
                return self._forward_one(conn, req)
            if mode == "unprocessed":
                if req.header("expect"):
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body, buf = self._read_full_body(conn, req)
                close = req.wants_close
                self._count("unprocessed")
                if self._stop.wait(delay):
                    return
                conn.sendall(self._unprocessed_response(body, close))
                if close:
                    return
                continue
            if req.header("expect"):
                close = True
                buf = b""
            else:
                buf = self._read_body(conn, req)
                close = req.wants_close
            if mode == "throttle":
                self._count("throttled")
                conn.sendall(self._fault_response(400, "ThrottlingException", "Rate exceeded", close))
            else:  # error
                self._count("errored")
                conn.sendall(
                    self._fault_response(status, "InternalServerError", "Internal server error", close)
                )
            if close:
                return

    def _forward_one(self, conn: socket.socket, req: _Request) -> None:
        """Forward this request with `Connection: close`, relay the response, end."""
        self._count("forwarded")
        up = self._connect_upstream()
        self._track(up)
        try:
            up.sendall(req.with_connection_close() + req.rest)
            self._pump_both(conn, up)
        finally:
            self._untrack(up)
            _close(up)
