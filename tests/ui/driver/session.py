"""A real Blender with its whole UI, on its own Xvfb display, driven like a person would.

    with GuiBlender(out_dir, user_resources=tmp) as gui:
        gui.start()
        gui.click_tab("HiPtah")
        gui.call("result = bpy.app.version_string")
        gui.screenshot("idle")

Blender (Debian trixie's 4.3.2), Xvfb, xdotool and ImageMagick live in the root that
``scripts/ui_env.sh`` builds; each process runs inside it through ``ui_env.sh run``
(bubblewrap, private mount namespace, dies with its parent). Every process has its own
session, and ``stop()`` kills all of them: a test never leaves one behind.

``call(code)`` runs Python inside Blender on the main thread between event-loop
iterations (tests/ui/driver/agent.py); the add-on's own modal monitor does all job work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[3]
UI_ENV = ROOT / "scripts" / "ui_env.sh"
AGENT = Path(__file__).resolve().parent / "agent.py"
WIDTH, HEIGHT = 1600, 1000


# Runs inside Blender over a region (the sidebar by default): which button is under the
# mouse. The context must be the window the pointer is in (a Preferences window is a
# window of its own). Copy Data Path needs a path from an ID; a button of the add-on's
# preferences (no ID) is named by ``context.property``: "<struct identifier>.<property>".
PROBE_CODE = """
wm = bpy.context.window_manager
wm.clipboard = ''
_named = ''
with bpy.context.temp_override(**sidebar({area!r}, {region!r})):
    if bpy.ops.ui.copy_data_path_button.poll():
        bpy.ops.ui.copy_data_path_button(full_path=True)
    elif bpy.ops.ui.copy_python_command_button.poll():
        bpy.ops.ui.copy_python_command_button()
    else:
        _prop = getattr(bpy.context, 'property', None)
        if _prop and _prop[0] is not None:
            _named = _prop[0].bl_rna.identifier + '.' + _prop[1]
result = wm.clipboard or _named
wm.clipboard = ''
"""


class GuiError(RuntimeError):
    """Blender or the display did not do what the test asked; carries the log's tail."""


def ui_env_problem() -> str | None:
    """Why the GUI root cannot be used here (None: it can, or can be built)."""
    proc = subprocess.run(["bash", str(UI_ENV), "check"], capture_output=True, text=True)
    return None if proc.returncode == 0 else (proc.stdout.strip() or proc.stderr.strip() or "ui_env check failed")


def inside(*argv: str) -> list[str]:
    """The command line that runs ``argv`` inside the UI root."""
    return ["bash", str(UI_ENV), "run", *argv]


def _display_taken(n: int) -> bool:
    return os.path.exists(f"/tmp/.X{n}-lock") or os.path.exists(f"/tmp/.X11-unix/X{n}")


def _reserve_display(skip: set[int]) -> tuple[int, IO[bytes]]:
    """A display number no other GuiBlender holds, with the open file whose flock
    reserves it. GUI scenarios run side by side (pytest-xdist, other checkouts): two
    processes that both saw ``:n`` free would start two Xvfbs on it, and the second
    test would then drive the first one's screen. The kernel drops the lock when its
    holder dies, so a killed run reserves nothing."""
    for n in range(140, 400):
        if n in skip or _display_taken(n):
            continue
        lock = open(f"/tmp/.hiptah-display-{n}.lock", "ab")  # noqa: SIM115 (held until stop())
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if _display_taken(n):  # someone else's Xvfb got there between the check and the lock
            lock.close()
            continue
        return n, lock
    raise GuiError("no free X display number between :140 and :399")


class GuiBlender:
    def __init__(self, out_dir: Path, *, user_resources: Path, env: dict[str, str] | None = None,
                 width: int = WIDTH, height: int = HEIGHT) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.user_resources = Path(user_resources)
        self.extra_env = dict(env or {})
        self.width, self.height = width, height
        self.display = ""
        self.log_path = self.out_dir / "blender.log"
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._display_lock: IO[bytes] | None = None
        self._blender: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._sock: socket.socket | None = None
        self._stream: Any = None
        self._shots = 0

    # -- processes -----------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        # Nothing of the test's venv (PYTHONPATH, VIRTUAL_ENV) may reach Blender's Python.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DISPLAY": self.display,
            "BLENDER_USER_RESOURCES": str(self.user_resources),
            # Which root ``ui_env.sh run`` uses (a root built elsewhere, read-only here).
            **{k: os.environ[k] for k in ("HIPTAH_UI_ROOT",) if k in os.environ},
        }
        if os.environ.get("HIPTAH_UI_ROOT"):  # ui_env.sh run must use the same root the suite built
            env["HIPTAH_UI_ROOT"] = os.environ["HIPTAH_UI_ROOT"]
        env.update(self.extra_env)
        return env

    def start_display(self) -> None:
        if self._xvfb is not None:
            return
        tried: set[int] = set()
        for _ in range(5):  # a display grabbed by a process outside our locks: take the next
            n, lock = _reserve_display(tried)
            tried.add(n)
            self.display = f":{n}"
            log = open(self.out_dir / "xvfb.log", "ab")  # noqa: SIM115 (lives as long as Xvfb)
            xvfb = subprocess.Popen(
                inside("Xvfb", self.display, "-screen", "0", f"{self.width}x{self.height}x24", "-nolisten", "tcp"),
                stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while not os.path.exists(f"/tmp/.X11-unix/X{n}") and xvfb.poll() is None:
                if time.monotonic() > deadline:
                    _kill_group(xvfb)
                    lock.close()
                    raise GuiError(f"Xvfb {self.display} did not start (see {self.out_dir / 'xvfb.log'})")
                time.sleep(0.05)
            if xvfb.poll() is None:
                self._xvfb, self._display_lock = xvfb, lock
                return
            lock.close()
        raise GuiError(f"Xvfb did not start on any of {sorted(tried)} (see {self.out_dir / 'xvfb.log'})")

    def start(self, blend: Path | str | None = None, *, args: list[str] | None = None,
              timeout: float = 120.0) -> GuiBlender:
        """Start Blender (opening ``blend`` if given) and wait until the agent answers."""
        self.start_display()
        agent_file = self.out_dir / f".agent-port-{os.getpid()}"
        agent_file.unlink(missing_ok=True)
        env = self._env()
        env["HIPTAH_GUI_AGENT_FILE"] = str(agent_file)
        argv = ["blender", "--window-geometry", "0", "0", str(self.width), str(self.height)]
        if blend is not None:
            argv.append(str(blend))
        argv += [*(args or []), "--python", str(AGENT)]
        log = open(self.log_path, "ab")  # noqa: SIM115 (lives as long as Blender)
        log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n".encode())
        log.flush()
        self._blender = subprocess.Popen(
            inside(*argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not agent_file.exists():
            if self._blender.poll() is not None:
                raise GuiError(f"Blender exited with {self._blender.returncode} at start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise GuiError(f"Blender did not start in {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.1)
        self._port = int(agent_file.read_text())
        agent_file.unlink(missing_ok=True)
        self._connect()
        # The window is mapped once the event loop runs; the splash (first start) is
        # dismissed like a user does: Escape over the window.
        self.wait_until("result = bool(bpy.context.window_manager.windows)", timeout=60)
        time.sleep(0.5)
        self.key("Escape")
        return self

    def _connect(self) -> None:
        self._close_socket()
        assert self._port is not None
        self._sock = socket.create_connection(("127.0.0.1", self._port), timeout=10)
        self._stream = self._sock.makefile("rwb")

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            if self._stream is not None:
                self._stream.close()
            if self._sock is not None:
                self._sock.close()
        self._sock = self._stream = None

    @property
    def running(self) -> bool:
        return self._blender is not None and self._blender.poll() is None

    def quit(self, timeout: float = 60.0) -> int:
        """Quit Blender as File > Quit does (saving nothing); returns its exit code."""
        assert self._blender is not None
        with contextlib.suppress(GuiError, OSError):
            self.call("bpy.ops.wm.quit_blender()", timeout=5)
        try:
            code = self._blender.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise GuiError(f"Blender did not quit in {timeout:.0f} s\n{self.log_tail()}") from exc
        self._close_socket()
        return code

    def kill_blender(self) -> None:
        if self._blender is not None:
            _kill_group(self._blender)
            self._blender = None
        self._close_socket()

    def stop(self) -> None:
        """Kill Blender and Xvfb (and anything they started)."""
        self.kill_blender()
        if self._xvfb is not None:
            _kill_group(self._xvfb)
            self._xvfb = None
        if self._display_lock is not None:
            self._display_lock.close()
            self._display_lock = None

    def __enter__(self) -> GuiBlender:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no Blender log)"
        return "----- Blender log (tail) -----\n" + "\n".join(text[-lines:])

    # -- talking to Blender --------------------------------------------------------
    def call(self, code: str, timeout: float = 60.0) -> Any:
        """Run ``code`` inside Blender's main thread; returns its ``result`` variable."""
        if self._stream is None:
            raise GuiError("Blender is not running")
        assert self._sock is not None
        self._sock.settimeout(timeout)
        try:
            self._stream.write(json.dumps({"code": code}).encode() + b"\n")
            self._stream.flush()
            line = self._stream.readline()
        except OSError as exc:
            raise GuiError(f"no answer from Blender ({exc})\n{self.log_tail()}") from exc
        if not line:
            raise GuiError(f"Blender closed the connection\n{self.log_tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise GuiError(f"error inside Blender:\n{reply['error']}")
        return reply["result"]

    def wait_until(self, code: str, timeout: float = 60.0, interval: float = 0.2,
                   describe: str = "") -> Any:
        """Repeat ``code`` until it sets a truthy ``result``; returns it."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.call(code)
            if last:
                return last
            time.sleep(interval)
        self.screenshot("timeout")
        raise GuiError(f"timed out after {timeout:.0f} s waiting for {describe or code!r} (last: {last!r})\n"
                       f"{self.log_tail()}")

    # -- the person at the screen --------------------------------------------------
    def x(self, *argv: str, check: bool = True) -> str:
        proc = subprocess.run(inside(*argv), env=self._env(), capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise GuiError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def move(self, x: int, y: int) -> None:
        self.x("xdotool", "mousemove", "--sync", str(x), str(y))

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.x("xdotool", "mousemove", "--sync", str(x), str(y), "click", str(button))

    def key(self, *keys: str) -> None:
        self.x("xdotool", "key", "--delay", "40", *keys)

    def type(self, text: str) -> None:
        self.x("xdotool", "type", "--delay", "15", text)

    def screenshot(self, name: str) -> Path:
        """An X-level capture (Blender's own screenshot operator is black under Xvfb)."""
        self._shots += 1
        path = self.out_dir / f"{self._shots:02d}-{name}.png"
        self.x("import", "-window", "root", str(path))
        return path

    def region(self, area_type: str = "VIEW_3D", region_type: str = "UI") -> dict[str, int]:
        return dict(self.call(f"result = region_rect({area_type!r}, {region_type!r})"))

    def probe(self, x: int, y: int, area: str = "VIEW_3D", region: str = "UI") -> str:
        """What a person's mouse at (x, y) is over in a region (the sidebar unless told):
        the data path of a property button or the Python command of an operator button
        ('' for neither). Blender's own copy-button operators read the hovered button. The
        pointer is warped by Blender itself (no process per probe: a scan takes ~100 probes)."""
        self.call(f"w = sidebar({area!r}, {region!r})['window']; "
                  f"w.cursor_warp({x} - w.x, w.height - ({y} - w.y)); result = 1")
        time.sleep(0.02)
        return str(self.call(PROBE_CODE.format(area=area, region=region)))

    def find_button(self, match: str, *, columns: tuple[float, ...] = (0.5,), step: int = 6,
                    top: int = 0, bottom: int | None = None,
                    area: str = "VIEW_3D", region: str = "UI") -> tuple[int, int]:
        """Screen point at the middle of the first button of a region (the sidebar unless
        told) whose probe() text contains ``match``, scanning down at each fraction of the
        region's width."""
        rect = self.region(area, region)
        end = min(rect["height"], bottom) if bottom is not None else rect["height"]
        for frac in columns:
            x = rect["x"] + int(rect["width"] * frac)
            hits = [y for y in range(rect["y"] + top, rect["y"] + end, step)
                    if match in self.probe(x, y, area, region)]
            while hits:
                run = [y for y in hits if y - hits[0] < 40]  # the first button only
                mid = (run[0] + run[-1]) // 2
                # A probe right after a click can still report the button the pointer
                # left (Blender had not handled the warp yet): confirm before trusting it.
                if match in self.probe(x, mid, area, region):
                    return x, mid
                hits = hits[1:]
        self.screenshot(f"no-button-{match[:20]}")
        raise GuiError(f"no {area} {region} button matching {match!r}")

    def click_button(self, match: str, **scan: Any) -> tuple[int, int]:
        x, y = self.find_button(match, **scan)
        self.click(x, y)
        return x, y

    def click_tab(self, category: str, timeout: float = 30.0) -> None:
        """Click the sidebar's vertical tab ``category`` (``active_panel_category`` is
        read-only, and tab positions are not exposed): walk the tab strip at the
        region's outer edge until Blender reports the tab active."""
        code = "result = sidebar()['region'].active_panel_category"
        if self.call(code) == category:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rect = self.region()
            # The tabs are a strip about 20 px wide on the sidebar's outer (right) edge.
            tab_x = rect["x"] + rect["width"] - 10
            for dy in range(12, min(rect["height"], 700), 16):
                self.click(tab_x, rect["y"] + dy)
                if self.call(code) == category:
                    self.move(rect["x"] + rect["width"] // 2, rect["y"] + rect["height"] // 2)
                    return
        raise GuiError(f"could not find the sidebar tab {category!r}\n{self.log_tail()}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
