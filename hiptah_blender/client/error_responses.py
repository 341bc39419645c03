"""Error answers turned into HiptahError types: body parsing and status mapping.

Whatever a server or proxy sends (JSON of several shapes, HTML, text, nothing),
the user gets at most a short, redacted line, the server's error code, the
request id, Retry-After, and the most precise error type for the status.
No third-party import at run time (``requests`` is only named in annotations).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..i18n import N_
from .errors import (
    APIStatusError,
    HiptahError,
    InvalidImageError,
    InvalidPromptError,
    InvalidQualityError,
    UnsupportedFormatError,
    error_for_status,
    redact,
)
from .retry import parse_retry_after

if TYPE_CHECKING:
    import requests

_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _short_text(text: str, limit: int = 200) -> str | None:
    cleaned = " ".join(text.split())
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def _html_text(body: str) -> str | None:
    title = _TITLE.search(body)
    if title and title.group(1).strip():
        return _short_text(html.unescape(_TAGS.sub(" ", title.group(1))))
    return _short_text(html.unescape(_TAGS.sub(" ", body)))


def _detail_text(detail: Any) -> str | None:
    if isinstance(detail, str):
        return _short_text(detail)
    if isinstance(detail, list):  # FastAPI validation errors: [{"loc", "msg", ...}]
        parts = [str(item.get("msg")) if isinstance(item, dict) and item.get("msg") else str(item) for item in detail]
        return _short_text("; ".join(parts))
    if isinstance(detail, dict):
        return _short_text(str(detail.get("message") or detail.get("msg") or json.dumps(detail)))
    return None if detail is None else _short_text(str(detail))


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str | None, str | None]:
    """(server message, error code) from any error body: JSON of several shapes, HTML, text, nothing.

    Never raises: whatever the server sent, the user gets at most a short line.
    """
    try:
        # Redact before anything is shortened, so a cut can never leave part of a key.
        text = redact(body[:65536].decode("utf-8", errors="replace")).strip()
        if not text:
            return None, None
        if text[:1] in "{[" or "json" in content_type.lower():
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                data = None  # truncated or broken JSON: fall through to plain text
            if isinstance(data, dict):
                return _error_fields(data)
            if data is not None:
                return _short_text(json.dumps(data)), None
        if "html" in content_type.lower() or text[:1] == "<":
            return _html_text(text), None
        return _short_text(text), None
    except Exception:  # a body must never turn into a crash
        return None, None


def _error_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(message, code) from the shapes seen in the wild: {"error": {...}}, {"error": "..."},
    {"message"}, {"detail"} (FastAPI, also a list of validation errors), {"title"} (RFC 7807)."""
    error = data.get("error")
    nested = error if isinstance(error, dict) else {}
    code = nested.get("code", data.get("code"))
    message = (
        _detail_text(nested.get("message"))
        or (_detail_text(error) if isinstance(error, str) else None)
        or _detail_text(data.get("message"))
        or _detail_text(data.get("detail"))
        or _detail_text(data.get("title"))
    )
    code_text = _short_text(str(code), 80) if isinstance(code, str | int) and not isinstance(code, bool) else None
    return message, code_text


def _request_id(headers: Mapping[str, str]) -> str | None:
    value = headers.get("X-Request-Id") or headers.get("Request-Id")
    return _short_text(redact(value), 120) if value else None


def _refine_error_type(cls: type[HiptahError], code: str | None) -> type[HiptahError]:
    """A more precise subtype from the server's error code, when it gives one."""
    lowered = (code or "").lower()
    if cls is InvalidPromptError and "image" in lowered:
        return InvalidImageError
    if cls is UnsupportedFormatError and "quality" in lowered:
        return InvalidQualityError
    return cls


def _status_error(response: requests.Response, body: bytes) -> HiptahError:
    status = response.status_code
    server_message, code = parse_error_body(body, response.headers.get("Content-Type", ""))
    cls = _refine_error_type(error_for_status(status), code)
    if cls is APIStatusError:
        message = N_(f"The HiPtah server answered with the unexpected status {status}.")
    elif status >= 500:
        message = N_(f"The HiPtah server had an error ({status}).")
    else:
        message = None  # the type's own sentence says it best
    return cls(
        message,
        status=status,
        server_message=server_message,
        code=code,
        request_id=_request_id(response.headers),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _ssl_reason(exc: requests.exceptions.SSLError) -> str:
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname mismatch",
                   "self-signed certificate", "self signed certificate", "certificate has expired",
                   "unable to get local issuer certificate", "WRONG_VERSION_NUMBER", "wrong version number"):
        if marker.lower() in text.lower():
            match = re.search(r"certificate verify failed: ([^(\"')]+)", text)
            return redact(match.group(1).strip() if match else marker)
    return "TLS handshake failed"


__all__ = ["parse_error_body"]
