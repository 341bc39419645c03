"""Local checks of what the user typed, run before any request.

Pure functions with no third-party imports: the Blender panel calls them on every
redraw (to grey out Generate with the reason) without importing pydantic, and the
request models call them so the client refuses bad input before it is sent.
Each failure raises the error type the server would have answered with.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from ..i18n import N_
from .errors import (
    InvalidBaseURLError,
    InvalidPromptError,
    InvalidQualityError,
    MissingAPIKeyError,
    UnsupportedFormatError,
)

MAX_PROMPT_CHARS = 500
FORMATS: tuple[str, ...] = ("glb", "fbx", "usdz", "stl", "3mf")
QUALITIES: tuple[str, ...] = ("draft", "standard", "high")
DEFAULT_FORMAT = "glb"
DEFAULT_QUALITY = "high"
DEFAULT_BASE_URL = "https://api.hiptah.com/v1"

# A tag is "<" followed by a letter, "/", "!" or "?" and a closing ">"; this refuses
# markup and comments but lets "a < b" or "size <3m" through.
_HTML_TAG = re.compile(r"<\s*[/!?]?\s*[A-Za-z][^<>]*>|<!--.*?-->", re.DOTALL)
_HTML_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]{2,8});")


def prompt_problem(prompt: str | None, *, allow_empty: bool = False) -> str | None:
    """Why ``prompt`` cannot be sent, or None when it can. Used for live UI feedback."""
    text = (prompt or "").strip()
    if not text:
        return None if allow_empty else N_("Enter a prompt describing the model")
    length = len(text)
    if length > MAX_PROMPT_CHARS:
        return N_(f"Prompt is {length} characters; the limit is {MAX_PROMPT_CHARS}")
    if _HTML_TAG.search(text) or _HTML_ENTITY.search(text):
        return N_("Remove the HTML from the prompt")
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in "\t\n":
            return N_("Remove control characters from the prompt")
    return None


def clean_prompt(prompt: str | None, *, allow_empty: bool = False) -> str:
    """The prompt as it will be sent (trimmed), or InvalidPromptError saying what to fix."""
    problem = prompt_problem(prompt, allow_empty=allow_empty)
    if problem:
        raise InvalidPromptError(problem + ".")
    return (prompt or "").strip()


def clean_format(fmt: str | None) -> str:
    value = (fmt or DEFAULT_FORMAT).strip().lower().lstrip(".")
    if value not in FORMATS:
        raise UnsupportedFormatError(f"Format {fmt!r} is not supported.")
    return value


def clean_quality(quality: str | None) -> str:
    value = (quality or DEFAULT_QUALITY).strip().lower()
    if value not in QUALITIES:
        raise InvalidQualityError(f"Quality {quality!r} is not supported.")
    return value


def clean_api_key(key: str | None) -> str:
    value = (key or "").strip()
    if not value:
        raise MissingAPIKeyError()
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise MissingAPIKeyError(
            "The API key contains spaces or control characters.",
            hint="Copy the key again from the HiPtah dashboard (Settings > API Keys) without extra characters.",
        )
    return value


def is_loopback_host(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: the only hosts plain http:// may reach."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def clean_base_url(url: str | None) -> str:
    """The base URL without a trailing slash, or InvalidBaseURLError saying what is wrong."""
    value = (url or "").strip()
    if not value:
        raise InvalidBaseURLError("The base URL is empty.")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidBaseURLError(f"The base URL {value!r} cannot be parsed ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        if not parts.scheme or "://" not in value:
            raise InvalidBaseURLError(f"The base URL {value!r} has no scheme; start it with https://.")
        raise InvalidBaseURLError(f"The base URL scheme {parts.scheme!r} is not supported; use https://.")
    if not parts.hostname:
        raise InvalidBaseURLError(f"The base URL {value!r} has no host.")
    if parts.username or parts.password:
        raise InvalidBaseURLError("The base URL must not contain a user name or password; use the API key setting.")
    if parts.query or parts.fragment:
        raise InvalidBaseURLError("The base URL must not contain a query or fragment.")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InvalidBaseURLError(
            f"Plain http:// is only allowed for a local sandbox, not for {parts.hostname!r}; use https://."
        )
    del port
    return value.rstrip("/")


def is_sandbox_url(url: str | None) -> bool:
    """True when the base URL points at this machine (a local sandbox): shown as a badge,
    and exempt from Blender's online-access switch."""
    try:
        return is_loopback_host(urlsplit((url or "").strip()).hostname)
    except ValueError:
        return False
