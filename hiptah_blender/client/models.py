"""pydantic v2 models for every request and response of the HiPtah API v1.

Strict about what we send (requests forbid unknown fields and validate locally,
raising this package's own error types), lenient about what we receive
(responses keep unknown fields, unknown statuses map to ``JobStatus.UNKNOWN``,
every [assumed] field is optional).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import InvalidPromptError
from .images import check_data_uri
from .validation import (
    DEFAULT_FORMAT,
    DEFAULT_QUALITY,
    clean_format,
    clean_prompt,
    clean_quality,
    is_loopback_host,
)


def clean_callback_url(url: str | None) -> str | None:
    """An https:// webhook URL (http:// only for a loopback receiver), or None."""
    if url is None or not url.strip():
        return None
    value = url.strip()
    scheme = value.split(":", 1)[0].lower()
    if scheme == "https" or (scheme == "http" and is_loopback_host(urlsplit(value).hostname)):
        return value
    raise InvalidPromptError(
        "The callback URL must be an https:// URL.",
        hint="Use an https:// webhook URL (http:// only for a local receiver).",
    )


class JobStatus(str, Enum):  # noqa: UP042  (str() and JSON stay as they were)
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    # Any status the contract does not name: treated as still running.
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)

    @classmethod
    def parse(cls, value: Any) -> JobStatus:
        if isinstance(value, JobStatus):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return cls.UNKNOWN


def _parse_eta(v: Any) -> float | None:
    try:
        value = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if 0 <= value < 86400 else None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    # Keep unknown fields (forward compatible), never fail on them.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class GenerateRequest(_Request):
    """Body of POST /generate. Building one validates it (raises HiptahError subclasses)."""

    prompt: str = ""
    format: str = DEFAULT_FORMAT
    quality: str = DEFAULT_QUALITY
    callback_url: str | None = None
    image: str | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> str:
        return clean_format(None if v is None else str(v))

    @field_validator("quality", mode="before")
    @classmethod
    def _quality(cls, v: Any) -> str:
        return clean_quality(None if v is None else str(v))

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, v: str | None) -> str | None:
        return clean_callback_url(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else check_data_uri(v)

    @model_validator(mode="before")
    @classmethod
    def _prompt(cls, data: Any) -> Any:
        if isinstance(data, dict):
            has_image = bool(data.get("image"))
            data = dict(data)
            data["prompt"] = clean_prompt(
                None if data.get("prompt") is None else str(data.get("prompt")), allow_empty=has_image
            )
        return data

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def describe(self) -> str:
        """Short human label (never includes the image payload)."""
        if self.prompt:
            return self.prompt
        return "image" if self.image else "(empty)"


class GenerateResponse(_Response):
    job_id: str
    status: JobStatus = JobStatus.QUEUED
    estimated_time_seconds: float | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> JobStatus:
        return JobStatus.parse(v)

    @field_validator("estimated_time_seconds", mode="before")
    @classmethod
    def _eta(cls, v: Any) -> float | None:
        return _parse_eta(v)


class JobError(_Response):
    code: str | None = None
    message: str | None = None

    @field_validator("code", "message", mode="before")
    @classmethod
    def _text(cls, v: Any) -> str | None:
        # A numeric code or a structured message must not make a failed job unreadable.
        return None if v is None else str(v)


class Job(_Response):
    """A job as the server describes it (GET /job/{id})."""

    job_id: str
    status: JobStatus = JobStatus.UNKNOWN
    model_url: str | None = None
    expires_at: datetime | None = None
    progress: float | None = None
    error: JobError | None = None
    estimated_time_seconds: float | None = None
    format: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> JobStatus:
        return JobStatus.parse(v)

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, v: Any) -> float | None:
        try:
            value = float(v)
        except (TypeError, ValueError, OverflowError):
            return None
        if value != value:  # NaN
            return None
        return max(0.0, min(100.0, value))

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expires(cls, v: Any) -> Any:
        # A malformed date must not make a finished job unreadable.
        if v is None or isinstance(v, datetime):
            return v
        try:
            return datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        except ValueError:
            return None

    @field_validator("error", mode="before")
    @classmethod
    def _error(cls, v: Any) -> Any:
        if v is None or isinstance(v, (dict, JobError)):
            return v
        return {"message": str(v)}

    @field_validator("estimated_time_seconds", mode="before")
    @classmethod
    def _eta(cls, v: Any) -> float | None:
        return _parse_eta(v)


class ErrorBody(_Response):
    """The [assumed] error body {"error": {"code", "message"}}; anything else is tolerated."""

    error: JobError | None = None
    message: str | None = None
    detail: Any = None


class WebhookRequest(_Request):
    url: str
    events: list[str] = Field(default_factory=lambda: ["job.completed", "job.failed"])

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return clean_callback_url(v) or ""


class WebhookRegistration(_Response):
    webhook_id: str | None = None
    secret: str | None = None
    url: str | None = None
    events: list[str] | None = None

    def __repr__(self) -> str:
        # The signing secret is a credential: never in a repr or a log.
        return f"WebhookRegistration(webhook_id={self.webhook_id!r}, url={self.url!r}, secret='***')"

    __str__ = __repr__


class WebhookEvent(_Response):
    """A delivery's body: {"event": "job.completed", "job_id": ..., "model_url": ...}."""

    event: str
    job_id: str
    model_url: str | None = None
    status: JobStatus | None = None
    error: JobError | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> JobStatus | None:
        return None if v is None else JobStatus.parse(v)
