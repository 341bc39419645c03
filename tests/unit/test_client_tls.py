"""TLS: verification is always on; CA bundles come from the parameter or the environment."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient
from tests.unit.scripted_server import Reply, ScriptedServer

KEY = "sk_tls_0123456789abcdef"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_server(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = ScriptedServer(ssl_context=context)
    with server:
        server.default("GET", "/v1/job/j1", Reply.json(200, {"job_id": "j1", "status": "queued"}))
        yield server


def no_sleep(_: float) -> None:
    pass


def test_untrusted_certificate_is_a_tls_error_that_explains(tls_server: ScriptedServer) -> None:
    client = HiptahClient(KEY, tls_server.base_url, sleep=no_sleep)
    with pytest.raises(errors.TLSError) as info:
        client.get_job("j1")
    err = info.value
    assert "certificate" in err.message and "127.0.0.1" in err.message
    assert "CA bundle" in err.hint
    assert not errors.is_retryable(err)
    assert tls_server.requests == []  # the key never left


def test_ca_bundle_parameter(tls_server: ScriptedServer, ca_file: str) -> None:
    client = HiptahClient(KEY, tls_server.base_url, ca_bundle=ca_file)
    assert client.get_job("j1").job_id == "j1"
    assert tls_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_from_environment(
    tls_server: ScriptedServer, ca_file: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, ca_file)
    assert HiptahClient(KEY, tls_server.base_url).get_job("j1").job_id == "j1"


def test_a_session_with_verification_off_is_still_verified(tls_server: ScriptedServer) -> None:
    session = requests.Session()
    session.verify = False
    client = HiptahClient(KEY, tls_server.base_url, session=session, sleep=no_sleep)
    with pytest.raises(errors.TLSError):
        client.get_job("j1")


def test_plain_http_to_a_tls_port_is_a_connection_error(tls_server: ScriptedServer) -> None:
    client = HiptahClient(KEY, f"http://127.0.0.1:{tls_server.port}/v1", sleep=no_sleep, max_retries=0)
    with pytest.raises(errors.APIConnectionError):
        client.get_job("j1")
