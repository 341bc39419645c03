"""HiptahClient.download over real HTTP: a fake CDN on 127.0.0.2 proves the key never reaches it."""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hiptah_blender.client import download as dl
from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.models import Job
from tests.unit.scripted_server import Reply, ScriptedServer

KEY = "sk_dl_0123456789abcdef"


# --- tiny but valid model files --------------------------------------------------------


def glb_bytes(padding: int = 0) -> bytes:
    doc = json.dumps({"asset": {"version": "2.0"}, "extras": "x" * padding}).encode()
    doc += b" " * (-len(doc) % 4)
    return struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON") + doc


def zip_bytes(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, b"payload of " + name.encode())
    return buf.getvalue()


def stl_bytes(triangles: int = 3) -> bytes:
    return b"binary stl".ljust(80, b" ") + struct.pack("<I", triangles) + b"\x00" * (50 * triangles)


MODELS: dict[str, bytes] = {
    "glb": glb_bytes(),
    "fbx": b"Kaydara FBX Binary  \x00\x1a\x00" + b"\x00" * 200,
    "usdz": zip_bytes(["model.usdc", "textures/a.png"]),
    "3mf": zip_bytes(["[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"]),
    "stl": stl_bytes(),
}


@pytest.fixture
def api() -> Iterator[ScriptedServer]:
    with ScriptedServer("127.0.0.1") as srv:
        yield srv


@pytest.fixture
def cdn() -> Iterator[ScriptedServer]:
    with ScriptedServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture
def client(api: ScriptedServer) -> HiptahClient:
    return HiptahClient(KEY, api.base_url, sleep=lambda _: None)


def completed(url: str, job_id: str = "gen_1", fmt: str | None = None) -> Job:
    return Job(job_id=job_id, status="completed", model_url=url, format=fmt)


def only_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- happy paths ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(MODELS))
def test_every_format_downloads_without_the_key(
    cdn: ScriptedServer, client: HiptahClient, tmp_path: Path, fmt: str
) -> None:
    cdn.script("GET", f"/models/gen_1.{fmt}", Reply(200, MODELS[fmt]))
    progress: list[tuple[int, int | None]] = []
    path = client.download(completed(cdn.url(f"/models/gen_1.{fmt}"), fmt=fmt), tmp_path, on_progress=lambda d, t: progress.append((d, t)))
    assert path == tmp_path / f"gen_1.{fmt}"
    assert path.read_bytes() == MODELS[fmt]
    assert only_file(tmp_path) == [f"gen_1.{fmt}"]  # no .part left behind
    assert progress[-1] == (len(MODELS[fmt]), len(MODELS[fmt]))
    (req,) = cdn.requests
    assert "authorization" not in req.headers
    assert req.headers.get("accept-encoding") == "identity"


def test_large_file_streams_in_chunks_with_progress(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    data = glb_bytes(padding=3 * 1024 * 1024)
    cdn.script("GET", "/m.glb", Reply(200, data))
    progress: list[tuple[int, int | None]] = []
    client.download(completed(cdn.url("/m.glb")), tmp_path, on_progress=lambda d, t: progress.append((d, t)))
    assert len(progress) >= 3
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert progress[-1] == (len(data), len(data))


def test_chunked_download_reports_unknown_total(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.script("GET", "/m.stl", Reply(200, stl_bytes(5000), chunked=True))
    progress: list[tuple[int, int | None]] = []
    client.download(completed(cdn.url("/m.stl")), tmp_path, on_progress=lambda d, t: progress.append((d, t)))
    assert progress[-1] == (84 + 50 * 5000, None)


def test_format_comes_from_job_then_url_then_glb(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.script("GET", "/a/model.STL", Reply(200, MODELS["stl"]))
    assert client.download(completed(cdn.url("/a/model.STL")), tmp_path).name == "gen_1.stl"
    cdn.script("GET", "/signed", Reply(200, MODELS["glb"]))
    assert client.download(completed(cdn.url("/signed?sig=abc")), tmp_path).name == "gen_1.glb"
    cdn.script("GET", "/x.glb", Reply(200, MODELS["fbx"]))
    assert client.download(completed(cdn.url("/x.glb"), fmt="fbx"), tmp_path).name == "gen_1.fbx"


def test_existing_file_is_replaced_and_stale_part_ignored(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    (tmp_path / "gen_1.glb").write_bytes(b"old")
    (tmp_path / ".gen_1.glb.part").write_bytes(b"left over from a crash")
    cdn.script("GET", "/m.glb", Reply(200, MODELS["glb"]))
    path = client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert path.read_bytes() == MODELS["glb"]
    assert only_file(tmp_path) == ["gen_1.glb"]


def test_dest_dir_is_created(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.script("GET", "/m.glb", Reply(200, MODELS["glb"]))
    assert client.download(completed(cdn.url("/m.glb")), tmp_path / "a" / "b").parent == tmp_path / "a" / "b"


# --- where the key goes ----------------------------------------------------------------------


def test_model_on_the_api_origin_gets_the_key_but_a_redirect_to_the_cdn_does_not(
    api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path
) -> None:
    api.script("GET", "/v1/files/gen_1.glb", Reply.redirect(cdn.url("/signed/gen_1.glb"), 302))
    cdn.script("GET", "/signed/gen_1.glb", Reply(200, MODELS["glb"]))
    client.download(completed(api.url("/v1/files/gen_1.glb")), tmp_path)
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in cdn.requests[0].headers


def test_cdn_redirects_are_followed_without_auth(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    with ScriptedServer("127.0.0.3") as mirror:
        cdn.script("GET", "/m.glb", Reply.redirect(mirror.url("/mirror/m.glb"), 307))
        mirror.script("GET", "/mirror/m.glb", Reply.redirect("/final.glb", 301))
        mirror.script("GET", "/final.glb", Reply(200, MODELS["glb"]))
        client.download(completed(cdn.url("/m.glb")), tmp_path)
        assert [r.path for r in mirror.requests] == ["/mirror/m.glb", "/final.glb"]
        assert all("authorization" not in r.headers for r in [*cdn.requests, *mirror.requests])


def test_cdn_redirect_back_to_the_api_carries_the_key_only_there(
    api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path
) -> None:
    cdn.script("GET", "/m.glb", Reply.redirect(api.url("/v1/files/m.glb"), 302))
    api.script("GET", "/v1/files/m.glb", Reply(200, MODELS["glb"]))
    client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert "authorization" not in cdn.requests[0].headers
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_insecure_model_urls_are_refused(client: HiptahClient, tmp_path: Path) -> None:
    for url in ("http://cdn.hiptah.com/m.glb", "ftp://127.0.0.1/m.glb", "file:///etc/passwd"):
        with pytest.raises(errors.DownloadError, match="https"):
            client.download(completed(url), tmp_path)
    assert only_file(tmp_path) == []


def test_redirect_loop_on_the_cdn_is_bounded(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.default("GET", "/m.glb", Reply.redirect("/m.glb", 302))
    with pytest.raises(errors.DownloadError, match="redirected more than"):
        client.download(completed(cdn.url("/m.glb")), tmp_path)


# --- refusals: nothing is ever left on disk --------------------------------------------------


def test_content_length_over_the_cap_is_refused_before_reading(
    cdn: ScriptedServer, client: HiptahClient, tmp_path: Path
) -> None:
    cdn.script("GET", "/m.glb", Reply(200, glb_bytes(padding=20000)))
    with pytest.raises(errors.DownloadError, match="over the"):
        client.download(completed(cdn.url("/m.glb")), tmp_path, max_bytes=10000)
    assert only_file(tmp_path) == []


def test_streaming_over_the_cap_is_aborted(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.script("GET", "/m.stl", Reply(200, stl_bytes(50000), chunked=True, chunk_size=8192))
    with pytest.raises(errors.DownloadError, match="larger than"):
        client.download(completed(cdn.url("/m.stl")), tmp_path, max_bytes=100000)
    assert only_file(tmp_path) == []


def test_truncated_download_is_discarded(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    data = glb_bytes(padding=100000)
    cdn.script("GET", "/m.glb", Reply(200, data[:5000], action="truncate", declared_length=len(data)))
    with pytest.raises(errors.DownloadError, match=r"interrupted|truncated"):
        client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert only_file(tmp_path) == []


def test_truncated_chunked_download_fails_the_structure_check(
    cdn: ScriptedServer, client: HiptahClient, tmp_path: Path
) -> None:
    data = glb_bytes(padding=100000)
    cdn.script("GET", "/m.glb", Reply(200, data[:5000], chunked=True))  # no length to compare
    with pytest.raises(errors.DownloadError, match="corrupt"):
        client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert only_file(tmp_path) == []


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("glb", b"<!DOCTYPE html><html><body>Access denied</body></html>" * 3),
        ("glb", b'{"error": "expired"}'),
        ("fbx", MODELS["glb"]),
        ("usdz", zip_bytes(["readme.txt"])),
        ("3mf", zip_bytes(["3D/other.txt"])),
        ("3mf", b"PK\x03\x04" + b"\x00" * 300),
        ("stl", stl_bytes(10)[:-7]),
        ("stl", b"<html>" + b" " * 200),
    ],
)
def test_corrupt_files_are_refused(
    cdn: ScriptedServer, client: HiptahClient, tmp_path: Path, fmt: str, body: bytes
) -> None:
    cdn.script("GET", f"/m.{fmt}", Reply(200, body))
    with pytest.raises(errors.DownloadError, match="corrupt") as info:
        client.download(completed(cdn.url(f"/m.{fmt}"), fmt=fmt), tmp_path)
    assert not isinstance(info.value, errors.StorageError)
    assert only_file(tmp_path) == []


def test_disk_errors_become_storage_errors(
    cdn: ScriptedServer, client: HiptahClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cdn.default("GET", "/m.glb", Reply(200, MODELS["glb"]))

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl.os, "fsync", full_disk)
    with pytest.raises(errors.StorageError, match="full"):
        client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert only_file(tmp_path) == []
    monkeypatch.undo()

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(errors.StorageError):
        client.download(completed(cdn.url("/m.glb")), not_a_dir / "sub")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_folder_is_a_storage_error(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.default("GET", "/m.glb", Reply(200, MODELS["glb"]))
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(errors.StorageError, match="not writable"):
            client.download(completed(cdn.url("/m.glb")), folder)
    finally:
        folder.chmod(0o700)


# --- expired links -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_link_is_refreshed_once(
    api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path, status: int
) -> None:
    cdn.script("GET", "/old.glb", Reply.text(status, "<Error>AccessDenied</Error>", "application/xml"))
    cdn.script("GET", "/new.glb", Reply(200, MODELS["glb"]))
    api.script("GET", "/v1/job/gen_1", Reply.json(200, {"job_id": "gen_1", "status": "completed", "model_url": cdn.url("/new.glb")}))
    path = client.download(completed(cdn.url("/old.glb")), tmp_path)
    assert path.read_bytes() == MODELS["glb"]
    assert len(api.requests) == 1


def test_expired_twice_gives_up(api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.default("GET", "/m.glb", Reply(410))
    api.default("GET", "/v1/job/gen_1", Reply.json(200, {"job_id": "gen_1", "status": "completed", "model_url": cdn.url("/m.glb")}))
    with pytest.raises(errors.DownloadError, match="expired") as info:
        client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert info.value.status == 410
    assert len(api.requests) == 1 and len(cdn.requests) == 2
    assert only_file(tmp_path) == []


def test_other_cdn_errors_are_not_refreshed(api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.default("GET", "/m.glb", Reply(500))
    with pytest.raises(errors.DownloadError) as info:
        client.download(completed(cdn.url("/m.glb")), tmp_path)
    assert info.value.status == 500 and api.requests == []


def test_missing_model_url_asks_the_server_once(api: ScriptedServer, cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    api.script("GET", "/v1/job/gen_1", Reply.json(200, {"job_id": "gen_1", "status": "completed", "model_url": cdn.url("/m.glb")}))
    cdn.script("GET", "/m.glb", Reply(200, MODELS["glb"]))
    assert client.download(Job(job_id="gen_1", status="completed"), tmp_path).exists()
    api.script("GET", "/v1/job/gen_1", Reply.json(200, {"job_id": "gen_1", "status": "processing"}))
    with pytest.raises(errors.DownloadError, match="no model URL"):
        client.download(Job(job_id="gen_1", status="completed"), tmp_path / "2")


# --- names never escape dest_dir --------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["../../etc/passwd", "..", "/abs/path", "a\\b", ".hidden", "ok id ü", "\x00x"])
def test_server_job_ids_are_sanitised(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path, job_id: str) -> None:
    cdn.script("GET", "/m.glb", Reply(200, MODELS["glb"]))
    dest = tmp_path / "dest"
    path = client.download(completed(cdn.url("/m.glb"), job_id=job_id), dest)
    assert path.parent == dest
    assert not path.name.startswith(".")
    assert "/" not in path.name and "\\" not in path.name
    assert only_file(tmp_path) == ["dest"]


@pytest.mark.parametrize("name", ["../x.glb", "a/b.glb", "..", ".", ".x.glb", "", "c:\\x.glb"])
def test_unsafe_explicit_file_names_are_refused(client: HiptahClient, tmp_path: Path, name: str) -> None:
    with pytest.raises(errors.DownloadError, match="not allowed"):
        client.download(completed("http://127.0.0.2:1/m.glb"), tmp_path, filename=name)


def test_explicit_file_name(cdn: ScriptedServer, client: HiptahClient, tmp_path: Path) -> None:
    cdn.script("GET", "/m.glb", Reply(200, MODELS["glb"]))
    assert client.download(completed(cdn.url("/m.glb")), tmp_path, filename="cart.glb").name == "cart.glb"


def test_pick_format_and_safe_filename() -> None:
    assert dl.pick_format(None, "https://x/y/model.3MF?sig=1") == "3mf"
    assert dl.pick_format("weird", "https://x/y/model.bin") == "glb"
    assert dl.pick_format(" USDZ ", None) == "usdz"
    assert dl.safe_filename("...") == "model"
    assert len(dl.safe_filename("x" * 1000)) == 120
