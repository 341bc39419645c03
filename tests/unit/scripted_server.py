"""A tiny scripted HTTP server on loopback, for exact fault sequences over real HTTP.

Each (method, path) has a queue of canned replies, served in order; when the
queue is empty the path's default reply (if any) repeats. Every request is
recorded with its headers and body, so tests can prove what was sent where
(e.g. that no Authorization header reached the fake CDN on 127.0.0.2).

A reply can also misbehave on purpose: wait before answering, reset the
connection, promise more bytes than it sends, or stream chunks slowly.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before anything is sent
    action: str = "respond"  # "respond" | "reset" (close without a reply) | "truncate"
    declared_length: int | None = None  # Content-Length to announce (with "truncate": more than sent)
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    chunk_size: int = 65536
    chunk_delay: float = 0.0

    @classmethod
    def json(cls, status: int, data: Any, **kwargs: Any) -> Reply:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return cls(status=status, body=json.dumps(data).encode(), headers=headers, **kwargs)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain", **kwargs: Any) -> Reply:
        headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
        return cls(status=status, body=text.encode(), headers=headers, **kwargs)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status=status, headers={"Location": location})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    host: str  # the address the server listens on

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Reply | Callable[[Recorded], Reply]


class ScriptedServer:
    def __init__(self, host: str = "127.0.0.1", *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.requests: list[Recorded] = []
        self._queues: dict[tuple[str, str], deque[Responder]] = defaultdict(deque)
        self._defaults: dict[tuple[str, str], Responder] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting -------------------------------------------------------------------

    def script(self, method: str, path: str, *replies: Responder) -> None:
        with self._lock:
            self._queues[(method.upper(), path)].extend(replies)

    def default(self, method: str, path: str, reply: Responder) -> None:
        with self._lock:
            self._defaults[(method.upper(), path)] = reply

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method.upper())]

    def _next_reply(self, record: Recorded) -> Reply:
        key = (record.method, record.path.split("?", 1)[0])
        with self._lock:
            self.requests.append(record)
            queue = self._queues.get(key)
            responder = queue.popleft() if queue else self._defaults.get(key)
        if responder is None:
            return Reply.json(404, {"error": {"code": "unscripted", "message": f"no script for {key}"}})
        return responder(record) if callable(responder) else responder

    # --- life cycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        return self.origin + path

    @property
    def base_url(self) -> str:
        return self.url("/v1")

    def start(self) -> ScriptedServer:
        server = _QuietServer((self.host, 0), _make_handler(self))
        server.daemon_threads = True
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up early (timeouts, aborted downloads) are part of the tests.
        pass


def _make_handler(owner: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet tests
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = Recorded(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                host=owner.host,
            )
            reply = owner._next_reply(record)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.action == "reset":
                # RST instead of a reply: SO_LINGER with a zero timeout.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(reply.body), reply.chunk_size):
                    piece = reply.body[i : i + reply.chunk_size]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                self.wfile.write(b"0\r\n\r\n")
                return
            declared = len(reply.body) if reply.declared_length is None else reply.declared_length
            self.send_header("Content-Length", str(declared))
            if reply.action == "truncate":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler
