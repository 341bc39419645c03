"""A real Secret Service for tests: Debian's gnome-keyring-daemon under dbus-run-session,
in a private HOME, with a "login" collection created and unlocked from a password.

``ensure_packages()`` installs gnome-keyring and dbus with apt-get when they are missing
and we are root (CI runs as root on a fresh Debian-like machine; idempotent: nothing to do
when present). scripts/setup_env.sh does the same up front.

Only processes started here are stopped, by their own ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PACKAGES = ("gnome-keyring", "dbus")
PASSWORD = "hiptah-test-login"
SECRETS_NAME = "org.freedesktop.secrets"


def missing_tools() -> list[str]:
    return [t for t in ("gnome-keyring-daemon", "dbus-run-session") if shutil.which(t) is None]


def ensure_packages() -> str | None:
    """None when the tools are there (installing them if need be), else why not."""
    if not missing_tools():
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (f"{', '.join(missing_tools())} not installed (apt-get install {' '.join(PACKAGES)}; "
                "the tests install them only when run as root on Debian/Ubuntu)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900, check=False)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            return f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr.strip()[-300:]}"
    return None if not missing_tools() else f"still missing after apt-get: {missing_tools()}"


class SecretService:
    """gnome-keyring-daemon (secrets component, foreground) as the only child of
    dbus-run-session; ``address`` is the session bus to put in DBUS_SESSION_BUS_ADDRESS."""

    def __init__(self, workdir: Path, timeout: float = 30.0, wrap: Callable[..., list[str]] | None = None) -> None:
        """``wrap`` turns the command line into one that runs elsewhere, e.g. inside the
        GUI suite's Debian root (tests.ui.driver.session.inside); ``workdir`` must be visible there."""
        self.dir = workdir
        home = workdir / "home"
        runtime = workdir / "run"
        home.mkdir(parents=True, exist_ok=True)
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        (workdir / "password").write_text(PASSWORD, encoding="utf-8")
        script = (
            'echo "$DBUS_SESSION_BUS_ADDRESS" > "$W/address.tmp" && mv "$W/address.tmp" "$W/address"; '
            'echo $$ > "$W/pid"; '
            'exec gnome-keyring-daemon --foreground --unlock --components=secrets < "$W/password"'
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "W": str(workdir),
            **{k: os.environ[k] for k in ("HIPTAH_UI_ROOT",) if k in os.environ},  # for ``wrap``
        }
        self.log = (workdir / "daemon.log").open("wb")
        argv = ["dbus-run-session", "--", "sh", "-c", script]
        self.proc = subprocess.Popen(wrap(*argv) if wrap else argv, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        addr_file, pid_file = workdir / "address", workdir / "pid"
        while not (addr_file.is_file() and pid_file.is_file()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"dbus-run-session did not start: {self.output()}")
            time.sleep(0.02)
        self.address = addr_file.read_text(encoding="utf-8").strip()
        self.daemon_pid = int(pid_file.read_text(encoding="utf-8").strip())
        while not self._owned():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"gnome-keyring-daemon did not take {SECRETS_NAME}: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.dir / "daemon.log").read_text(encoding="utf-8", errors="replace")[-2000:]

    def _owned(self) -> bool:
        """Whether the daemon owns the name (not merely activatable: activation would start
        a second daemon outside our control)."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                          interface="org.freedesktop.DBus")
        try:
            with open_dbus_connection(bus=self.address) as conn:
                reply = conn.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", (SECRETS_NAME,)),
                                                timeout=5)
        except (OSError, TimeoutError, ValueError):
            return False
        return bool(reply.body[0])

    def connection(self):  # type: ignore[no-untyped-def]
        from jeepney.io.blocking import open_dbus_connection

        return open_dbus_connection(bus=self.address)

    def stored(self, service: str, username: str) -> str | None:
        """What the daemon holds, read with secretstorage directly (not through our code)."""
        import secretstorage

        with self.connection() as conn:
            collection = secretstorage.get_default_collection(conn)
            for item in collection.search_items({"service": service, "username": username}):
                return item.get_secret().decode()
        return None

    def lock(self) -> None:
        import secretstorage

        with self.connection() as conn:
            collection = secretstorage.get_default_collection(conn)
            collection.lock()
            assert collection.is_locked()

    def freeze(self) -> None:
        """The daemon stops answering (SIGSTOP): D-Bus calls to it wait forever."""
        os.kill(self.daemon_pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.daemon_pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            pid = getattr(self, "daemon_pid", None)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # dbus-run-session itself; it takes its dbus-daemon along
                self.proc.wait(10)
        self.log.close()
