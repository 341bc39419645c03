"""Submit a batch to a Flamenco Manager as one ``hiptah-batch`` job.

    blender -b -c hiptah farm-submit prompts.csv --manager http://flamenco:8080 \\
        --output-dir /mnt/farm/batch-17 --shards 20 --shard-concurrency 10 --plan pro

Talks to the Manager's REST API (``pkg/api/flamenco-openapi.yaml``):

1. ``GET /api/v3/jobs/type/hiptah-batch``: the job type is installed (the script
   ``farm/flamenco/hiptah_batch.js`` in the Manager's ``scripts/`` folder) and its
   ``etag``, sent back as ``type_etag`` so a Manager with another version of the
   script refuses the job (412) instead of compiling settings it does not know.
2. ``POST /api/v3/jobs`` with a ``SubmittedJob`` (name, type, priority,
   submitter_platform, settings, metadata); the answer is the ``Job``; its ``id``
   is printed.

The HiPtah API key is never sent: it is no job setting (the Manager stores
settings and shows them in its web interface); workers read ``HIPTAH_API_KEY``
from their own environment. Pure Python (requests), no bpy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

JOB_TYPE = "hiptah-batch"
TIMEOUT = 30.0
SECRET_WORDS = ("api_key", "apikey", "secret", "token", "password")


class SubmitError(RuntimeError):
    """The job was not submitted (the message says why and what to do)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="prompts file, as the workers see it on shared storage")
    p.add_argument("--manager", default=os.environ.get("FLAMENCO_MANAGER"),
                   help="Flamenco Manager URL, e.g. http://flamenco:8080 (default $FLAMENCO_MANAGER)")
    p.add_argument("--output-dir", required=True, help="shared output folder, as the workers see it")
    p.add_argument("--shards", type=int, default=4, help="shard tasks (default 4)")
    p.add_argument("--shard-concurrency", type=int, default=10, help="HiPtah jobs in flight per shard (default 10)")
    p.add_argument("--plan", default="pro", choices=["creator", "pro", "enterprise"])
    p.add_argument("--plan-concurrency", type=int, default=0,
                   help="the plan's concurrent jobs (default: the plan's; needed for enterprise)")
    p.add_argument("--template", default="", help='CSV template, e.g. "a {color} {object}"')
    p.add_argument("--no-render", action="store_true", help="no asset previews")
    p.add_argument("--batch-id", default="", help="keep it to resubmit the same batch (see docs/farm.md)")
    p.add_argument("--name", default=None, help="job name (default: HiPtah batch <input file name>)")
    p.add_argument("--priority", type=int, default=50, help="Flamenco job priority 0-100 (default 50)")
    p.add_argument("--worker-tag", default=None, help="worker tag UUID: only those workers take the tasks")
    p.add_argument("--dry-run", action="store_true", help="print the job document; send nothing")


def build_job(args: argparse.Namespace, *, platform: str | None = None) -> dict[str, Any]:
    """The SubmittedJob document for these options."""
    for name, value in (("--shards", args.shards), ("--shard-concurrency", args.shard_concurrency)):
        if value < 1:
            raise SubmitError(f"{name} must be at least 1")
    if not 0 <= args.priority <= 100:
        raise SubmitError("--priority must be between 0 and 100")
    settings: dict[str, Any] = {
        "input_file": str(args.input),
        "output_dir": str(args.output_dir),
        "shard_count": int(args.shards),
        "shard_concurrency": int(args.shard_concurrency),
        "plan": args.plan,
        "plan_concurrency": int(args.plan_concurrency),
        "template": args.template or "",
        "previews": not args.no_render,
        "batch_id": args.batch_id or "",
    }
    if any(w in k for k in settings for w in SECRET_WORDS):  # the key is never a setting
        raise SubmitError("internal: a job setting looks like a secret")
    job: dict[str, Any] = {
        "name": args.name or f"HiPtah batch {Path(str(args.input)).name}",
        "type": JOB_TYPE,
        "priority": int(args.priority),
        "submitter_platform": platform or _platform(),
        "settings": settings,
        "metadata": {"hiptah.input": str(args.input), "user.name": _user()},
    }
    if args.worker_tag:
        job["worker_tag"] = args.worker_tag
    return job


def _platform() -> str:
    # Go's runtime.GOOS names, as the OpenAPI description asks.
    return {"win32": "windows", "darwin": "darwin"}.get(sys.platform, "linux" if sys.platform.startswith("linux")
                                                          else sys.platform)


def _user() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _manager_url(url: str | None) -> str:
    if not url:
        raise SubmitError("give the Flamenco Manager's URL: --manager http://HOST:8080 (or set FLAMENCO_MANAGER)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SubmitError(f"--manager wants an http(s) URL such as http://flamenco:8080, not {url!r}")
    return url.rstrip("/")


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body)
    except ValueError:
        return (response.text or "").strip()[:300] or f"HTTP {response.status_code}"


def submit(manager: str | None, job: dict[str, Any], *, session: Any = None) -> dict[str, Any]:
    """Fetch the job type's etag, POST the job; the Manager's Job document."""
    import requests

    base = _manager_url(manager)
    http = session or requests.Session()
    try:
        answer = http.get(f"{base}/api/v3/jobs/type/{JOB_TYPE}", timeout=TIMEOUT)
        if answer.status_code != 200:
            raise SubmitError(
                f"the Manager at {base} has no '{JOB_TYPE}' job type ({answer.status_code}: {_error_text(answer)}). "
                "Copy farm/flamenco/hiptah_batch.js into the Manager's scripts/ folder and restart it."
            )
        etag = answer.json().get("etag")
        document = dict(job)
        if isinstance(etag, str) and etag:
            document["type_etag"] = etag
        answer = http.post(f"{base}/api/v3/jobs", json=document, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise SubmitError(f"the Manager at {base} cannot be reached ({type(exc).__name__}); check --manager") from None
    if answer.status_code == 412:
        raise SubmitError(f"the Manager's '{JOB_TYPE}' job type changed while submitting; submit again "
                          f"({_error_text(answer)})")
    if answer.status_code != 200:
        raise SubmitError(f"the Manager refused the job ({answer.status_code}: {_error_text(answer)})")
    created: dict[str, Any] = answer.json()
    if not isinstance(created.get("id"), str):
        raise SubmitError("the Manager's answer has no job id; is --manager a Flamenco Manager?")
    return created


def check_input(args: argparse.Namespace) -> str | None:
    """Validate the prompts file when this machine can read it; a note for the user, or None."""
    from .inputs import InputError, load_rows

    if not os.path.isfile(args.input):
        return f"note: {args.input} is not readable here; the workers must see it at that path"
    try:
        rows = load_rows(args.input, template=args.template or None)
    except InputError as exc:
        raise SubmitError(exc.describe()) from None
    if args.shards > len(rows):
        return f"note: {len(rows)} prompt(s) for {args.shards} shards: {args.shards - len(rows)} shard(s) will be empty"
    return f"{len(rows)} prompt(s) in {args.shards} shard(s)"


def run_submit(args: argparse.Namespace) -> int:
    """The ``farm-submit`` command: 0 submitted (job id printed), 1 the Manager refused, 2 bad options."""
    try:
        job = build_job(args)
        if not args.dry_run:
            _manager_url(args.manager)
        note = check_input(args)
    except SubmitError as exc:
        print(f"farm-submit: {exc}", file=sys.stderr)
        return 2
    if note:
        print(note, file=sys.stderr)
    if args.dry_run:
        print(json.dumps(job, indent=1))
        return 0
    try:
        created = submit(args.manager, job)
    except SubmitError as exc:
        print(f"farm-submit: {exc}", file=sys.stderr)
        return 1
    print(created["id"])
    print(f"farm-submit: job '{created.get('name', job['name'])}' is {created.get('status', '?')} on "
          f"{_manager_url(args.manager)}", file=sys.stderr)
    return 0
