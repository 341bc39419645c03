"""The fault matrix: one function per fault, shared by ``scripts/faults.py`` and the tests.

Each case gets a running sandbox (it resets it), a scratch folder and a :class:`Timing`,
injects its fault, drives real jobs through the real scheduler and client (or real
Blender in subprocesses), and returns a :class:`CaseResult`: the table row plus the
``problems`` that make a test fail (a lost job, a double charge, an unclear failure).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiptah_blender.client.download import safe_filename
from hiptah_blender.jobs.records import JobRecord, JobState
from sandbox.harness import SandboxServer

from .flow import (
    FAST,
    Flow,
    HookedExecutor,
    Outcome,
    Timing,
    charge_count,
    check_accounting,
    classify,
)


@dataclass
class CaseResult:
    name: str
    fault: str  # what was injected, as the table says it
    outcome: Outcome
    max_stall_ms: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    p99_stall_ms: float | None = None
    max_cpu_ms: float | None = None  # CPU time of the busiest step (wall minus GIL/OS waits)
    failed_text: str | None = None  # replaces the "failed" cell (cases with a fix-and-retry)
    server: bool = True  # False: no server and no main thread involved (store_kill)

    @property
    def problems(self) -> list[str]:
        found = list(self.outcome.problems)
        if self.outcome.lost:
            found.append(f"{self.outcome.lost} job(s) lost")
        if self.outcome.charged_twice:
            found.append(f"{self.outcome.charged_twice} generation(s) charged twice")
        return found

    def row(self) -> str:
        o = self.outcome
        failed = self.failed_text or f"{o.failed_clear}" + (
            " (" + ", ".join(f"{n} {k}" for k, n in sorted(o.failures.items())) + ")" if o.failures else ""
        )
        extra = []
        if self.p99_stall_ms is not None:
            extra.append(f"p99 {self.p99_stall_ms:.1f}")
        if self.max_cpu_ms is not None:
            extra.append(f"CPU {self.max_cpu_ms:.1f}")
        stall = f"{self.max_stall_ms:.1f}" + (f" ({', '.join(extra)})" if extra else "")
        charged = f"{o.charged_twice} ({o.charged} charged / {o.distinct_keys} keys)"
        if not self.server:
            charged = stall = "n/a"
        cells = [
            self.fault, str(o.submitted), str(o.completed), failed, str(o.lost), charged,
            stall, "; ".join(self.notes).replace("|", "\\|"),
        ]
        return "| " + " | ".join(cells) + " |"


TABLE_HEADER = (
    "| Fault | Jobs | Completed | Failed, clear message | Lost | Charged twice | "
    "Longest main-thread stall (ms) | Notes |\n|---|---|---|---|---|---|---|---|"
)

CaseFn = Callable[[SandboxServer, Path, Timing], CaseResult]


def _prepare(sb: SandboxServer, timing: Timing, **faults: Any) -> None:
    sb.reset()
    sb.set_faults(latency=timing.latency, latency_spread=timing.latency_spread, **faults)


def _finish(name: str, fault: str, flow: Flow, sb: SandboxServer, seconds: float,
            server_jobs: list[dict[str, Any]] | None = None,
            allowed: frozenset[str] = frozenset(), notes: list[str] | None = None) -> CaseResult:
    flow.close()
    records = flow.records()
    jobs = sb.jobs() if server_jobs is None else server_jobs
    outcome = charge_count(jobs, classify(records))
    check_accounting(records, jobs, outcome)
    unexpected = {k: n for k, n in outcome.failures.items() if k not in allowed}
    if unexpected:
        outcome.problems.append(f"unexpected failure kinds {unexpected}: {outcome.messages}")
    notes = list(notes or [])
    for kind, text in sorted(outcome.messages.items()):
        notes.append(f"{kind}: “{text[:140]}”")
    return CaseResult(name, fault, outcome, flow.max_stall * 1000, seconds, notes,
                      p99_stall_ms=flow.p99_stall() * 1000, max_cpu_ms=flow.max_cpu * 1000)


def _api_log_counts(sb: SandboxServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in sb.requests_log():
        label = entry.get("fault") or str(entry.get("status"))
        counts[label] = counts.get(label, 0) + 1
    return counts


# ----------------------------------------------------------------------------- the cases


def case_server_errors(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    _prepare(sb, timing, fault_rate=0.3)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs, "errors")
    seconds = flow.run(timing.job_deadline)
    counts = _api_log_counts(sb)
    return _finish("server_errors", "30 % of API requests answer 500", flow, sb, seconds,
                   notes=[f"{counts.get('error', 0)} of {sum(counts.values())} API answers were 500"])


def case_rate_limit_storm(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    storm = timing.seconds(30.0)
    _prepare(sb, timing, rate_limit_rate=1.0, retry_after=1)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs, "storm")
    calmed = [False]

    def during(elapsed: float) -> None:
        if not calmed[0] and elapsed >= storm:
            sb.set_faults(rate_limit_rate=0.3)  # the storm passes; some 429s stay
            calmed[0] = True

    seconds = flow.run(timing.job_deadline, during)
    counts = _api_log_counts(sb)
    return _finish(
        "rate_limit_storm", f"429 + Retry-After: 1 on every request for {storm:g} s, then on 30 %",
        flow, sb, seconds, notes=[f"{counts.get('rate_limit', 0)} answers were 429"],
    )


def case_slow_responses(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    slow = timing.client_timeout * 1.5
    _prepare(sb, timing, slow_rate=0.3, slow_seconds=slow)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs, "slow")
    seconds = flow.run(timing.job_deadline)
    counts = _api_log_counts(sb)
    slowed = sum(n for k, n in counts.items() if "slow" in k)
    return _finish(
        "slow_responses",
        f"30 % of API and CDN answers take {slow:g} s (client read timeout {timing.client_timeout:g} s)",
        # API calls (polls, fresh-link GETs) are retried until the deadline, so no job may
        # fail from a slow API answer. A download itself gets 3 attempts: with 30 % of CDN
        # answers late, a job can rarely (0.3^3) fail with a retryable DownloadError.
        flow, sb, seconds, allowed=frozenset({"DownloadError"}),
        notes=[f"{slowed} API answers came after the timeout"],
    )


def case_connection_resets(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    _prepare(sb, timing, drop_rate=0.3)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs, "resets")
    seconds = flow.run(timing.job_deadline)
    counts = _api_log_counts(sb)
    dropped = counts.get("drop-reset", 0) + counts.get("drop-partial", 0)
    posts_lost = sum(1 for e in sb.requests_log()
                     if e.get("method") == "POST" and (e.get("fault") or "").startswith("drop"))
    return _finish(
        "connection_resets",
        "30 % of API connections reset or cut mid-response, after the server did the work",
        flow, sb, seconds,
        notes=[f"{dropped} answers lost, {posts_lost} of them to POST /generate (job created, answer lost)"],
    )


def case_bad_downloads(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    _prepare(sb, timing, truncate_rate=0.2, corrupt_rate=0.2)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs, "downloads")
    seconds = flow.run(timing.job_deadline)
    bad = [e for e in sb.cdn_log() if e.get("fault")]
    leftovers = [p.name for p in flow.download_dir.iterdir() if p.name.endswith(".part")]
    result = _finish(
        "bad_downloads", "20 % of downloads truncated, 20 % corrupt (right length, garbage bytes)",
        flow, sb, seconds, allowed=frozenset({"DownloadError"}),
        notes=[f"{len(bad)} bad downloads served, no partial file left"],
    )
    if leftovers:
        result.outcome.problems.append(f"partial files left behind: {leftovers}")
    # A job that failed here keeps its job id: Retry downloads it again, no new generation.
    retried = _retry_failed(sb, work, timing, flow, faults={"truncate_rate": 0, "corrupt_rate": 0})
    if retried:
        result.notes.insert(1, retried)
    return result


def _retry_failed(sb: SandboxServer, work: Path, timing: Timing, flow: Flow,
                  faults: dict[str, Any]) -> str:
    """Retry every failed job of a closed flow in a new scheduler on the same store (as after
    a restart), with the fault gone; report how many then completed and new generations made."""
    failed = [r.local_id for r in flow.records() if r.state is JobState.FAILED]
    if not failed:
        return ""
    before = len(sb.jobs())
    sb.set_faults(**faults)
    again = Flow(sb.api_key, sb.base_url, work, timing, download_dir=flow.download_dir)
    for local_id in failed:
        again.scheduler.retry(local_id)
    again.run(timing.job_deadline)
    again.close()
    done = sum(1 for i in failed if (r := again.scheduler.get(i)) and r.state is JobState.DOWNLOADED)
    made = len(sb.jobs()) - before
    return f"Retry of the {len(failed)} failed: {done} downloaded, {made} new generations"


def case_expired_urls(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    _prepare(sb, timing)
    # Expire each job's link at the instant its download starts (worker side).
    pool = HookedExecutor(4, lambda _local, _token, job_id, *_rest: sb.expire(job_id))
    flow = Flow(sb.api_key, sb.base_url, work, timing, download_executor=pool)
    flow.submit(timing.jobs, "expired")
    seconds = flow.run(timing.job_deadline)
    refused = sum(1 for e in sb.cdn_log() if e.get("status") in (403, 410))
    result = _finish("expired_urls", "every model URL expired when its download starts",
                     flow, sb, seconds, notes=[f"{refused} expired links refused by the CDN, each refreshed by one GET /job"])
    pool.shutdown()
    return result


def case_sandbox_restart(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    # Jobs must still be running on the server when it restarts.
    _prepare(sb, timing)
    sb.set_faults(latency=max(3.0, timing.latency or 0.0) if timing.latency is not None else None)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    total = timing.jobs + timing.jobs // 2  # a plan's worth in flight, the rest waiting
    flow.submit(total, "restart")
    before: list[dict[str, Any]] = []
    accepted_at_restart: list[str] = []

    def during(elapsed: float) -> None:
        if before:
            return
        records = flow.records()
        if sum(1 for r in records if r.job_id) >= min(10, total):
            accepted_at_restart.extend(r.local_id for r in records if r.job_id)
            before.extend(sb.jobs())
            sb.restart()  # a real restart: same port, every job forgotten

    seconds = flow.run(timing.job_deadline, during)
    server_jobs = before + sb.jobs()
    result = _finish(
        "sandbox_restart", "sandbox restarted (same port, all jobs forgotten) with jobs running",
        flow, sb, seconds, server_jobs=server_jobs, allowed=frozenset({"NotFoundError"}),
        notes=[f"{len(accepted_at_restart)} jobs were on the server at the restart"],
    )
    for local_id in accepted_at_restart:
        record = flow.scheduler.get(local_id)
        if record is None or record.state is not JobState.FAILED or record.error is None \
                or record.error.kind != "NotFoundError":
            result.outcome.problems.append(
                f"job {local_id} forgotten by the server should fail with NotFoundError, is "
                f"{record.state.value if record else 'gone'}"
            )
    return result


def case_network_outage(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    outage = timing.seconds(60.0)
    _prepare(sb, timing)
    flow = Flow(sb.api_key, sb.base_url, work, timing)
    flow.submit(timing.jobs + timing.jobs // 2, "outage")
    began: list[float] = []
    ended: list[float] = []

    def during(elapsed: float) -> None:
        if not began and any(r.job_id for r in flow.records()):
            sb.set_faults(offline=1)  # some jobs accepted, others still being sent
            began.append(elapsed)
        elif began and not ended and elapsed - began[0] >= outage:
            sb.set_faults(offline=0)
            ended.append(elapsed)

    seconds = flow.run(timing.job_deadline + outage, during)
    recovered = seconds - ended[0] if ended else float("nan")
    return _finish(
        "network_outage",
        f"network gone for {outage:g} s (every API and CDN connection reset), then back",
        flow, sb, seconds,
        notes=[f"all jobs finished {recovered:.1f} s after the network came back"],
    )


def case_hundred_jobs(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    _prepare(sb, timing)
    sb.set_plan("creator")  # 100 generations a month, 10 at once
    if timing.latency is not None:
        sb.set_faults(latency=0.5, latency_spread=0.25)
    flow = Flow(sb.api_key, sb.base_url, work, timing, max_concurrent=10)
    flow.submit(100, "hundred")
    peak = [0]

    def during(_elapsed: float) -> None:
        peak[0] = max(peak[0], flow.scheduler.in_flight())

    seconds = flow.run(timing.job_deadline * 3, during)
    statuses = _api_log_counts(sb)
    refused = {k: n for k, n in statuses.items() if k in ("429", "403")}
    result = _finish(
        "hundred_jobs", "100 jobs submitted at once, Creator plan (100/month, 10 concurrent)",
        flow, sb, seconds,
        notes=[f"at most {peak[0]} in flight; server refusals {refused or 'none'}; {seconds:.0f} s in all"],
    )
    if peak[0] > 10:
        result.outcome.problems.append(f"{peak[0]} jobs in flight, over the plan's 10")
    return result


def case_download_unwritable(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    # Tests run as root, for whom chmod does not block writes: the download folder's
    # parent is a regular file instead, so creating or writing the folder fails (ENOTDIR).
    blocker = work / "blocked"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the download folder's parent should be")
    _prepare(sb, timing)
    flow = Flow(sb.api_key, sb.base_url, work / "run", timing, download_dir=blocker / "models")
    count = max(3, timing.jobs // 2)
    flow.submit(count, "unwritable")
    seconds = flow.run(timing.job_deadline)
    result = _finish("download_unwritable", "download folder not writable (its parent is a file)",
                     flow, sb, seconds, allowed=frozenset({"StorageError"}))

    def fix() -> None:  # the user makes the folder usable again
        blocker.unlink()
        blocker.mkdir()

    _fix_and_retry(result, sb, flow, timing, fix=fix)
    return result


def case_disk_full(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    # A real ENOSPC without mount rights: the download's temporary file is a symlink to
    # /dev/full (writes fail with ENOSPC), planted when the download starts.
    planted: set[str] = set()
    models = work / "models"

    def fill_disk(_local: str, _token: int, job_id: str, *_rest: Any) -> None:
        if job_id not in planted:
            planted.add(job_id)
            part = models / f".{safe_filename(job_id)}.glb.part"
            models.mkdir(parents=True, exist_ok=True)
            if not part.exists():
                os.symlink("/dev/full", part)

    _prepare(sb, timing)
    pool = HookedExecutor(4, fill_disk)
    flow = Flow(sb.api_key, sb.base_url, work / "run", timing, download_dir=models, download_executor=pool)
    count = max(3, timing.jobs // 2)
    flow.submit(count, "diskfull")
    seconds = flow.run(timing.job_deadline)
    result = _finish("disk_full", "disk full (ENOSPC) while writing every model",
                     flow, sb, seconds, allowed=frozenset({"StorageError"}))
    pool.shutdown()
    # The failed write removed its temporary file: space is free again, nothing to undo.
    _fix_and_retry(result, sb, flow, timing, fix=lambda: None)
    return result


def _fix_and_retry(result: CaseResult, sb: SandboxServer, flow: Flow, timing: Timing,
                   fix: Callable[[], Any]) -> None:
    """Storage cases: every job must have failed with StorageError keeping its job id; after
    the fix, Retry must download each one without a new generation."""
    records = flow.records()
    kept = [r for r in records if r.state is JobState.FAILED and r.job_id
            and r.error is not None and r.error.kind == "StorageError"]
    if len(kept) != len(records):
        result.outcome.problems.append(
            f"{len(records) - len(kept)} job(s) did not fail with StorageError keeping their job id"
        )
    fix()
    before = len(sb.jobs())
    again = Flow(sb.api_key, sb.base_url, flow.store_path.parent, timing, download_dir=flow.download_dir)
    for record in kept:
        again.scheduler.retry(record.local_id)
    again.run(timing.job_deadline)
    again.close()
    after = {r.local_id: r for r in again.records()}
    done = sum(1 for r in kept if after[r.local_id].state is JobState.DOWNLOADED)
    made = len(sb.jobs()) - before
    result.notes.insert(0, f"after the fix, Retry downloaded {done} of {len(kept)} with {made} new generations")
    # The table's "Completed" counts the jobs usable in the end.
    result.outcome.completed += done
    result.outcome.failed_clear -= done
    result.failed_text = (
        f"{len(kept)} StorageError (job kept) → Retry after the fix: {done} downloaded"
    )
    if done != len(kept) or made:
        result.outcome.problems.append(f"retry after the fix: {done}/{len(kept)} downloaded, {made} new jobs")


ROOT = Path(__file__).resolve().parents[3]


def _child(phase: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.harness.blender_child", phase], cwd=str(ROOT), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # The child prints the add-on's reports (curly quotes): UTF-8 whatever locale
        # this process got (an xdist worker may have an ASCII one).
        text=True, encoding="utf-8", errors="replace",
    )


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """The child's first stdout line starting with ``prefix`` (it prints little else)."""
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    proc.kill()
    _out, err = proc.communicate(timeout=30)
    raise RuntimeError(f"the Blender child gave no {prefix.strip()} line; stderr:\n{err[-4000:]}")


def case_blender_kill(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    """Real Blender (bpy) queues jobs interactively, is SIGKILLed with jobs in flight, and a
    second Blender on the same user folder resumes them: each must be imported once,
    generated once."""
    _prepare(sb, timing)
    if timing.latency is not None:
        sb.set_faults(latency=4.0, latency_spread=1.0)  # still running on the server at the kill
    bur = work / "blender-user"
    bur.mkdir(parents=True, exist_ok=True)
    count = 12  # the plan's 10 in flight, 2 waiting in the local queue
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(bur), "HIPTAH_API_KEY": sb.api_key,
           "HIPTAH_BASE_URL": sb.base_url, "RELIABILITY_JOBS": str(count),
           "RELIABILITY_TIMEOUT": str(timing.job_deadline)}
    start = time.monotonic()
    first = _child("submit", env)
    inflight = json.loads(_read_line(first, "INFLIGHT ", 120.0))
    time.sleep(random.uniform(0.0, 0.3))  # the kill lands anywhere, store writes included
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    first.communicate(timeout=30)
    states_at_kill = sorted(set(inflight.values()))
    second = _child("resume", env)
    payload = json.loads(_read_line(second, "RESULT ", timing.job_deadline + 120.0))
    second.communicate(timeout=60)
    records = [JobRecord.from_dict(r) for r in payload["records"]]
    jobs = sb.jobs()
    outcome = charge_count(jobs, classify(records))
    check_accounting(records, jobs, outcome)
    missing = set(inflight) - {r.local_id for r in records}
    if missing:
        outcome.problems.append(f"jobs gone after the restart: {sorted(missing)}")
    not_imported = [r.local_id for r in records if r.state is not JobState.IMPORTED]
    if not_imported:
        outcome.problems.append(f"jobs not imported after the restart: {not_imported}")
    if payload["objects"] < len(records):
        outcome.problems.append(f"{payload['objects']} objects in the HiPtah collection for {len(records)} jobs")
    notes = [
        f"killed with jobs {', '.join(states_at_kill)}; the second Blender imported "
        f"{payload['objects']} objects; stall = runtime.step(), which imports models on the main "
        f"thread by design; steps without an import: max {payload['max_plain_step_ms']:.1f} ms",
    ]
    return CaseResult("blender_kill", "Blender SIGKILLed with 12 jobs in flight, started again",
                      outcome, payload["max_step_ms"], time.monotonic() - start, notes,
                      p99_stall_ms=payload["p99_step_ms"], max_cpu_ms=payload["max_cpu_ms"])


_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from hiptah_blender.jobs.scheduler import Scheduler, SchedulerConfig
from hiptah_blender.jobs.store import JobStore

class Nothing:  # no network: only the store matters here
    pass

sched = Scheduler(lambda: Nothing(), JobStore({path!r}), SchedulerConfig(max_concurrent=1))
print("ready", flush=True)
n = 0
while True:  # the job list changes all the time, as in a busy session
    sched.submit(f"a wooden crate number {{n}}", meta={{"pad": "x" * 500}})
    sched.tick()
    n += 1
    if n % 50 == 0:
        time.sleep(0.001)
"""


def case_store_kill(sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    """The job history survives SIGKILL in the middle of its writes (see also
    tests/unit/test_store.py::test_atomic_write_survives_sigkill_mid_write)."""
    del sb, timing
    from hiptah_blender.jobs.store import JobStore

    work.mkdir(parents=True, exist_ok=True)
    path = work / "jobs.json"
    script = work / "writer.py"
    script.write_text(_WRITER.format(root=str(ROOT), path=str(path)))
    rng = random.Random(4321)
    kills = 20
    outcome = Outcome()
    start = time.monotonic()
    previous = 0
    sizes: list[int] = []
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the store writer did not start")
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        store = JobStore(path)
        loaded = store.load()
        outcome.submitted += 1
        if store.warning is None and len(loaded) >= previous:
            outcome.completed += 1  # readable, and nothing written before was lost
        else:
            outcome.lost += 1
            outcome.problems.append(f"after a kill: {store.warning or f'{len(loaded)} < {previous} records'}")
        previous = len(loaded)
        sizes.append(previous)
    return CaseResult(
        "store_kill", f"job store: writer SIGKILLed mid-write, {kills} times", outcome, 0.0,
        time.monotonic() - start,
        [f"{outcome.completed}/{kills} restarts read a whole history (it grew to {sizes[-1]} jobs); "
         "Jobs = kills, Completed = intact loads"],
        failed_text="0", server=False,
    )


FAULT_CASES: dict[str, CaseFn] = {
    "server_errors": case_server_errors,
    "rate_limit_storm": case_rate_limit_storm,
    "slow_responses": case_slow_responses,
    "connection_resets": case_connection_resets,
    "bad_downloads": case_bad_downloads,
    "expired_urls": case_expired_urls,
    "sandbox_restart": case_sandbox_restart,
    "network_outage": case_network_outage,
    "hundred_jobs": case_hundred_jobs,
    "download_unwritable": case_download_unwritable,
    "disk_full": case_disk_full,
    "blender_kill": case_blender_kill,
    "store_kill": case_store_kill,
}


def sandbox_flags() -> dict[str, Any]:
    """The sandbox the fault cases run against (fake models: the cases test transport)."""
    return {"latency": 1, "models": os.environ.get("HIPTAH_SANDBOX_MODELS", "fake"), "seed": 7,
            "webhook_backoff": 0.1}


def run_case(name: str, sb: SandboxServer, work: Path, timing: Timing = FAST) -> CaseResult:
    start = time.monotonic()
    result = FAULT_CASES[name](sb, work / name, timing)
    result.seconds = time.monotonic() - start
    return result
