"""Security guarantees, each proved end to end (docs/reliability.md lists them).

- the API key is in no log, report, exception, job store, temporary/downloaded file or
  saved .blend, and never reaches a host other than the API's (CDN, redirects);
- TLS verification is always on; a CA bundle (parameter, environment, add-on
  preference) is how a corporate CA is trusted; system proxies are honoured;
- server-chosen names (job ids, URLs, archive members) never escape the download folder;
- any status x body x headers from a server gives a model or one of our errors.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import socket
import threading
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from hiptah_blender.client.magic import file_problem
from hiptah_blender.client.models import GenerateResponse, Job
from hiptah_blender.formats.threemf import ThreeMFError, read_3mf
from hiptah_blender.jobs.records import JobState
from sandbox.fakemodels import generate_model
from sandbox.harness import SandboxServer
from tests.reliability.harness.flow import FAST, Flow
from tests.unit.scripted_server import Reply, ScriptedServer

bpy: Any
try:  # the Blender half needs the bpy module; the client half does not
    import bpy as _bpy

    from tests.blender.conftest import Addon, addon, no_env  # noqa: F401  (fixtures)

    bpy = _bpy
except (ImportError, pytest.skip.Exception):
    bpy = None

blender = pytest.mark.skipif(bpy is None, reason="needs the bpy module")


def _texts_of(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, errors.HiptahError):
        texts += [exc.user_text(), exc.server_message or "", exc.code or "", exc.request_id or ""]
    return texts


def _files_containing(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


# ------------------------------------------------------------------------------ the key


def test_api_key_leaks_nowhere_in_a_faulty_flow(
    fault_sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sb = fault_sandbox
    key = sb.api_key
    caplog.set_level(logging.DEBUG)  # every logger: ours, requests', urllib3's
    sb.reset()
    sb.set_faults(latency=0.3, fault_rate=0.2, drop_rate=0.15, rate_limit_rate=0.1,
                  truncate_rate=0.2, corrupt_rate=0.1, fail_rate=0.2)
    flow = Flow(key, sb.base_url, tmp_path / "flow", FAST)
    flow.submit(6, "leak")
    flow.run(60.0)
    flow.close()
    records = flow.records()
    assert any(r.state is JobState.FAILED for r in records), "the faults should fail some jobs"
    assert any(r.state is JobState.DOWNLOADED for r in records)

    texts: list[str] = [caplog.text]
    for record in records:
        texts += [repr(record), str(record.to_dict())]
        if record.error is not None:
            texts.append(record.error.user_text())
    client = HiptahClient(key, sb.base_url, max_retries=0)
    texts.append(repr(client))
    sb.set_faults(fault_rate=0, drop_rate=0, rate_limit_rate=0)
    for call in (lambda: client.get_job("gen_unknown"), lambda: client.get_job("."),
                 lambda: client.generate({"prompt": "<b>x</b>"}),
                 lambda: HiptahClient(key, "ftp://h/v1")):
        with pytest.raises(errors.HiptahError) as info:
            call()
        texts += _texts_of(info.value)
    sb.keys(revoke=[key])  # the server refusing the key itself
    with pytest.raises(errors.AuthenticationError) as refused:
        client.get_job("gen_unknown")
    texts += _texts_of(refused.value)

    assert all(key not in text for text in texts)
    assert _files_containing(tmp_path, key.encode()) == []  # store, models, temporary files
    state = sb.state()
    api_host = sb.base_url.split("/")[2]
    assert {e["host"] for e in state["requests"] if e["had_auth"]} == {api_host}
    assert state["cdn"] and not any(e["had_auth"] for e in state["cdn"])


def test_redirects_to_another_host_never_carry_the_key(tmp_path: Path) -> None:
    key = "sk_redirect_0123456789"
    with ScriptedServer("127.0.0.1") as api, ScriptedServer("127.0.0.2") as other:
        other.default("GET", "/v1/job/j", Reply.json(200, {"job_id": "j", "status": "queued"}))
        other.default("GET", "/models/m.glb", Reply(200, generate_model("a", "glb", "draft")))
        api.default("GET", "/v1/job/j", Reply.redirect(other.url("/v1/job/j"), 302))
        api.default("POST", "/v1/generate", Reply.redirect(other.url("/v1/generate"), 307))
        api.default("GET", "/files/m.glb", Reply.redirect(other.url("/models/m.glb"), 302))
        client = HiptahClient(key, api.base_url, max_retries=0)
        with pytest.raises(errors.UnexpectedResponseError, match="not the configured API host"):
            client.get_job("j")
        with pytest.raises(errors.UnexpectedResponseError, match="not the configured API host"):
            client.generate({"prompt": "a crate"})
        assert other.requests == []  # API calls are not followed off the API's origin at all
        # A model URL on the API's origin that redirects to a CDN: the key stops at the API hop.
        job = Job(job_id="j", status="completed", model_url=api.url("/files/m.glb"), format="glb")
        path = client.download(job, tmp_path)
        assert file_problem("glb", path) is None
        assert api.requests_to("/files/m.glb")[0].headers.get("authorization") == f"Bearer {key}"
        assert [r.headers.get("authorization") for r in other.requests] == [None]


@blender
@pytest.mark.blender
def test_api_key_not_in_blend_store_reports_or_logs_in_blender(
    addon: Any, no_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = addon.sandbox.api_key
    addon.prefs.api_key = key
    addon.prefs.base_url = addon.sandbox.base_url
    assert bpy.ops.hiptah.generate(prompt="a brass key", wait=True) == {"FINISHED"}
    addon.sandbox.set_faults(fail_rate=1.0)
    with pytest.raises(RuntimeError) as failed:  # an ERROR report
        bpy.ops.hiptah.generate(prompt="a clay pot", wait=True)
    rt = addon.rt()
    rt.scheduler.flush()
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
    data = blend.read_bytes()
    assert b"a brass key" in data and key.encode() not in data
    user_folder = Path(addon.runtime.store_path()).parent
    assert _files_containing(user_folder, key.encode()) == []  # jobs.json, models
    assert all(key not in text for _level, text in addon.reports())
    assert key not in caplog.text and key not in str(failed.value)
    assert key not in repr(rt.settings)


# ------------------------------------------------------------------------- TLS, proxies


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_sandbox(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, str]]:
    folder = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost", "api.hiptah.test")
    cert_pem, key_pem, ca_pem = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = SandboxServer(tls_cert=str(cert_pem), tls_key=str(key_pem), ca_bundle=str(ca_pem),
                           latency=0.2, models="fake")
    try:
        yield server.start(), str(ca_pem)
    finally:
        server.stop()


@pytest.fixture
def clean_tls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy",
                 "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_tls_is_verified_and_an_unknown_ca_is_refused(tls_sandbox: tuple[SandboxServer, str],
                                                      clean_tls_env: None) -> None:
    sb, _ca = tls_sandbox
    sb.reset()
    client = HiptahClient(sb.api_key, sb.base_url, max_retries=0)
    with pytest.raises(errors.TLSError) as info:
        client.generate({"prompt": "a wooden crate"})
    err = info.value
    assert "could not be verified" in err.message and "certificate" in err.message.lower()
    assert "CA bundle" in err.hint and "never turned off" in err.hint
    assert not errors.is_retryable(err)
    assert sb.requests_log() == [] and sb.jobs() == []  # nothing got through, no key sent


@pytest.mark.parametrize("how", ["parameter", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_tls_works_with_the_ca_bundle(how: str, tls_sandbox: tuple[SandboxServer, str], clean_tls_env: None,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb, ca_pem = tls_sandbox
    sb.reset()
    if how != "parameter":
        monkeypatch.setenv(how, ca_pem)
    flow = Flow(sb.api_key, sb.base_url, tmp_path, FAST, ca_bundle=ca_pem if how == "parameter" else None)
    (local_id,) = flow.submit(1, "tls")
    flow.run(30.0)
    flow.close()
    record = flow.scheduler.get(local_id)
    assert record is not None
    assert record.state is JobState.DOWNLOADED, record.error
    assert sb.cdn_log()[0]["status"] == 200  # the CDN over https too


@blender
@pytest.mark.blender
def test_blender_ca_bundle_preference(addon: Any, tls_sandbox: tuple[SandboxServer, str], clean_tls_env: None,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sb, ca_pem = tls_sandbox
    sb.reset()
    monkeypatch.setenv("HIPTAH_API_KEY", sb.api_key)
    monkeypatch.setenv("HIPTAH_BASE_URL", sb.base_url)
    with pytest.raises(RuntimeError, match="certificate"):
        bpy.ops.hiptah.generate(prompt="a wooden crate", wait=True)
    assert sb.jobs() == []
    addon.prefs.ca_bundle = ca_pem
    assert bpy.ops.hiptah.generate(prompt="a wooden crate", wait=True) == {"FINISHED"}, addon.last_report()
    assert len(sb.jobs()) == 1


class _SocketServer:
    """A raw TCP server on loopback: one thread per connection runs ``_serve``."""

    def __init__(self, host: str) -> None:
        self._sock = socket.create_server((host, 0))
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @staticmethod
    def read_head(conn: socket.socket) -> bytes | None:
        """Bytes up to and including the blank line after the headers (and whatever came
        with them), or None when the peer closed first."""
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            head += chunk
        return head

    def close(self) -> None:
        self._sock.close()


class ConnectProxy(_SocketServer):
    """A tiny HTTPS proxy on loopback: answers CONNECT host:port by tunnelling to
    ``route(host, port)``. Lets a test use a host name that resolves nowhere while
    all traffic stays on this machine."""

    def __init__(self, route: Callable[[str, int], tuple[str, int]], host: str = "127.0.0.3") -> None:
        self.route = route
        self.connects: list[str] = []
        super().__init__(host)
        self.url = f"http://{self.address}"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = self.read_head(conn)
            if head is None:
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = line.split(" ", 2)
            self.connects.append(line)
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Only CONNECT\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            with socket.create_connection(self.route(host, int(port)), timeout=10) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pair = {conn: upstream, upstream: conn}
                while True:
                    ready, _, _ = select.select(list(pair), [], [], 10)
                    if not ready:
                        return
                    for src in ready:
                        try:
                            data = src.recv(65536)
                            if data:
                                pair[src].sendall(data)
                        except OSError:  # a peer reset the tunnel: it is over, like EOF
                            data = b""
                        if not data:
                            return


def test_system_https_proxy_is_used(tls_sandbox: tuple[SandboxServer, str], clean_tls_env: None,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb, ca_pem = tls_sandbox
    sb.reset()
    port = int(sb.base_url.rsplit(":", 1)[1].split("/")[0])
    name_url = f"https://api.hiptah.test:{port}/v1"  # resolves nowhere: only the proxy can reach it
    with pytest.raises(errors.APIConnectionError):
        HiptahClient(sb.api_key, name_url, max_retries=0, ca_bundle=ca_pem).get_job("gen_x")
    proxy = ConnectProxy(lambda host, p: ("127.0.0.1", p) if host == "api.hiptah.test" else (host, p))
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        flow = Flow(sb.api_key, name_url, tmp_path, FAST, ca_bundle=ca_pem)
        (local_id,) = flow.submit(1, "proxy")
        flow.run(30.0)
        flow.close()
    finally:
        proxy.close()
    record = flow.scheduler.get(local_id)
    assert record is not None
    assert record.state is JobState.DOWNLOADED, record.error
    assert proxy.connects and {c.rsplit(" ", 1)[0] for c in proxy.connects} == {f"CONNECT api.hiptah.test:{port}"}
    assert len(sb.jobs()) == 1
    assert sb.cdn_log()  # the CDN (loopback) is reached directly, as loopback always is


# ------------------------------------------------------------- server-chosen names


@pytest.mark.parametrize("model_path", ["/models/..%2F..%2Fevil.glb", "/models/../../evil.glb",
                                        "/a/b/c/.hidden.glb"])
def test_model_url_paths_never_choose_the_file_name(model_path: str, tmp_path: Path) -> None:
    with ScriptedServer("127.0.0.2") as cdn:
        body = generate_model("a", "glb", "draft")
        cdn.default("GET", model_path, Reply(200, body))
        cdn.default("GET", "/evil.glb", Reply(200, body))  # where "../.." would land
        client = HiptahClient("sk_names_0123456789", "http://127.0.0.1:9/v1")
        job = Job(job_id="gen_ok", status="completed", model_url=cdn.url(model_path), format="glb")
        path = client.download(job, tmp_path / "models")
    assert path == tmp_path / "models" / "gen_ok.glb"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gen_ok.glb", "models"]


def _hostile_archive(path: Path, base: bytes) -> None:
    """A valid 3MF/USDZ plus members whose names try to leave any extraction folder."""
    with zipfile.ZipFile(path, "w") as out:
        with zipfile.ZipFile(io.BytesIO(base)) as src:
            for info in src.infolist():
                out.writestr(info, src.read(info.filename))
        for name in ("../../evil_rel.txt", "/tmp/evil_abs.txt", "3D/../../../evil_mid.model", "C:\\evil_win.txt"):
            out.writestr(name, b"evil")


def _evil_files(*roots: Path) -> list[str]:
    # os.walk skips folders that vanish while it looks (other tests and lanes share /tmp);
    # Path.glob raised FileNotFoundError on them.
    found: list[str] = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            found += [os.path.join(folder, n) for n in files if n.startswith("evil_")]
    return found


@pytest.mark.parametrize("fmt", ["3mf", "usdz"])
def test_archive_members_never_leave_the_folder(fmt: str, tmp_path: Path) -> None:
    work = tmp_path / "models"
    work.mkdir()
    path = work / f"model.{fmt}"
    _hostile_archive(path, generate_model("a crate", fmt, "draft"))
    assert file_problem(fmt, path) is None  # the checks read the zip directory, extract nothing
    if fmt == "3mf":
        # The 3MF reader works in memory and refuses such names outright.
        with pytest.raises(ThreeMFError, match="unsafe path"):
            read_3mf(path)
    roots = [tmp_path, Path("/tmp"), Path.cwd()]
    assert _evil_files(*roots) == []


@blender
@pytest.mark.blender
def test_usdz_import_extracts_nothing(addon: Any, tmp_path: Path) -> None:
    """Blender's USD importer packs textures into the .blend by default (no files written);
    hostile member names in the archive are never extracted."""
    props = bpy.ops.wm.usd_import.get_rna_type().properties
    assert props["import_textures_mode"].default == "IMPORT_PACK"
    path = tmp_path / "model.usdz"
    _hostile_archive(path, generate_model("a crate", "usdz", "draft"))
    bpy.ops.wm.usd_import(filepath=str(path))
    assert _evil_files(tmp_path, Path("/tmp"), Path.cwd()) == []


# ------------------------------------------------------------------------------ fuzzing


class RawServer(_SocketServer):
    """Answers every request with the raw bytes in ``reply`` (status line, headers, body)
    and closes: the client parses exactly what a hostile server could send."""

    def __init__(self) -> None:
        self.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        super().__init__("127.0.0.1")
        self.base_url = f"http://{self.address}/v1"

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = self.read_head(conn)
                if head is None:
                    return
                header, _, rest = head.partition(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(self.reply)
            except OSError:
                pass


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
hostile_headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Retry-After", "Location", "Content-Length", "Content-Encoding",
                     "Transfer-Encoding", "X-Request-Id", "Request-Id"]),
    st.one_of(
        header_text,
        st.sampled_from(["application/json", "text/html", "gzip", "deflate", "br", "chunked", "identity",
                         "-1", "1e9", "nan", "inf", "99999999999999999999", "0",
                         "Wed, 21 Oct 2015 07:28:00 GMT", "http://127.0.0.2:1/v1/job/j", "/v1/job/j",
                         "//127.0.0.2:1/x", "https://[::1", "javascript:alert(1)"]),
    ),
    max_size=5,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15,
)
hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["job_id", "status", "model_url", "format", "progress", "error",
                                     "estimated_time_seconds", "expires_at"]), json_values, max_size=8)
    .map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"job_id": "' + b"\\ud800" + b'"}', b'{"job_id": 1e999}',
                     b'{"job_id": "j", "status": "completed", "model_url": "file:///etc/passwd"}',
                     b'{"job_id": "j", "status": "completed", "model_url": "http://10.0.0.1/x.glb"}',
                     b"<html><title>" + b"x" * 10000 + b"</title>", b"\x1f\x8b\x08\x00garbage"]),
)


def _raw_reply(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    if "Content-Length" not in headers and headers.get("Transfer-Encoding") != "chunked":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.integers(100, 599) | st.sampled_from([200, 201, 301, 302, 307, 404, 429, 500, 503]),
       headers=hostile_headers, body=hostile_bodies)
def test_any_answer_is_a_model_or_our_error(raw_server: RawServer, tmp_path: Path, status: int,
                                            headers: dict[str, str], body: bytes) -> None:
    raw_server.reply = _raw_reply(status, headers, body)
    client = HiptahClient("sk_fuzz_0123456789", raw_server.base_url, timeout=2.0, max_retries=1,
                          sleep=lambda _s: None)
    calls: list[tuple[Callable[[], Any], type]] = [
        (lambda: client.get_job("j"), Job),
        (lambda: client.generate({"prompt": "a crate"}), GenerateResponse),
        (lambda: client.download(Job(job_id="j", status="completed", format="glb",
                                      model_url=raw_server.base_url + "/m.glb"), tmp_path / "dl"), Path),
    ]
    for call, expected in calls:
        try:
            result = call()
        except errors.HiptahError as exc:
            exc.user_text(), str(exc), repr(exc)  # must not raise either
        else:
            assert isinstance(result, expected)
    leftovers = [p.name for p in (tmp_path / "dl").glob(".*.part")] if (tmp_path / "dl").exists() else []
    assert leftovers == []
    client.close()


@pytest.mark.parametrize("location", ["A://[", "https://[::1", "http://127.0.0.1:99999/x"])
def test_malformed_redirect_location_is_our_error(raw_server: RawServer, tmp_path: Path, location: str) -> None:
    """Regression (found by the fuzz test): requests parses a redirect's Location even when
    not following it, and a malformed one raised a bare ValueError out of the client."""
    raw_server.reply = _raw_reply(301, {"Location": location}, b"")
    client = HiptahClient("sk_fuzz_0123456789", raw_server.base_url, max_retries=0)
    with pytest.raises(errors.UnexpectedResponseError):
        client.get_job("j")
    job = Job(job_id="j", status="completed", format="glb", model_url=raw_server.base_url + "/m.glb")
    with pytest.raises(errors.DownloadError):
        client.download(job, tmp_path)


def test_fuzz_server_sees_requests(raw_server: RawServer) -> None:
    """The fuzz target is real HTTP: a plain answer parses into a Job."""
    raw_server.reply = _raw_reply(200, {"Content-Type": "application/json"}, b'{"job_id": "j", "status": "queued"}')
    assert HiptahClient("sk_fuzz_0123456789", raw_server.base_url).get_job("j").status.value == "queued"
