"""A loopback stand-in for Flamenco Manager's job API, written from Flamenco's OpenAPI
description (pkg/api/flamenco-openapi.yaml): it checks each request for what the
description requires and answers with the documented shapes.

    GET  /api/v3/jobs/type/{typeName}  -> 200 AvailableJobType (name, label, settings, etag),
                                          404 Error for an unknown type
    POST /api/v3/jobs (SubmittedJob)   -> 200 Job; 412 Error on a stale type_etag;
                                          400 Error for a document that breaks the schema,
                                          settings that break the job type, or a compile error

Like the real Manager, a submitted job is compiled by its job type's script: the
JavaScript runs in tests/farm/flamenco_runtime.js (Node). Stricter than the
description where it costs nothing: unknown top-level SubmittedJob fields are
refused (the Go server would ignore them; a typo should fail a test).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(__file__).with_name("flamenco_runtime.js")
SCRIPTS = {"hiptah-batch": ROOT / "farm" / "flamenco" / "hiptah_batch.js"}

JOB_STATUSES = {"active", "canceled", "completed", "failed", "paused", "queued", "cancel-requested",
                "requeueing", "under-construction"}
SETTING_TYPES = {"string", "int32", "float", "bool"}
SETTING_SUBTYPES = {"file_path", "dir_path", "file_name", "hashed_file_path"}
VISIBILITY = {"visible", "hidden", "submission", "web"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SUBMITTED_FIELDS = {"name": str, "type": str, "type_etag": str, "priority": int, "settings": dict,
                    "metadata": dict, "submitter_platform": str, "storage": dict, "worker_tag": str}
SUBMITTED_REQUIRED = ("name", "type", "priority", "submitter_platform")


def run_node(script: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(["node", str(RUNTIME), str(script), *args], capture_output=True, text=True, timeout=60)
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"the job compiler runtime crashed: {proc.stderr[-2000:]}") from None
    if proc.returncode not in (0, 3):
        raise RuntimeError(proc.stderr[-2000:])
    return out


def job_type_info(name: str) -> dict[str, Any]:
    """AvailableJobType, as getJobTypeInfo() makes it: JOB_TYPE + name + etag (sha1 of its JSON)."""
    described = run_node(SCRIPTS[name], "describe")
    info = {"name": name, **described}
    info["etag"] = hashlib.sha1(json.dumps(info, sort_keys=True).encode()).hexdigest()
    return info


def schema_problems_job_type(info: dict[str, Any]) -> list[str]:
    problems = [f"AvailableJobType.{k} missing" for k in ("name", "label", "settings", "etag") if k not in info]
    for i, s in enumerate(info.get("settings", [])):
        where = f"settings[{i}] ({s.get('key')})"
        if not isinstance(s.get("key"), str) or s.get("type") not in SETTING_TYPES:
            problems.append(f"{where}: key and type (one of {sorted(SETTING_TYPES)}) are required")
        if "subtype" in s and s["subtype"] not in SETTING_SUBTYPES:
            problems.append(f"{where}: subtype {s['subtype']!r} is not in the enum")
        if "choices" in s and (s.get("type") != "string" or not all(isinstance(c, str) for c in s["choices"])):
            problems.append(f"{where}: choices are only for string settings")
        if "visible" in s and s["visible"] not in VISIBILITY:
            problems.append(f"{where}: visible {s['visible']!r} is not in the enum")
        for flag in ("required", "editable"):
            if flag in s and not isinstance(s[flag], bool):
                problems.append(f"{where}: {flag} must be a boolean")
        if "propargs" in s and not isinstance(s["propargs"], dict):
            problems.append(f"{where}: propargs must be an object")
    return problems


def schema_problems_submitted(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return ["SubmittedJob must be a JSON object"]
    problems = [f"SubmittedJob.{k} is required" for k in SUBMITTED_REQUIRED if k not in doc]
    for key, value in doc.items():
        kind = SUBMITTED_FIELDS.get(key)
        if kind is None:
            problems.append(f"SubmittedJob has no property {key!r}")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"SubmittedJob.{key} must be {kind.__name__}, not {type(value).__name__}")
    metadata = doc.get("metadata")
    if isinstance(metadata, dict) and not all(isinstance(v, str) for v in metadata.values()):
        problems.append("JobMetadata values must be strings")
    storage = doc.get("storage")
    if isinstance(storage, dict) and not isinstance(storage.get("shaman_checkout_id", ""), str):
        problems.append("JobStorageInfo.shaman_checkout_id must be a string")
    if isinstance(doc.get("worker_tag"), str) and not UUID_RE.match(doc["worker_tag"]):
        problems.append("SubmittedJob.worker_tag must be a uuid")
    return problems


def schema_problems_job(job: dict[str, Any]) -> list[str]:
    """A Job answer: SubmittedJob + id, created, updated, status, activity."""
    base = {k: v for k, v in job.items() if k in SUBMITTED_FIELDS}
    problems = schema_problems_submitted(base)
    for key in ("id", "created", "updated", "status", "activity"):
        if not isinstance(job.get(key), str):
            problems.append(f"Job.{key} is required (string)")
    if isinstance(job.get("id"), str) and not UUID_RE.match(job["id"]):
        problems.append("Job.id must be a uuid")
    if job.get("status") not in JOB_STATUSES:
        problems.append(f"Job.status {job.get('status')!r} is not a JobStatus")
    for key in ("created", "updated"):
        try:
            datetime.fromisoformat(str(job.get(key)))
        except ValueError:
            problems.append(f"Job.{key} must be a date-time")
    return problems


def settings_problems(settings: dict[str, Any], info: dict[str, Any]) -> list[str]:
    problems = []
    for s in info["settings"]:
        key = s["key"]
        if key not in settings:
            if s.get("required"):
                problems.append(f"setting {key!r} is required")
            continue
        value = settings[key]
        ok = {"string": isinstance(value, str), "bool": isinstance(value, bool),
              "int32": isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31,
              "float": isinstance(value, int | float) and not isinstance(value, bool)}[s["type"]]
        if not ok:
            problems.append(f"setting {key!r} must be {s['type']}, not {value!r}")
        if "choices" in s and value not in s["choices"]:
            problems.append(f"setting {key!r}: {value!r} is not one of {s['choices']}")
    return problems


class FakeManager:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.compiled: dict[str, dict[str, Any]] = {}
        self.job_types = dict(SCRIPTS)
        self.etag_override: str | None = None  # simulate a script changed on the Manager
        manager = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"code": status, "message": message})  # the Error schema

            def _record(self, body: bytes = b"") -> None:
                manager.requests.append({"method": self.command, "path": self.path,
                                         "headers": dict(self.headers.items()), "body": body.decode("utf-8", "replace")})

            def do_GET(self) -> None:
                self._record()
                m = re.fullmatch(r"/api/v3/jobs/type/([^/]+)", self.path)
                if m is None:
                    return self._error(404, f"no route {self.path}")
                name = m.group(1)
                if name not in manager.job_types:
                    return self._error(404, f"job type {name!r} unknown")
                info = job_type_info(name)
                problems = schema_problems_job_type(info)
                if problems:
                    return self._error(500, "; ".join(problems))
                if manager.etag_override:
                    info["etag"] = manager.etag_override
                return self._send(200, info)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                self._record(raw)
                if self.path != "/api/v3/jobs":
                    return self._error(404, f"no route {self.path}")
                if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                    return self._error(415, "the request body must be application/json")
                try:
                    doc = json.loads(raw)
                except ValueError:
                    return self._error(400, "the request body is not JSON")
                problems = schema_problems_submitted(doc)
                if problems:
                    return self._error(400, "; ".join(problems))
                if doc["type"] not in manager.job_types:
                    return self._error(400, f"job type {doc['type']!r} unknown")
                info = job_type_info(doc["type"])
                etag = manager.etag_override or info["etag"]
                if doc.get("type_etag") and doc["type_etag"] != etag:
                    return self._error(412, f"job type etag does not match: expecting {etag!r}")
                problems = settings_problems(doc.get("settings") or {}, info)
                if problems:
                    return self._error(400, "; ".join(problems))
                scratch = Path(manager.workdir) / f"submitted-{len(manager.requests)}.json"
                scratch.write_text(json.dumps(doc), encoding="utf-8")
                compiled = run_node(manager.job_types[doc["type"]], "compile", str(scratch))
                if "error" in compiled:
                    return self._error(400, f"error compiling job: {compiled['error']}")
                now = datetime.now(UTC).isoformat()
                job = {**doc, "id": str(uuid.uuid4()), "created": now, "updated": now, "status": "queued",
                       "activity": f"compiled into {len(compiled['tasks'])} tasks"}
                manager.jobs[job["id"]] = job
                manager.compiled[job["id"]] = compiled
                return self._send(200, job)

        self.workdir = ""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self, workdir: Path) -> FakeManager:
        self.workdir = str(workdir)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
