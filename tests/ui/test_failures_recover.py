"""Scenarios: a failure shows in the panel's status line AND in the job's row, and the
job recovers once the cause is fixed, with no second server job.

a. A wrong API key: the job fails with the key refused; the status line keeps saying
   so (not "Ready") until the key changes; with the right key, Retry completes it.
b. Allow Online Access turned off while jobs run: polls stop, the rows and the status
   line say why; turned back on, the same jobs carry on and are imported.
c. The sandbox stopped (SIGTERM) in the middle of a job and started again on the same
   ports with its --state-file: the row and the status line show the connection
   problem while it is down; once it is back the same job finishes.

The sandbox holds jobs at "processing" (the ``hold`` fault) where the test must decide
when a job ends, so no step depends on the machine's speed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.harness import SandboxServer
from tests.ui.conftest import ADDON, setup_addon
from tests.ui.driver.session import GuiBlender
from tests.ui.jobsteps import (
    STATUS,
    WAIT,
    generate,
    record,
    row_button,
    shot,
    status_line,
    wait_state,
)

pytestmark = pytest.mark.timeout(900)

WRONG_KEY = "hp_wrong_key_0123456789abcdef"


def click_retry(gui: GuiBlender, places: dict[str, tuple[int, int]], local_id: str) -> None:
    x, y = row_button(gui, "retry_job", local_id, places["hiptah.generate"][1])
    gui.move(x, y)
    time.sleep(0.2)
    gui.click(x, y)


def set_pref(gui: GuiBlender, name: str, value: object) -> None:
    gui.call(f"bpy.context.preferences.addons[{ADDON!r}].preferences.{name} = {value!r}\nresult = 1")


def test_wrong_key_then_retry(gui: GuiBlender, extension_zip: Path, ui_sandbox: SandboxServer) -> None:
    sb = ui_sandbox
    gui.start()
    setup_addon(gui, extension_zip, sb, api_key=WRONG_KEY)
    assert status_line(gui) == dict(problem=None, refusal=None, unreachable=None, paused=None)  # "Ready"

    places: dict[str, tuple[int, int]] = {}
    lid = generate(gui, places, "red wooden chair")
    job = wait_state(gui, lid, "failed")
    assert job["error"]["kind"] == "AuthenticationError" and "refused" in job["error"]["message"], job
    assert job["row"] == job["error"]["message"] and job["job_id"] is None, job
    # The status line shows the refusal instead of "Ready", and keeps it.
    status = status_line(gui)
    assert status["refusal"] == ["AuthenticationError", job["error"]["message"]], status
    shot(gui, "key-refused")
    gui.call("result = 1")
    assert status_line(gui)["refusal"] is not None
    assert WRONG_KEY not in repr(job) and sb.jobs() == []  # nothing was created (or charged)

    # The right key (as typed into the preferences): the refusal is gone.
    set_pref(gui, "api_key", sb.api_key)
    gui.wait_until(STATUS_READY, timeout=30, describe="the status line back to Ready")
    shot(gui, "key-fixed")

    # Retry on the row: sent again (a new idempotency key: the 401 created nothing).
    click_retry(gui, places, lid)
    done = wait_state(gui, lid, "imported")
    server = sb.jobs()
    assert [j["job_id"] for j in server] == [done["job_id"]], server
    assert status_line(gui) == dict(problem=None, refusal=None, unreachable=None, paused=None)
    shot(gui, "retried-imported")


STATUS_READY = (
    f"from {ADDON}.blender import account as _acc\n"
    f"from {ADDON}.blender.settings import read_settings as _rs\n"
    "_s = _rs(bpy.context)\n"
    "result = _s.configuration_error() is None and _acc.current(_s) is None\n"
)


def test_online_access_off_pauses_and_resumes(gui: GuiBlender, extension_zip: Path,
                                              ui_sandbox: SandboxServer) -> None:
    sb = ui_sandbox
    sb.set_faults(hold=1)
    gui.start()
    setup_addon(gui, extension_zip, sb)
    # The seam docs/blender.md names: treat the loopback sandbox as a remote server,
    # so Blender's Allow Online Access applies to it.
    gui.call(f"import {ADDON}.blender.settings as _st\n_st.online_access_exempt = lambda url: False\nresult = 1")

    places: dict[str, tuple[int, int]] = {}
    lids = [generate(gui, places, prompt) for prompt in ("blue cube", "green cone")]
    for lid in lids:
        gui.wait_until(
            f"from {ADDON}.blender import runtime as _rt\n"
            f"_j = _rt.peek().snapshots[{lid!r}]\nresult = _j.job_id is not None and _j.state.value == 'processing'",
            timeout=WAIT, describe=f"job {lid} processing on the server")
    ids = {lid: record(gui, lid)["job_id"] for lid in lids}

    # Preferences > System > Network > Allow Online Access: off.
    gui.call("bpy.context.preferences.system.use_online_access = False\nresult = 1")
    gui.wait_until("result = not bpy.app.online_access", timeout=30, describe="bpy.app.online_access off")
    status = gui.wait_until(
        STATUS_LINE_PAUSED, timeout=30, describe="the status line to say online access is off")
    assert "online access" in status[1].lower(), status
    # The rows: paused with the reason (what draw_item shows for a held job).
    paused = status_line(gui)["paused"]
    assert paused and "online access" in paused.lower(), paused
    for lid in lids:
        row = gui.call(f"from {ADDON}.blender import runtime as _rt, panels as _p\n"
                       f"result = _p.row_text(_rt.peek(), _rt.peek().snapshots[{lid!r}])")
        assert row == f"paused: {paused}", row
    # Both finish on the server meanwhile; nothing may reach it while access is off.
    polls = {lid: sb.job(ids[lid])["polls"] for lid in lids}
    for lid in lids:
        sb.complete(ids[lid])
    time.sleep(8)  # four poll intervals: a running add-on would have polled by now
    for lid in lids:
        assert sb.job(ids[lid])["polls"] <= polls[lid] + 1, (lid, polls)  # one may have been in flight
        assert record(gui, lid)["state"] == "processing"
    assert not [e for e in sb.cdn_log()], sb.cdn_log()
    shot(gui, "online-access-off")

    # Back on: the same server jobs are polled, downloaded, imported.
    gui.call("bpy.context.preferences.system.use_online_access = True\nresult = 1")
    for lid in lids:
        done = wait_state(gui, lid, "imported")
        assert done["job_id"] == ids[lid], done
    assert sorted(j["job_id"] for j in sb.jobs()) == sorted(ids.values())
    assert status_line(gui) == dict(problem=None, refusal=None, unreachable=None, paused=None)
    shot(gui, "online-access-back")


STATUS_LINE_PAUSED = (
    f"from {ADDON}.blender.settings import read_settings as _rs\n"
    "_p = _rs(bpy.context).configuration_error()\n"
    "result = None if _p is None else [type(_p).__name__, _p.message]\n"
)


@pytest.fixture
def stateful_sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = SandboxServer(latency=4, models="auto", seed=0, webhook_backoff=0.1, webhook_timeout=2,
                           state_file=str(tmp_path / "sandbox-state.json"))
    try:
        yield server.start()
    finally:
        server.stop()


def test_sandbox_restart_mid_job(gui: GuiBlender, extension_zip: Path, stateful_sandbox: SandboxServer) -> None:
    sb = stateful_sandbox
    sb.set_faults(hold=1)  # running until the server goes down
    gui.start()
    setup_addon(gui, extension_zip, sb)
    places: dict[str, tuple[int, int]] = {}
    lid = generate(gui, places, "yellow sphere")
    gui.wait_until(
        f"from {ADDON}.blender import runtime as _rt\n"
        f"_j = _rt.peek().snapshots[{lid!r}]\nresult = _j.job_id is not None and _j.state.value == 'processing'",
        timeout=WAIT, describe="the job processing on the server")
    job_id = record(gui, lid)["job_id"]
    base, cdn = sb.base_url, sb.cdn_url

    sb.stop()  # SIGTERM: the state file is written; the ports are closed
    status = gui.wait_until(
        STATUS + "\nresult = result['unreachable']",
        timeout=WAIT, describe="the status line to show the connection problem")
    assert status[0] in ("APIConnectionError", "APITimeoutError"), status
    job = record(gui, lid)
    assert job["state"] == "processing" and job["job_id"] == job_id, job
    row = gui.call(
        f"from {ADDON}.blender import runtime as _rt, panels as _p\n"
        f"result = _p.row_text(_rt.peek(), _rt.peek().snapshots[{lid!r}])")
    assert status[1] in row, row
    shot(gui, "server-down")

    sb.start()  # the same ports, key and state file: the job is still there (hold is off now)
    assert (sb.base_url, sb.cdn_url) == (base, cdn)
    done = wait_state(gui, lid, "imported")
    assert done["job_id"] == job_id, done
    assert [j["job_id"] for j in sb.jobs()] == [job_id]  # no second server job
    assert status_line(gui)["unreachable"] is None
    shot(gui, "server-back-imported")

