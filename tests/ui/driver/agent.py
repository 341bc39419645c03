"""Runs inside a real Blender with its UI (``blender --python tests/ui/driver/agent.py``): a tiny RPC
server through which the GUI tests read state and call operators *from the event loop*.

A thread accepts loopback connections (one JSON line in, one JSON line out); the code it
receives runs on Blender's main thread from a ``bpy.app.timers`` callback, so it runs
between real event-loop iterations exactly like a button's operator would. Nothing here
steps the add-on's runtime: the add-on's own modal monitor and timers do that.

Stdlib only: this runs on the distro Blender's Python (3.13), not the project's venv.
The port is written to the file named by ``HIPTAH_GUI_AGENT_FILE`` once listening.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import traceback
from typing import Any

import bpy

_requests: queue.Queue[tuple[str, queue.Queue[dict[str, Any]]]] = queue.Queue()
_namespace: dict[str, Any] = {}
POLL = 0.02  # seconds between checks for a request on the main thread


def sidebar(area_type: str = "VIEW_3D", region_type: str = "UI") -> dict[str, Any]:
    """window/area/region of the first 3D Viewport's sidebar: the context a panel button has."""
    wm: Any = bpy.context.window_manager  # never None with a UI
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == area_type:
                for region in area.regions:
                    if region.type == region_type:
                        return {"window": window, "area": area, "region": region}
    raise LookupError(f"no {area_type} {region_type} region")


def invoke(idname: str, *, area_type: str = "VIEW_3D", region_type: str = "UI", **props: Any) -> list[str]:
    """Call an operator with INVOKE_DEFAULT in the sidebar's context, as its button does.
    Returns its result set; an ERROR report (which Python sees as RuntimeError, a button
    shows in the status bar) comes back as ``["CANCELLED", "<report text>"]``."""
    module, name = idname.split(".")
    op = getattr(getattr(bpy.ops, module), name)
    with bpy.context.temp_override(**sidebar(area_type, region_type)):
        try:
            return sorted(op("INVOKE_DEFAULT", **props))
        except RuntimeError as exc:
            return ["CANCELLED", str(exc)]


def region_rect(area_type: str = "VIEW_3D", region_type: str = "UI") -> dict[str, int]:
    """A region's rectangle in X screen pixels (origin top-left), for xdotool."""
    ctx = sidebar(area_type, region_type)
    window, region = ctx["window"], ctx["region"]
    return {
        "x": window.x + region.x,
        "y": window.y + window.height - (region.y + region.height),
        "width": region.width,
        "height": region.height,
        "window_height": window.height,
    }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, (set, frozenset, tuple, list)):
            return [_jsonable(v) for v in value]
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        return repr(value)


def _run(code: str) -> dict[str, Any]:
    _namespace.pop("result", None)
    try:
        exec(compile(code, "<gui-test>", "exec"), _namespace)
        return {"ok": True, "result": _jsonable(_namespace.get("result"))}
    except BaseException:  # the test gets the traceback; Blender keeps running
        return {"ok": False, "error": traceback.format_exc()}


def _drain() -> float:
    while True:
        try:
            code, reply = _requests.get_nowait()
        except queue.Empty:
            return POLL
        reply.put(_run(code))


def _serve(server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_handle, args=(conn,), daemon=True).start()


def _handle(conn: socket.socket) -> None:
    with conn, conn.makefile("rwb") as stream:
        for line in stream:
            reply: queue.Queue[dict[str, Any]] = queue.Queue()
            _requests.put((json.loads(line)["code"], reply))
            stream.write(json.dumps(reply.get()).encode() + b"\n")
            stream.flush()


def _timer_alive() -> float:
    return _drain()


def start() -> None:
    _namespace.update(
        {"bpy": bpy, "sidebar": sidebar, "invoke": invoke, "region_rect": region_rect, "__name__": "gui_test"}
    )
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    threading.Thread(target=_serve, args=(server,), daemon=True).start()
    # persistent: the timer survives File > Open (the .blend scenario).
    bpy.app.timers.register(_timer_alive, first_interval=POLL, persistent=True)
    path = os.environ.get("HIPTAH_GUI_AGENT_FILE")
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(server.getsockname()[1]))
        os.replace(tmp, path)


start()
