"""The sandbox's parts in-process: config, faults, fake models, padded GLB, generator thread."""

from __future__ import annotations

import struct
import threading
import zipfile
from io import BytesIO

import pytest

from sandbox.cdn import padded_glb_head
from sandbox.config import SandboxConfig, config_from_args
from sandbox.fakemodels import generate_model as fake_model
from sandbox.faults import FaultInjector
from sandbox.generator import ModelGenerator


def test_config_from_args_and_validation():
    cfg = config_from_args(
        [
            "--port",
            "0",
            "--fault-rate",
            "0.25",
            "--extra-key",
            "a",
            "--extra-key",
            "b",
            "--latency",
            "0",
            "--fake-models",
        ]
    )
    assert cfg.port == 0 and cfg.fault_rate == 0.25 and cfg.extra_key == ["a", "b"]
    assert cfg.latency == 0 and cfg.models == "fake" and cfg.api_key.startswith("hp_sandbox_")
    assert SandboxConfig().latency is None and SandboxConfig().cdn_host == "127.0.0.2"
    with pytest.raises(SystemExit):
        config_from_args(["--fault-rate", "1.5"])
    for bad in ({"host": "10.0.0.1"}, {"plan": "gold"}, {"tls_cert": "x.pem"}, {"fail_rate": 2.0}):
        with pytest.raises(ValueError):
            SandboxConfig(**bad)


def test_fault_draws_follow_the_rates():
    inj = FaultInjector(SandboxConfig(fault_rate=0.2, rate_limit_rate=0.3, drop_rate=0.1, seed=3))
    kinds = [inj.draw_api().kind for _ in range(4000)]
    assert abs(kinds.count("error") / 4000 - 0.2) < 0.03
    assert abs(kinds.count("rate_limit") / 4000 - 0.3) < 0.03
    assert abs(kinds.count("drop") / 4000 - 0.1) < 0.03
    inj.reset()
    assert [inj.draw_api().kind for _ in range(4000)] == kinds
    none = FaultInjector(SandboxConfig())
    assert all(none.draw_api().kind is None and none.draw_cdn().kind is None for _ in range(100))


@pytest.mark.parametrize("fmt", ["glb", "stl", "3mf", "usdz", "fbx"])
def test_fake_models_are_deterministic_and_well_formed(fmt):
    data = fake_model("a cube", fmt, "high")
    assert data == fake_model("a cube", fmt, "high") != fake_model("a sphere", fmt, "high")
    if fmt == "glb":
        magic, version, total = struct.unpack("<4sII", data[:12])
        assert (magic, version, total) == (b"glTF", 2, len(data))
    elif fmt == "stl":
        assert len(data) == 84 + 50 * struct.unpack("<I", data[80:84])[0]
    elif fmt in ("3mf", "usdz"):
        assert zipfile.ZipFile(BytesIO(data)).testzip() is None
    else:
        assert data.startswith(b"; FBX")
    with pytest.raises(NotImplementedError):
        fake_model("a cube", "obj", "high")


def test_padded_glb_is_a_valid_glb_of_the_asked_size():
    base = fake_model("a cube", "glb", "draft")
    head, total = padded_glb_head(base, 1_000_000)
    assert 1_000_000 - 4 <= total <= 1_000_000
    assert head[:4] == b"glTF" and struct.unpack("<I", head[8:12])[0] == total
    pad_len, pad_type = struct.unpack("<I4s", head[-8:])
    assert pad_type == b"XPAD" and len(head) + pad_len == total and pad_len % 4 == 0
    with pytest.raises(ValueError):
        padded_glb_head(b"not a glb", 100)


def test_generator_runs_on_one_thread_and_caches():
    threads: set[int] = set()
    calls: list[tuple[str, str]] = []

    def gen(
        prompt: str, fmt: str, quality: str, image: bytes | None = None, seed: int = 0
    ) -> bytes:
        threads.add(threading.get_ident())
        calls.append((prompt, fmt))
        if fmt == "fbx":
            raise NotImplementedError("no fbx yet")
        return f"{prompt}.{fmt}".encode()

    models = ModelGenerator(generator=gen)
    models.start()
    try:
        futures = [models.request(f"p{i % 3}", "glb", "high", None) for i in range(9)]
        assert [f.result(5) for f in futures][:3] == [b"p0.glb", b"p1.glb", b"p2.glb"]
        assert len(calls) == 3 and len(threads) == 1 and threading.get_ident() not in threads
        with pytest.raises(NotImplementedError):
            models.request("p", "fbx", "high", None).result(5)
        a = models.request("p", "glb", "high", b"img1")
        b = models.request("p", "glb", "high", b"img2")
        assert a is not b and a is models.request("p", "glb", "high", b"img1")
    finally:
        models.stop()


def test_create_app_accepts_an_injected_generator():
    from sandbox.app import create_app

    app = create_app(SandboxConfig(models="fake"), generator=lambda *a, **k: b"glTF....")
    assert app.state.sandbox.models.kind == "injected"
    app.state.sandbox.stop()


def test_idempotency_states():
    from sandbox.faults import FaultInjector
    from sandbox.state import ApiError, SandboxState
    from sandbox.webhooks_out import WebhookSender

    cfg = SandboxConfig(api_key="key-123456789")
    sender = WebhookSender(retries=0, backoff=0, timeout=1, ca_bundle=None)
    state = SandboxState(cfg, FaultInjector(cfg), sender)
    try:
        account = state.authenticate("Bearer key-123456789")
        assert state.idempotency_begin(account, "k", "body-a") is None  # reserved
        with pytest.raises(ApiError) as busy:
            state.idempotency_begin(account, "k", "body-a")
        assert busy.value.status == 409 and busy.value.headers["Retry-After"] == "1"
        with pytest.raises(ApiError) as reused:
            state.idempotency_begin(account, "k", "body-b")
        assert reused.value.status == 422
        state.idempotency_abort(account, "k")  # the first request failed: key usable again
        assert state.idempotency_begin(account, "k", "body-b") is None
    finally:
        sender.stop()


def test_generator_reset_drops_queued_work():
    gate = threading.Event()

    def gen(
        prompt: str, fmt: str, quality: str, image: bytes | None = None, seed: int = 0
    ) -> bytes:
        gate.wait(5)
        return prompt.encode()

    models = ModelGenerator(generator=gen)
    models.start()
    try:
        running = models.request("first", "glb", "high", None)
        queued = [models.request(f"q{i}", "glb", "high", None) for i in range(5)]
        while not running.running():
            threading.Event().wait(0.01)
        assert models.cancel_pending() == 5 and all(f.cancelled() for f in queued)
        again = models.request("q0", "glb", "high", None)  # asked again: queued afresh
        gate.set()
        assert running.result(5) == b"first" and again.result(5) == b"q0"
    finally:
        models.stop()
