"""Runs the API and the CDN servers in one process and one event loop.

The sockets are bound here (SO_REUSEADDR, so a restart can take the same ports
at once), which tells us the real ports before uvicorn starts; the URL lines and
``ready`` are printed only once both servers listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import uvicorn

from .app import ASGIApp, Sandbox, create_app, wrap
from .cdn import CdnApp
from .config import SandboxConfig
from .generator import GenerateFn


class _Server(uvicorn.Server):
    # Two servers share one process: the runner owns the signal handlers and stops both.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _QuietIncomplete(logging.Filter):
    # The drop/truncate faults end responses early on purpose; uvicorn reports each one.
    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


async def _watch_parent(parent: int, stop: Callable[[], None]) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: whoever started us is gone
            stop()
            return
        await asyncio.sleep(0.5)


async def serve(
    config: SandboxConfig, *, generator: GenerateFn | None = None, out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    logging.getLogger("uvicorn.error").addFilter(_QuietIncomplete())
    api_sock = bind(config.host, config.port)
    cdn_sock = bind(config.cdn_host, config.cdn_port)
    sandbox = Sandbox(config, generator=generator)
    api_port, cdn_port = api_sock.getsockname()[1], cdn_sock.getsockname()[1]
    base = _url(config.scheme, config.host, api_port)
    sandbox.state.base_url = base + "/v1"
    sandbox.state.cdn_url = _url(config.scheme, config.cdn_host, cdn_port)
    await asyncio.get_running_loop().run_in_executor(None, sandbox.start)

    def server(app: ASGIApp) -> _Server:
        return _Server(
            uvicorn.Config(
                app,
                lifespan="off",
                log_level=config.log_level,
                http="h11",  # the drop fault relies on h11's request cycle holding the transport
                timeout_graceful_shutdown=2,
                ssl_certfile=config.tls_cert,
                ssl_keyfile=config.tls_key,
                server_header=False,
                access_log=config.log_level in ("debug", "info"),
            )
        )

    api = server(wrap(create_app(sandbox=sandbox), sandbox))
    cdn = server(CdnApp(sandbox))

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in (api, cdn):
            if server.should_exit:
                server.force_exit = True  # a second Ctrl-C: do not wait for open downloads
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)

    tasks = [
        asyncio.ensure_future(api.serve(sockets=[api_sock])),
        asyncio.ensure_future(cdn.serve(sockets=[cdn_sock])),
    ]
    while not (api.started and cdn.started):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    if api.started and cdn.started:
        print(f"HIPTAH_BASE_URL={base}/v1", file=out)
        print(f"HIPTAH_API_KEY={config.api_key}", file=out)
        print(f"HIPTAH_CDN_URL={sandbox.state.cdn_url}", file=out)
        print(f"HIPTAH_ADMIN_URL={base}/_sandbox", file=out)
        print(f"HIPTAH_SANDBOX_GENERATOR={sandbox.models.kind}", file=out)
        print("ready", file=out, flush=True)
    else:
        stop()
    watcher = (
        asyncio.ensure_future(_watch_parent(os.getppid(), stop))
        if config.exit_with_parent
        else None
    )
    try:
        await asyncio.gather(*tasks)
    finally:
        if watcher is not None:
            watcher.cancel()
        sandbox.stop()
        for sock in (api_sock, cdn_sock):
            sock.close()
