"""Property-based tests: local validation, and parsing of any body a server could send."""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiptah_blender.client import errors
from hiptah_blender.client.http import HiptahClient, parse_error_body
from hiptah_blender.client.models import GenerateRequest, GenerateResponse, Job
from hiptah_blender.client.validation import MAX_PROMPT_CHARS, clean_prompt, prompt_problem
from tests.unit.scripted_server import Recorded, Reply, ScriptedServer

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
# Objects shaped like our answers, with random values, so validation is exercised deeply.
field_names = st.sampled_from(["job_id", "status", "model_url", "expires_at", "progress", "error",
                               "estimated_time_seconds", "format", "message", "detail", "code", "x"])
answer_like = st.dictionaries(field_names, json_values, max_size=8)
bodies = st.one_of(
    answer_like.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    answer_like.map(lambda d: json.dumps(d).encode()).flatmap(
        lambda raw: st.integers(0, max(0, len(raw) - 1)).map(lambda n: raw[:n])),  # truncated JSON
    st.text(max_size=100).map(lambda t: f"<html><body>{t}</body></html>".encode()),
)


# --- prompt validation ------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=600))
def test_prompt_validation_is_consistent(text: str) -> None:
    problem = prompt_problem(text)
    try:
        cleaned = clean_prompt(text)
    except errors.InvalidPromptError as exc:
        assert problem is not None and problem in exc.message
        return
    assert problem is None
    assert cleaned == text.strip() and 1 <= len(cleaned) <= MAX_PROMPT_CHARS
    assert "<script" not in cleaned.lower()


@SETTINGS
@given(st.text(alphabet=string.ascii_letters + " ,.-'", min_size=1, max_size=MAX_PROMPT_CHARS).filter(str.strip))
def test_plain_prompts_are_accepted(text: str) -> None:
    assert GenerateRequest(prompt=text).prompt == text.strip()


@SETTINGS
@given(st.text(max_size=40), st.sampled_from(["a", "b", "p", "div", "script", "img src=x", "!--"]))
def test_tags_are_refused_anywhere(text: str, tag: str) -> None:
    closing = "-->" if tag == "!--" else ">"
    with pytest.raises(errors.InvalidPromptError):
        GenerateRequest(prompt=f"{text}<{tag}{closing}{text}")


@SETTINGS
@given(st.dictionaries(st.sampled_from(["prompt", "format", "quality", "callback_url", "image", "other"]),
                       json_values, max_size=6))
def test_request_building_raises_only_our_errors_or_validation_errors(data: dict[str, Any]) -> None:
    from pydantic import ValidationError

    # Anything else (TypeError, AttributeError, ...) fails the test.
    with contextlib.suppress(errors.HiptahError, ValidationError):
        GenerateRequest.model_validate(data)


# --- response parsing over real HTTP ------------------------------------------------------


class Holder:
    status = 200
    body = b""


@pytest.fixture(scope="module")
def echo_server() -> Iterator[tuple[ScriptedServer, Holder]]:
    holder = Holder()

    def respond(_: Recorded) -> Reply:
        return Reply(holder.status, holder.body, headers={"Content-Type": "application/json"})

    with ScriptedServer() as server:
        server.default("GET", "/v1/job/j", respond)
        server.default("POST", "/v1/generate", respond)
        yield server, holder


@SETTINGS
@given(body=bodies)
def test_any_2xx_body_is_a_job_or_unexpected_response(echo_server: tuple[ScriptedServer, Holder], body: bytes) -> None:
    server, holder = echo_server
    holder.status, holder.body = 200, body
    client = HiptahClient("sk_prop_0123456789", server.base_url, max_retries=0)
    try:
        job = client.get_job("j")
    except errors.UnexpectedResponseError:
        return
    assert isinstance(job, Job) and job.job_id.strip()
    try:
        submitted = client.generate(GenerateRequest(prompt="a cube"))
    except errors.UnexpectedResponseError:
        return
    assert isinstance(submitted, GenerateResponse)


@SETTINGS
@given(status=st.integers(400, 599), body=bodies)
def test_any_error_answer_maps_to_our_error(
    echo_server: tuple[ScriptedServer, Holder], status: int, body: bytes
) -> None:
    server, holder = echo_server
    holder.status, holder.body = status, body
    client = HiptahClient("sk_prop_0123456789", server.base_url, max_retries=0)
    with pytest.raises(errors.HiptahError) as info:
        client.get_job("j")
    err = info.value
    assert err.status == status
    assert isinstance(err, errors.error_for_status(status)) or err.code  # refined by the code
    assert err.server_message is None or len(err.server_message) <= 200
    str(err), repr(err), err.user_text()


@SETTINGS
@given(st.binary(max_size=300), st.text(max_size=30))
def test_parse_error_body_never_raises(body: bytes, content_type: str) -> None:
    message, code = parse_error_body(body, content_type)
    assert message is None or isinstance(message, str)
    assert code is None or isinstance(code, str)


# --- the key never shows ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(key=st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=12, max_size=60),
       status=st.sampled_from([400, 401, 403, 404, 422, 429, 500, 503, 200]))
def test_no_error_ever_contains_the_key(key: str, status: int) -> None:
    def leak(req: Recorded) -> Reply:
        auth = req.headers.get("authorization", "")
        return Reply.json(status, {"error": {"code": auth, "message": f"you sent {auth}"}, "job_id": 5,
                                   "detail": auth}, headers={"X-Request-Id": auth[-20:]})

    with ScriptedServer() as server:
        server.default("GET", "/v1/job/j", leak)
        client = HiptahClient(key, server.base_url, max_retries=0)
        with pytest.raises(errors.HiptahError) as info:
            client.get_job("j")
    err = info.value
    for text in (str(err), repr(err), err.user_text(), err.message, err.server_message or "", err.code or "",
                 err.request_id or "", repr(client)):
        assert key not in text
