"""Bad input: every case gets a clear message and changes nothing (no server job, no file).

Each case runs through the same entry points the add-on uses (``Scheduler.submit``
for what the user types, ``HiptahClient(...)`` for the settings, the scheduler's
jobs for what the server sends) and returns a :class:`BadInputResult` with the exact
text the user sees (``user_text()``: what Blender's report shows). The Blender-level
tests (tests/reliability/test_bad_input.py) check that the operator reports the same
text. Emoji and right-to-left prompts are valid: they must reach the server intact.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.jobs.records import JobState
from sandbox.fakemodels import generate_model
from sandbox.harness import SandboxServer
from tests.unit.scripted_server import Recorded, Reply, ScriptedServer

from .flow import FAST, Flow


@dataclass
class BadInputResult:
    name: str
    what: str
    outcome: str  # "refused" | "accepted"
    error_kind: str
    text: str  # what the user sees
    problems: list[str] = field(default_factory=list)

    def row(self) -> str:
        cells = [self.what, self.outcome + (f" ({self.error_kind})" if self.error_kind else ""),
                 self.text.replace("|", "\\|").replace("\n", " ")]
        return "| " + " | ".join(cells) + " |"


TABLE_HEADER = "| Input | Result | What the user sees |\n|---|---|---|"


@dataclass
class Ctx:
    sb: SandboxServer
    work: Path


def _png(width: int = 4, height: int = 4, pad_to: int = 0) -> bytes:
    """A real PNG; ``pad_to`` adds an ancillary chunk so the file reaches that size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    body = chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    if pad_to:
        pad = max(0, pad_to - len(head) - len(body) - 12)
        head += chunk(b"tEXt", b"padding\x00" + b"x" * pad)
    return head + body


def _no_trace(ctx: Ctx, flow: Flow | None, result: BadInputResult) -> BadInputResult:
    """Nothing may have changed: no job on the server, no file in the download folder."""
    if ctx.sb.jobs():
        result.problems.append(f"the server has {len(ctx.sb.jobs())} job(s)")
    if flow is not None and flow.download_dir.exists() and any(flow.download_dir.iterdir()):
        result.problems.append(f"files written: {[p.name for p in flow.download_dir.iterdir()]}")
    return result


def _refused(ctx: Ctx, name: str, what: str, expected: type[errors.HiptahError],
             action: Callable[[Flow], Any]) -> BadInputResult:
    ctx.sb.reset()
    flow = Flow(ctx.sb.api_key, ctx.sb.base_url, ctx.work / name, FAST)
    try:
        action(flow)
    except errors.HiptahError as exc:
        result = BadInputResult(name, what, "refused", exc.kind, exc.user_text())
        if not isinstance(exc, expected):
            result.problems.append(f"{exc.kind}, expected {expected.__name__}")
    else:
        result = BadInputResult(name, what, "accepted", "", "", [f"accepted, expected {expected.__name__}"])
    flow.run(2.0)  # give a (wrongly) queued job every chance to reach the server
    flow.close()
    if flow.records():
        result.problems.append("a job was queued")
    return _no_trace(ctx, flow, result)


def _prompt_case(name: str, what: str, prompt: str) -> Callable[[Ctx], BadInputResult]:
    return lambda ctx: _refused(ctx, name, what, errors.InvalidPromptError,
                                lambda flow: flow.scheduler.submit(prompt))


def _valid_prompt_case(name: str, what: str, prompt: str) -> Callable[[Ctx], BadInputResult]:
    def run(ctx: Ctx) -> BadInputResult:
        ctx.sb.reset()
        ctx.sb.set_faults(latency=0)
        flow = Flow(ctx.sb.api_key, ctx.sb.base_url, ctx.work / name, FAST)
        local_id = flow.scheduler.submit(prompt).local_id
        flow.run(30.0)
        flow.close()
        record = flow.scheduler.get(local_id)
        received = [j["prompt"] for j in ctx.sb.jobs()]
        result = BadInputResult(name, what, "accepted", "",
                                "Nothing: the job runs; the server received the prompt exactly as typed.")
        if record is None or record.state is not JobState.DOWNLOADED:
            result.problems.append(f"the job ended {record.state.value if record else 'missing'}")
        if received != [prompt.strip()]:
            result.problems.append(f"the server received {received!r}, not {prompt.strip()!r}")
        return result

    return run


def _setting_case(name: str, what: str, expected: type[errors.HiptahError], key: str | None,
                  base_url: str | None) -> Callable[[Ctx], BadInputResult]:
    def run(ctx: Ctx) -> BadInputResult:
        ctx.sb.reset()
        try:
            HiptahClient(ctx.sb.api_key if key is None else key,
                         ctx.sb.base_url if base_url is None else base_url)
        except errors.HiptahError as exc:
            result = BadInputResult(name, what, "refused", exc.kind, exc.user_text())
            if not isinstance(exc, expected):
                result.problems.append(f"{exc.kind}, expected {expected.__name__}")
            return _no_trace(ctx, None, result)
        return BadInputResult(name, what, "accepted", "", "", ["accepted a bad setting"])

    return run


def _server_refusal(name: str, what: str, key: str, revoke: bool) -> Callable[[Ctx], BadInputResult]:
    """A key only the server can judge: the job fails with the 401, nothing is created."""
    def run(ctx: Ctx) -> BadInputResult:
        ctx.sb.reset()
        if revoke:
            ctx.sb.keys(revoke=[key])
        flow = Flow(key, ctx.sb.base_url, ctx.work / name, FAST)
        local_id = flow.scheduler.submit("a wooden crate").local_id
        flow.run(30.0)
        flow.close()
        record = flow.scheduler.get(local_id)
        error = record.error if record is not None else None
        if error is None:
            return BadInputResult(name, what, "accepted", "", "", ["the job did not fail"])
        result = BadInputResult(name, what, "refused by the server", error.kind, error.user_text())
        if error.kind != "AuthenticationError":
            result.problems.append(f"{error.kind}, expected AuthenticationError")
        if key in error.user_text():
            result.problems.append("the key shows in the message")
        return _no_trace(ctx, flow, result)

    return run


def _image_case(name: str, what: str, content: bytes | None, filename: str) -> Callable[[Ctx], BadInputResult]:
    def run(ctx: Ctx) -> BadInputResult:
        folder = ctx.work / name / "images"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        if content is not None:
            path.write_bytes(content)
        return _refused(ctx, name, what, errors.InvalidImageError,
                        lambda flow: flow.scheduler.submit("", image_path=str(path)))

    return run


# ------------------------------------------------------------------- server-chosen input


@contextlib.contextmanager
def scripted_api(job_id: str, fmt: str, body: bytes) -> Iterator[ScriptedServer]:
    """A scripted API (127.0.0.1) answering ``job_id`` for every generation, completed at
    once, whose model URL on a scripted CDN (127.0.0.2) serves ``body``."""
    api = ScriptedServer("127.0.0.1").start()
    cdn = ScriptedServer("127.0.0.2").start()
    try:
        cdn.default("GET", "/models/model.bin", Reply(200, body, headers={"Content-Type": "model/gltf-binary"}))
        api.default("POST", "/v1/generate", Reply.json(201, {"job_id": job_id, "status": "queued",
                                                             "estimated_time_seconds": 0}))

        def job(_req: Recorded) -> Reply:
            return Reply.json(200, {"job_id": job_id, "status": "completed", "format": fmt,
                                    "model_url": cdn.url("/models/model.bin")})

        api.default("GET", "/v1/job/" + _quoted(job_id), job)
        yield api
    finally:
        api.stop()
        cdn.stop()


def _scripted_job(ctx: Ctx, name: str, job_id: str, fmt: str, body: bytes) -> tuple[Flow, ScriptedServer, str]:
    """Run one job against :func:`scripted_api`; return the flow, the API server and the local id."""
    with scripted_api(job_id, fmt, body) as api:
        flow = Flow("sk_scripted_0123456789", api.base_url, ctx.work / name, FAST)
        local_id = flow.scheduler.submit("a wooden crate", format=fmt).local_id
        flow.run(30.0)
        flow.close()
        return flow, api, local_id


def _quoted(job_id: str) -> str:
    from urllib.parse import quote

    return quote(job_id, safe="")


def _evil_job_id(name: str, what: str, job_id: str, refused_as: str | None = None
                 ) -> Callable[[Ctx], BadInputResult]:
    """A job id from the server with path characters: contained in the download folder
    and quoted in the URL, or (``refused_as``) refused with that error."""
    def run(ctx: Ctx) -> BadInputResult:
        glb = generate_model("a wooden crate", "glb", "draft")
        flow, api, local_id = _scripted_job(ctx, name, job_id, "glb", glb)
        record = flow.scheduler.get(local_id)
        polled = sorted({r.path for r in api.requests if r.method == "GET"})
        result = BadInputResult(name, what, "contained", "", "")
        if record is not None and record.state is JobState.DOWNLOADED and record.file_path:
            path = Path(record.file_path)
            result.text = (f"Nothing wrong: polled as {', '.join(polled)}; saved as "
                           f"{path.name} inside the download folder.")
            if path.resolve().parent != flow.download_dir.resolve():
                result.problems.append(f"saved outside the download folder: {path}")
        elif record is not None and record.error is not None:
            result.outcome, result.error_kind, result.text = "refused", record.error.kind, record.error.user_text()
        else:
            result.problems.append(f"the job ended {record.state.value if record else 'missing'}")
        escaped = [p for p in flow.download_dir.parent.rglob("*evil*")
                   if p.resolve().parent != flow.download_dir.resolve()]
        if escaped or any(Path(tempfile.gettempdir()).glob("evil*")):
            result.problems.append(f"a file escaped: {escaped}")
        if any("/../" in p or p.endswith("/..") for p in polled):
            result.problems.append(f"unquoted path sent: {polled}")
        if (result.error_kind or None) != refused_as:
            result.problems.append(f"expected {refused_as or 'the file inside the folder'}, got {result.error_kind}")
        return result

    return run


def _wrong_model(name: str, what: str, fmt: str, body: bytes) -> Callable[[Ctx], BadInputResult]:
    def run(ctx: Ctx) -> BadInputResult:
        flow, _api, local_id = _scripted_job(ctx, name, "gen_wrongtype", fmt, body)
        record = flow.scheduler.get(local_id)
        if record is None or record.error is None:
            return BadInputResult(name, what, "accepted", "", "",
                                  [f"the job ended {record.state.value if record else 'missing'}"])
        result = BadInputResult(name, what, "refused", record.error.kind, record.error.user_text())
        if record.error.kind != "DownloadError":
            result.problems.append(f"{record.error.kind}, expected DownloadError")
        if flow.download_dir.exists() and any(flow.download_dir.iterdir()):
            result.problems.append(f"files written: {[p.name for p in flow.download_dir.iterdir()]}")
        return result

    return run


GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
HTML_PAGE = b"<!doctype html><html><head><title>Error</title></head><body>Access denied</body></html>" * 2

# name -> (table text, prompt, valid)
PROMPTS: dict[str, tuple[str, str, bool]] = {
    "prompt_empty": ("prompt: empty", "", False),
    "prompt_blank": ("prompt: blank (spaces, tab, newline)", "  \t \n ", False),
    "prompt_501": ("prompt: 501 characters", "a" * 501, False),
    "prompt_html": ("prompt: HTML (`a <b>red</b> cart`)", "a <b>red</b> cart", False),
    "prompt_entity": ("prompt: HTML entity (`a cart &amp; horse`)", "a cart &amp; horse", False),
    "prompt_control": ("prompt: control character (`a cart\\x07 with bell`)", "a cart\x07 with bell", False),
    "prompt_emoji": ("prompt: emoji (`a 🐉 dragon guarding 🏰`)", "a 🐉 dragon guarding 🏰", True),
    "prompt_rtl": ("prompt: right-to-left (`عربة خشبية قديمة — כיסא עץ`)", "عربة خشبية قديمة — כיסא עץ", True),
}
# name -> (table text, file content or None for a missing file, file name)
IMAGES: dict[str, tuple[str, bytes | None, str]] = {
    "image_gif": ("image: a `.png` that is a GIF", GIF, "photo.png"),
    "image_text": ("image: a `.png` that is text", b"just some text, not an image\n", "notes.png"),
    "image_huge": ("image: a real PNG of 11 MB", _png(pad_to=11 * 1024 * 1024), "huge.png"),
    "image_missing": ("image: the file does not exist", None, "gone.png"),
}
# name -> (table text, base URL)
BASE_URLS: dict[str, tuple[str, str]] = {
    "url_no_scheme": ("base URL without scheme (`api.hiptah.com/v1`)", "api.hiptah.com/v1"),
    "url_ftp": ("base URL `ftp://api.hiptah.com/v1`", "ftp://api.hiptah.com/v1"),
    "url_http_remote": ("base URL `http://api.hiptah.com/v1` (not loopback)", "http://api.hiptah.com/v1"),
    "url_credentials": ("base URL with credentials (`https://me:pw@api.hiptah.com/v1`)",
                        "https://me:pw@api.hiptah.com/v1"),
}
# name -> (table text, key)
KEYS: dict[str, tuple[str, str]] = {
    "key_missing": ("API key missing", ""),
    "key_blank": ("API key blank (spaces)", "   "),
    "key_space": ("API key with a space inside (bad paste)", "hp_abc def123456"),
}
REVOKED_KEY = "hp_revoked_key_0123456789"

BAD_INPUTS: dict[str, Callable[[Ctx], BadInputResult]] = {
    **{name: (_valid_prompt_case if valid else _prompt_case)(name, what, prompt)
       for name, (what, prompt, valid) in PROMPTS.items()},
    **{name: _setting_case(name, what, errors.InvalidBaseURLError, None, url)
       for name, (what, url) in BASE_URLS.items()},
    **{name: _setting_case(name, what, errors.MissingAPIKeyError, key, None)
       for name, (what, key) in KEYS.items()},
    "key_revoked": _server_refusal("key_revoked", "API key revoked", REVOKED_KEY, revoke=True),
    "key_wrong": _server_refusal("key_wrong", "API key wrong", "hp_wrong_key_0123456789", revoke=False),
    "format_obj": lambda ctx: _refused(ctx, "format_obj", "format `obj`", errors.UnsupportedFormatError,
                                       lambda flow: flow.scheduler.submit("a crate", format="obj")),
    "quality_ultra": lambda ctx: _refused(ctx, "quality_ultra", "quality `ultra`", errors.InvalidQualityError,
                                          lambda flow: flow.scheduler.submit("a crate", quality="ultra")),
    **{name: _image_case(name, what, content, filename) for name, (what, content, filename) in IMAGES.items()},
    "jobid_traversal": _evil_job_id("jobid_traversal", "server job id `../../evil`", "../../evil"),
    "jobid_dotdot": _evil_job_id("jobid_dotdot", "server job id `..`", "..", refused_as="UnexpectedResponseError"),
    "model_html_as_glb": _wrong_model("model_html_as_glb", "model: an HTML page served (200) for a GLB",
                                      "glb", HTML_PAGE),
    "model_glb_as_stl": _wrong_model("model_glb_as_stl", "model: GLB bytes served for an STL job", "stl",
                                     generate_model("a crate", "glb", "draft")),
}


def run_bad_input(name: str, sb: SandboxServer, work: Path) -> BadInputResult:
    return BAD_INPUTS[name](Ctx(sb, work))


def describe(results: list[BadInputResult]) -> str:
    return TABLE_HEADER + "\n" + "\n".join(r.row() for r in results)


__all__ = ["BAD_INPUTS", "BadInputResult", "describe", "run_bad_input"]
