"""A long-lived helper process that owns bpy and runs FBX/USDZ exports.

Why a process: Blender's operators must run on the main thread of the process
that imported bpy (from another thread they crash), while the sandbox server
calls generate_model from a worker thread. A helper also keeps a Blender crash
from taking the server down: a dead helper is restarted on the next request.

Protocol over the helper's stdin/stdout: 8-byte little-endian length + pickle.
Request (name, parts, fmt); reply ("ok", bytes) or ("error", message). The
helper moves Blender's own console output (fd 1) to stderr so it cannot
corrupt the replies.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

TIMEOUT = 300.0  # seconds for one export; a stuck helper is killed and restarted
_ROOT = Path(__file__).resolve().parents[2]  # the checkout, so `-m sandbox...` imports

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None


class WorkerError(RuntimeError):
    """The bpy helper failed (crashed, timed out, or the export raised)."""


def _write(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    import time

    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("bpy helper did not answer in time")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("bpy helper closed its pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read(fd: int, deadline: float | None) -> Any:
    (length,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
    return pickle.loads(_read_exact(fd, length, deadline))


def _start() -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="modelgen-bur-"))
    return subprocess.Popen([sys.executable, "-m", "sandbox.modelgen.bpy_worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd=str(_ROOT))


def stop() -> None:
    """Stop the helper (it is restarted on demand)."""
    with _lock:
        _stop_locked()


def _stop_locked() -> None:
    global _proc
    if _proc is not None:
        proc, _proc = _proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


atexit.register(stop)


def run(name: str, parts: list[Any], fmt: str) -> bytes:
    """Export in the helper; one request at a time; one restart on a dead helper."""
    import time

    global _proc
    with _lock:
        for attempt in (1, 2):
            if _proc is None or _proc.poll() is not None:
                _stop_locked()
                _proc = _start()
            assert _proc.stdin is not None and _proc.stdout is not None
            try:
                _write(_proc.stdin, (name, parts, fmt))
                status, payload = _read(_proc.stdout.fileno(), time.monotonic() + TIMEOUT)
            except (OSError, EOFError, TimeoutError) as exc:
                _stop_locked()
                if attempt == 2:
                    raise WorkerError(f"bpy helper failed: {exc}") from exc
                continue
            if status == "ok":
                return bytes(payload)
            raise WorkerError(f"bpy export failed: {payload}")
    raise AssertionError("unreachable")


def _serve() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # Blender's C-level prints now go to stderr, not into our replies
    sys.stdout = sys.stderr
    from .export_blender import export_in_process

    requests = sys.stdin.buffer.fileno()
    while True:
        try:
            name, parts, fmt = _read(requests, None)
        except EOFError:
            return
        try:
            _write(replies, ("ok", export_in_process(name, parts, fmt)))
        except Exception as exc:  # reported to the caller, the helper lives on
            _write(replies, ("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    _serve()
