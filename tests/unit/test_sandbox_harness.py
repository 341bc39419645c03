"""The harness and the CLI: start-up lines, restart on the same ports, TLS, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.harness import ROOT, SandboxError, SandboxServer, flag_args


def test_flag_args():
    assert flag_args(
        {
            "fault_rate": 0.5,
            "fake_models": True,
            "tls_cert": None,
            "x": False,
            "extra_key": ["a", "b"],
        }
    ) == ["--fault-rate", "0.5", "--fake-models", "--extra-key", "a", "--extra-key", "b"]


def test_harness_exposes_urls_and_key(sandbox):
    assert sandbox.base_url.startswith("http://127.0.0.1:") and sandbox.base_url.endswith("/v1")
    assert sandbox.cdn_url.startswith("http://127.0.0.2:")
    assert sandbox.admin_url == sandbox.base_url[: -len("/v1")] + "/_sandbox"
    assert sandbox.api_key and sandbox.generator in ("real", "fake")
    assert sandbox.running


def test_restart_keeps_ports_and_key_but_loses_jobs(make_sandbox):
    sb = make_sandbox()
    base, cdn, key = sb.base_url, sb.cdn_url, sb.api_key
    job_id = requests.post(
        f"{sb.base_url}/generate", json={"prompt": "cube"}, headers=sb.auth_headers, timeout=30
    ).json()["job_id"]
    sb.restart()
    assert (sb.base_url, sb.cdn_url, sb.api_key) == (base, cdn, key)
    resp = requests.get(f"{sb.base_url}/job/{job_id}", headers=sb.auth_headers, timeout=10)
    assert resp.status_code == 404
    assert sb.state()["jobs"] == []


def test_stopped_server_refuses_connections(make_sandbox):
    sb = make_sandbox()
    base = sb.base_url
    sb.stop()
    assert not sb.running
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base}/job/x", timeout=5)


def test_a_child_that_cannot_start_gives_a_helpful_error():
    with pytest.raises(SandboxError) as info, SandboxServer(plan="platinum"):
        pass
    assert "exited before it was ready" in str(info.value) and "platinum" in str(info.value)


def test_port_in_use_is_reported(make_sandbox):
    sb = make_sandbox()
    port = int(sb.base_url.rsplit(":", 1)[1].split("/")[0])
    # SO_REUSEADDR lets a restart rebind, but never while the other server listens.
    with pytest.raises(SandboxError, match="cannot listen"):
        SandboxServer(port=port, fake_models=True).start()


def test_non_loopback_host_is_refused():
    with pytest.raises(SandboxError, match="loopback"):
        SandboxServer(host="0.0.0.0", fake_models=True).start()


def test_tls_mode_with_trustme(make_sandbox, tmp_path: Path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "127.0.0.2", "localhost")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    sb = make_sandbox(tls_cert=str(cert_pem), tls_key=str(key_pem), ca_bundle=str(ca_pem))
    assert sb.base_url.startswith("https://127.0.0.1:") and sb.cdn_url.startswith(
        "https://127.0.0.2:"
    )
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sb.base_url}/job/x", headers=sb.auth_headers, timeout=10)
    created = requests.post(
        f"{sb.base_url}/generate",
        json={"prompt": "cube", "format": "stl"},
        headers=sb.auth_headers,
        timeout=30,
        verify=str(ca_pem),
    )
    assert created.status_code == 201
    job_id = created.json()["job_id"]
    for _ in range(100):
        job = requests.get(
            f"{sb.base_url}/job/{job_id}", headers=sb.auth_headers, timeout=10, verify=str(ca_pem)
        ).json()
        if job["status"] == "completed":
            break
    assert job["model_url"].startswith("https://127.0.0.2:")
    assert requests.get(job["model_url"], timeout=10, verify=str(ca_pem)).status_code == 200


def test_cli_prints_env_lines_then_ready_and_stops_on_sigterm(tmp_path: Path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "sandbox.py"), "--port", "0", "--fake-models"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        values = dict(line.split("=", 1) for line in lines if "=" in line)
        assert lines[:3] == [
            f"HIPTAH_BASE_URL={values['HIPTAH_BASE_URL']}",
            f"HIPTAH_API_KEY={values['HIPTAH_API_KEY']}",
            f"HIPTAH_CDN_URL={values['HIPTAH_CDN_URL']}",
        ]
        assert lines[-1] == "ready"
        key = values["HIPTAH_API_KEY"]
        resp = requests.post(
            f"{values['HIPTAH_BASE_URL']}/generate",
            json={"prompt": "cube"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert resp.status_code == 201  # the generated key works
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_help_lists_every_flag():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sandbox.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--cdn-host",
        "--cdn-port",
        "--api-key",
        "--extra-key",
        "--revoked-key",
        "--plan",
        "--quota",
        "--concurrency",
        "--latency",
        "--expire-seconds",
        "--fault-rate",
        "--rate-limit-rate",
        "--slow-rate",
        "--slow-seconds",
        "--drop-rate",
        "--truncate-rate",
        "--corrupt-rate",
        "--fail-rate",
        "--tls-cert",
        "--tls-key",
        "--seed",
        "--fake-models",
        "--state-file",
    ):
        assert flag in out
    doc = (ROOT / "docs" / "sandbox.md").read_text()
    for line in out.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") and stripped.split()[0] not in ("--help",):
            assert stripped.split()[0].rstrip(",") in doc, (
                f"{stripped.split()[0]} is not documented"
            )
