"""Run the sandbox in a subprocess for tests and scripts.

    with SandboxServer(latency=0, models="auto") as sb:
        requests.post(sb.base_url + "/generate", headers=sb.auth_headers, json={...})
        sb.state()["jobs"]

A subprocess (not a thread) so the server has its own event loop, its own
generator thread for bpy, and can be killed and restarted like the real thing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from .config import generate_api_key

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "sandbox.py"
START_TIMEOUT = 60.0


class SandboxError(RuntimeError):
    """The sandbox did not start, or an admin call failed."""


def flag_args(flags: dict[str, Any]) -> list[str]:
    """CLI arguments from keyword flags: ``fault_rate=0.1`` -> ``--fault-rate 0.1``."""
    args: list[str] = []
    for name, value in flags.items():
        opt = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(opt)
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [opt, str(item)]
        else:
            args += [opt, str(value)]
    return args


class SandboxServer:
    """A sandbox subprocess on free ports (unless ``port``/``cdn_port`` are given).

    ``flags`` take the CLI flag names with underscores (``latency=0``,
    ``fault_rate=0.2``, ``extra_key=["k2"]``, ``fake_models=True``). ``ca_bundle`` is
    the CA used to verify a TLS sandbox for the admin calls (tests pass trustme's).
    ``python`` runs the server (default: $HIPTAH_SANDBOX_PYTHON, else this Python); the
    Blender suite on bpy 4.2/4.5 points it at the main .venv, which has fastapi and bpy 5.0.
    """

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        start_timeout: float = START_TIMEOUT,
        python: str | None = None,
        **flags: Any,
    ) -> None:
        self.python = python or os.environ.get("HIPTAH_SANDBOX_PYTHON") or sys.executable
        self.flags: dict[str, Any] = {"port": 0, "cdn_port": 0, "exit_with_parent": True, **flags}
        if not self.flags.get("api_key"):
            # Fixed for this object's life: restart() must keep the same key.
            self.flags["api_key"] = generate_api_key()
        self.ca_bundle = ca_bundle
        self.start_timeout = start_timeout
        self.base_url = ""
        self.api_key: str = self.flags["api_key"]
        self.cdn_url = ""
        self.admin_url = ""
        self.generator = ""
        self.proc: subprocess.Popen[str] | None = None
        self._stderr_path: str | None = None
        self._bur: str | None = None
        self._session = requests.Session()
        self._lines: queue.Queue[str | None] = queue.Queue()

    # --- properties ---------------------------------------------------------------------

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def verify(self) -> bool | str:
        return self.ca_bundle or True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- process ------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self.running:
            return self
        env = dict(os.environ)
        if not env.get("BLENDER_USER_RESOURCES"):
            self._bur = tempfile.mkdtemp(prefix="hiptah-sandbox-bur-")
            env["BLENDER_USER_RESOURCES"] = self._bur
        env["PYTHONUNBUFFERED"] = "1"
        fd, self._stderr_path = tempfile.mkstemp(prefix="hiptah-sandbox-", suffix=".log")
        os.close(fd)
        cmd = [self.python, str(SCRIPT), *flag_args(self.flags)]
        with open(self._stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=str(ROOT),
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        values: dict[str, str] = {}
        deadline = time.monotonic() + self.start_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._abort(f"the sandbox did not print 'ready' within {self.start_timeout:.0f} s")
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self._abort("the sandbox exited before it was ready")
                break  # unreachable: _abort raises
            line = line.strip()
            if line == "ready":
                break
            name, sep, value = line.partition("=")
            if sep:
                values[name] = value
        self.base_url = values["HIPTAH_BASE_URL"]
        self.api_key = values["HIPTAH_API_KEY"]
        self.cdn_url = values["HIPTAH_CDN_URL"]
        self.admin_url = values.get(
            "HIPTAH_ADMIN_URL", self.base_url.rsplit("/v1", 1)[0] + "/_sandbox"
        )
        self.generator = values.get("HIPTAH_SANDBOX_GENERATOR", "")
        # Restarts come back on the same ports, as a restarted real server would.
        self.flags["port"] = int(self.base_url.rsplit(":", 1)[1].split("/")[0])
        self.flags["cdn_port"] = int(self.cdn_url.rsplit(":", 1)[1])
        return self

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def stderr_text(self, limit: int = 8000) -> str:
        if not self._stderr_path:
            return ""
        try:
            with open(self._stderr_path, errors="replace") as fh:
                return fh.read()[-limit:]
        except OSError:
            return ""

    def _abort(self, why: str) -> None:
        code = None
        if self.proc is not None:
            try:  # let it finish writing its stderr before we read it
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        stderr = self.stderr_text()
        shown = [("***" if arg == self.api_key else arg) for arg in flag_args(self.flags)]
        self.stop()
        raise SandboxError(
            f"{why} (exit code {code}).\ncommand flags: {shown}\n--- sandbox stderr ---\n{stderr}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr_path:
            with contextlib.suppress(OSError):
                os.unlink(self._stderr_path)
            self._stderr_path = None
        if self._bur:
            shutil.rmtree(self._bur, ignore_errors=True)
            self._bur = None

    def restart(self) -> SandboxServer:
        """Stop and start again on the same ports with the same key: every job is lost,
        unless the server has a ``state_file`` (kept across the clean stop)."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        """Kill without a clean shutdown (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxServer(base_url={self.base_url!r}, cdn_url={self.cdn_url!r}, running={self.running})"

    # --- admin API ----------------------------------------------------------------------

    def _admin(self, method: str, path: str, json: Any = None, timeout: float = 130.0) -> Any:
        if not self.admin_url:
            raise SandboxError("the sandbox is not started")
        resp = self._session.request(
            method, f"{self.admin_url}/{path}", json=json, timeout=timeout, verify=self.verify
        )
        if resp.status_code >= 400:
            raise SandboxError(
                f"{method} /_sandbox/{path} -> {resp.status_code}: {resp.text[:500]}"
            )
        return resp.json()

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "state")
        return result

    def jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["jobs"]
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        for job in self.jobs():
            if job["job_id"] == job_id:
                return job
        raise KeyError(job_id)

    def requests_log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["requests"]
        return result

    def cdn_log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["cdn"]
        return result

    def deliveries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.state()["deliveries"]
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", "faults", faults)["faults"]
        return result

    def reset(self) -> None:
        self._admin("POST", "reset")

    def forget(self) -> int:
        return int(self._admin("POST", "forget")["forgotten"])

    def expire(self, job_id: str | None = None) -> None:
        self._admin("POST", "expire", {"job_id": job_id} if job_id else {})

    def set_plan(
        self,
        plan: str | None = None,
        quota: int | None = None,
        used: int | None = None,
        concurrency: int | None = None,
        key: str | None = None,
    ) -> None:
        body = {"plan": plan, "quota": quota, "used": used, "concurrency": concurrency, "key": key}
        self._admin("POST", "plan", {k: v for k, v in body.items() if v is not None})

    def keys(
        self,
        add: list[str] | None = None,
        revoke: list[str] | None = None,
        unrevoke: list[str] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._admin(
            "POST", "keys", {"add": add or [], "revoke": revoke or [], "unrevoke": unrevoke or []}
        )
        return result

    def complete(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", f"jobs/{job_id}/complete")
        return result

    def fail(
        self, job_id: str, code: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"code": code, "message": message}.items() if v}
        result: dict[str, Any] = self._admin("POST", f"jobs/{job_id}/fail", body)
        return result

    def blob(self, size_mb: float) -> dict[str, Any]:
        """A completed job whose model is a valid GLB padded to ``size_mb`` (download benchmarks)."""
        result: dict[str, Any] = self._admin("POST", "blob", {"size_mb": size_mb})
        return result
