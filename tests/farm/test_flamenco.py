"""The Flamenco job type (farm/flamenco/hiptah_batch.js) and the submitter (batch.flamenco).

Flamenco cannot be installed here. The job compiler runs in Node against
tests/farm/flamenco_runtime.js, an implementation of the goja runtime written from
Flamenco's source; the submitter talks to tests/farm/flamenco_manager.py, a loopback
Manager written from Flamenco's OpenAPI description, which compiles the job with the
same runtime. Neither is Flamenco itself: docs/farm.md says what was not run.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hiptah_blender.batch import flamenco
from hiptah_blender.batch.shards import parse_shard

from .flamenco_manager import (
    RUNTIME,
    SCRIPTS,
    FakeManager,
    job_type_info,
    run_node,
    schema_problems_job,
    schema_problems_job_type,
    schema_problems_submitted,
)

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")

SCRIPT = SCRIPTS["hiptah-batch"]


def compile_job(tmp_path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    doc = {"name": "t", "type": "hiptah-batch", "priority": 50, "submitter_platform": "linux",
           "settings": {"input_file": "/farm/p.txt", "output_dir": "/farm/out", "shard_count": 4,
                        "shard_concurrency": 10, "plan": "pro", "plan_concurrency": 0, "template": "",
                        "previews": True, "batch_id": "", **settings}}
    path = tmp_path / "submitted.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return run_node(SCRIPT, "compile", str(path))


def peak_shards_running(tasks: list[dict[str, Any]], workers: int, seed: int) -> int:
    """Run the task graph on ``workers`` workers with random task durations, as a farm would
    (a task starts when a worker is free and its dependencies are done); the most shard
    tasks that ran at the same time."""
    rng = random.Random(seed)
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    waiting = list(tasks)
    now, peak = 0.0, 0
    while waiting or running:
        ready = [t for t in waiting if set(t["dependencies"]) <= done]
        rng.shuffle(ready)
        while ready and len(running) < workers:
            task = ready.pop()
            waiting.remove(task)
            running.append((now + rng.uniform(1, 10), task["uuid"]))
        peak = max(peak, sum(1 for _end, uid in running if uid != tasks[-1]["uuid"]))
        running.sort()
        now, finished = running.pop(0)
        done.add(finished)
    return peak


def test_job_type_settings_follow_the_openapi_description() -> None:
    info = job_type_info("hiptah-batch")
    assert schema_problems_job_type(info) == []
    keys = {s["key"] for s in info["settings"]}
    assert {"input_file", "output_dir", "shard_count", "shard_concurrency", "plan"} <= keys
    assert not any(w in k for k in keys for w in ("key", "secret", "token", "password"))  # no API key setting


@pytest.mark.parametrize(("shards", "per_shard", "plan", "plan_limit", "lanes"), [
    (7, 10, "pro", 0, 3),  # 30 / 10
    (20, 3, "creator", 0, 3),  # 10 / 3
    (2, 10, "pro", 0, 2),  # fewer shards than lanes
    (50, 25, "enterprise", 100, 4),
])
def test_shards_then_merge_with_the_plan_limit_kept(tmp_path: Path, shards: int, per_shard: int, plan: str,
                                                    plan_limit: int, lanes: int) -> None:
    out = compile_job(tmp_path, {"shard_count": shards, "shard_concurrency": per_shard, "plan": plan,
                                 "plan_concurrency": plan_limit, "previews": False, "template": "a {x}",
                                 "batch_id": "b-17"})
    assert "error" not in out, out
    tasks = out["tasks"]
    assert len(tasks) == shards + 1
    *shard_tasks, merge = tasks
    assert merge["name"] == "merge-library" and set(merge["dependencies"]) == {t["uuid"] for t in shard_tasks}
    assert all(t["type"] == "hiptah" for t in tasks)
    for index, task in enumerate(shard_tasks, start=1):
        (command,) = task["commands"]
        assert command["name"] == "blender-render"
        params = command["parameters"]
        # What the worker's blender-render command reads (internal/worker/command_blender.go).
        assert params["exe"] == "{blender}" and params["exeArgs"] == "{blenderArgs}"
        assert params["argsBefore"] == [] and params["blendfile"] == ""
        args = params["args"]
        assert all(isinstance(a, str) for a in args)
        assert args[:4] == ["--online-mode", "-c", "hiptah", "batch"]
        assert args[args.index("--shard") + 1] == f"{index}/{shards}"
        assert args[args.index("--concurrency") + 1] == str(per_shard)
        assert args[args.index("--out") + 1] == f"/farm/out/shards/shard-{index:04d}"
        assert args[args.index("--batch-id") + 1] == "b-17" and "--no-render" in args
        assert args[args.index("--template") + 1] == "a {x}"
    merge_args = merge["commands"][0]["parameters"]["args"]
    assert merge_args == ["-c", "hiptah", "merge", "--out", "/farm/out/library", "/farm/out/shards"]
    # Every row is in exactly one shard, whatever the input's length.
    for total in (shards, 3 * shards + 1):
        covered = [i for n in range(1, shards + 1) for i in range(*_bounds(n, shards, total))]
        assert covered == list(range(total))
    # However many workers there are, the shards running at once stay within the plan.
    limit = plan_limit or {"pro": 30, "creator": 10}[plan]
    for workers in (1, lanes, 64):
        for seed in range(5):
            peak = peak_shards_running(tasks, workers, seed)
            assert peak * per_shard <= limit
            assert peak == min(workers, lanes, shards)


def _bounds(index: int, count: int, total: int) -> tuple[int, int]:
    part = parse_shard(f"{index}/{count}", total)
    return part.start, part.stop


@pytest.mark.parametrize(("settings", "message"), [
    ({"shard_concurrency": 40}, "above the plan's 30"),
    ({"plan": "enterprise"}, "negotiated limit"),
    ({"shard_count": 0}, "shard_count must be"),
    ({"hiptah_api_key": "hp_live_x"}, "looks like a secret"),
])
def test_compile_refuses_bad_settings(tmp_path: Path, settings: dict[str, Any], message: str) -> None:
    out = compile_job(tmp_path, settings)
    assert message in out.get("error", ""), out


def test_the_runtime_enforces_flamencos_call_shapes(tmp_path: Path) -> None:
    """The stand-in can fail: calls Flamenco's Go bindings would refuse fail here too."""
    cases = {
        "task.addCommand({name: 'x', parameters: {}})": "must come from author.Command",
        "author.Task('', 'hiptah')": "name is required",
        "author.Task('x', ' ')": "type is required",
        "author.Command('exec', 'not a map')": "parameters must be an object",
        "job.addTask({name: 'x'})": "must come from author.Task",
    }
    for call, message in cases.items():
        script = tmp_path / "bad.js"
        script.write_text("const JOB_TYPE = {label: 'x', settings: []};\n"
                          f"function compileJob(job) {{ const task = author.Task('t', 'misc'); {call}; }}\n",
                          encoding="utf-8")
        submitted = tmp_path / "s.json"
        submitted.write_text(json.dumps({"name": "n", "type": "bad", "priority": 50, "submitter_platform": "linux"}))
        proc = subprocess.run(["node", str(RUNTIME), str(script), "compile", str(submitted)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 3 and message in json.loads(proc.stdout)["error"], (call, proc.stdout)

    # Go copies a task into the job when it is added: later commands are not in the job.
    script = tmp_path / "late.js"
    script.write_text("const JOB_TYPE = {label: 'x', settings: []};\nfunction compileJob(job) {\n"
                      " const t = author.Task('t', 'misc'); job.addTask(t);\n"
                      " t.addCommand(author.Command('echo', {message: 'late'})); }\n", encoding="utf-8")
    out = run_node(script, "compile", str(tmp_path / "s.json"))
    assert out["tasks"][0]["commands"] == []


# ---------------------------------------------------------------------- the submitter
@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeManager]:
    server = FakeManager().start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def submit_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    flamenco.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_submitter_posts_a_valid_job_and_prints_its_id(manager: FakeManager, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    secret = "hp_live_must_never_leave_this_machine"
    monkeypatch.setenv("HIPTAH_API_KEY", secret)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a chair {i}\n" for i in range(25)), encoding="utf-8")
    code = flamenco.run_submit(submit_args(str(prompts), "--manager", manager.url, "--output-dir", "/farm/b17",
                                           "--shards", "5", "--shard-concurrency", "10", "--plan", "pro",
                                           "--batch-id", "b17"))
    out, err = capsys.readouterr()
    assert code == 0, err
    job_id = out.strip()
    assert job_id in manager.jobs
    assert [(r["method"], r["path"]) for r in manager.requests] == [
        ("GET", "/api/v3/jobs/type/hiptah-batch"), ("POST", "/api/v3/jobs")]
    posted = json.loads(manager.requests[1]["body"])
    assert schema_problems_submitted(posted) == []
    assert posted["type_etag"] == job_type_info("hiptah-batch")["etag"]
    assert posted["settings"]["shard_count"] == 5 and posted["settings"]["batch_id"] == "b17"
    assert schema_problems_job(manager.jobs[job_id]) == []
    assert len(manager.compiled[job_id]["tasks"]) == 6  # 5 shards + merge
    # The key is in no request: not in a setting, a header or anywhere in a body.
    for request in manager.requests:
        assert secret not in json.dumps(request)
        assert "authorization" not in {h.lower() for h in request["headers"]}
    assert "25 prompt(s) in 5 shard(s)" in err


def test_submitter_errors_say_what_to_do(manager: FakeManager, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = ("/farm/p.txt", "--output-dir", "/farm/out")
    manager.job_types = {}
    assert flamenco.run_submit(submit_args(*base, "--manager", manager.url)) == 1
    assert "Copy farm/flamenco/hiptah_batch.js into the Manager's scripts/ folder" in capsys.readouterr().err

    manager.job_types = dict(SCRIPTS)
    manager.etag_override = "0" * 40
    handler_class: Any = manager.server.RequestHandlerClass
    original = handler_class.do_GET

    def stale_get(handler: Any) -> None:  # the script changes between the GET and the POST
        manager.etag_override = None
        original(handler)
        manager.etag_override = "1" * 40

    handler_class.do_GET = stale_get
    assert flamenco.run_submit(submit_args(*base, "--manager", manager.url)) == 1
    assert "job type changed while submitting; submit again" in capsys.readouterr().err
    handler_class.do_GET = original
    manager.etag_override = None

    # Settings the job type refuses come back as the Manager's Error message.
    assert flamenco.run_submit(submit_args(*base, "--manager", manager.url, "--plan", "enterprise")) == 1
    assert "negotiated limit: set plan_concurrency" in capsys.readouterr().err
    assert manager.jobs == {}

    assert flamenco.run_submit(submit_args(*base, "--manager", "flamenco:8080")) == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert flamenco.run_submit(submit_args(*base, "--manager", "http://127.0.0.1:9")) == 1
    assert "cannot be reached" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("<b>x</b>\n", encoding="utf-8")
    assert flamenco.run_submit(submit_args(str(bad), "--output-dir", "/o", "--manager", manager.url)) == 2
    assert "line 1" in capsys.readouterr().err
