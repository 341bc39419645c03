"""One exception type per failure the user must act on.

Every error carries a message (what happened), a one-line hint (what to do next,
taken from the contract's error table), the HTTP status when there was one, the
server's own message and error code when it sent them, and the request id when
the server sent one. None of them ever holds the API key: messages are built from
server text passed through :func:`redact`, never from request headers.

Local validation errors (raised before any request) share the types of the
server's answers for the same problem, so callers handle one type per cause:
an over-long prompt is an :class:`InvalidPromptError` whether the client or the
server noticed it.
"""

from __future__ import annotations

import re
from typing import ClassVar

from ..i18n import N_

# Secrets registered here are scrubbed from every error message and repr.
_SECRETS: set[str] = set()
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def register_secret(secret: str | None) -> None:
    """Remember a secret (an API key) so that no error text can ever contain it."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str | None) -> str:
    """Return ``text`` with every registered secret and bearer token masked."""
    if not text:
        return ""
    out = _BEARER.sub(r"\1***", text)
    for secret in _SECRETS:
        if secret in out:
            out = out.replace(secret, "***")
    return out


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (or its own ! or ?)."""
    text = text.strip()
    return text if text.endswith(("!", "?")) else text.rstrip(".") + "."


class HiptahError(Exception):
    """Base of every error this client raises."""

    default_message: ClassVar[str] = "The HiPtah request failed."
    hint: str = "Try again; if it keeps failing, check the HiPtah service status."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        server_message: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact(message or self.default_message)
        self.status = status
        self.server_message = redact(server_message) or None
        # Server-supplied text may echo the request (a key included): scrub it too.
        self.code = redact(code) or None
        self.request_id = redact(request_id) or None
        if hint is not None:
            self.hint = hint
        self.retry_after = retry_after
        super().__init__(self.message)

    @property
    def kind(self) -> str:
        """Stable name of the error type, for job records and reports."""
        return type(self).__name__

    def describe(self) -> str:
        """What happened, with the server's own words when it sent any (no hint)."""
        parts = [self.message]
        if self.server_message and self.server_message not in self.message:
            parts.append(N_(f"Server said: {self.server_message}"))
        return redact(" ".join(sentence(p) for p in parts if p))

    def user_text(self) -> str:
        """One line for a Blender report or a terminal: what happened, then what to do."""
        return redact(" ".join(sentence(p) for p in (self.describe(), self.hint) if p))

    def __str__(self) -> str:
        text = self.message
        if self.status is not None:
            text = f"[{self.status}] {text}"
        if self.request_id:
            text = f"{text} (request id {self.request_id})"
        return redact(text)

    def __repr__(self) -> str:
        return redact(
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


# --- configuration, found before any request ------------------------------------


class ConfigurationError(HiptahError):
    default_message = "The HiPtah add-on is not configured correctly."
    hint = "Open Edit > Preferences > Add-ons > HiPtah and check the settings."


class MissingAPIKeyError(ConfigurationError):
    default_message = "No HiPtah API key is set."
    hint = (
        "Paste your key in Edit > Preferences > Add-ons > HiPtah (or set HIPTAH_API_KEY); "
        "create one in the HiPtah dashboard under Settings > API Keys."
    )


class InvalidBaseURLError(ConfigurationError):
    default_message = "The HiPtah base URL is not valid."
    hint = (
        "Use an https:// URL such as https://api.hiptah.com/v1; plain http:// is allowed "
        "only for a local sandbox (127.0.0.1, ::1 or localhost)."
    )


class OnlineAccessDisabledError(ConfigurationError):
    default_message = "Blender's online access is turned off."
    hint = "Enable Edit > Preferences > System > Network > Allow Online Access, or use the local sandbox."


# --- request problems, local or reported by the server ----------------------------


class InvalidPromptError(HiptahError):
    """400: the prompt (or another request field) is not acceptable."""

    default_message = "The prompt is not valid."
    hint = "Use 1 to 500 characters and remove any HTML."


class InvalidImageError(InvalidPromptError):
    default_message = "The image cannot be used."
    hint = "Use a PNG, JPEG or WebP image of at most 10 MB."


class AuthenticationError(HiptahError):
    """401: the key is wrong, revoked or missing."""

    default_message = "The HiPtah API key was refused."
    hint = "Check the key in Edit > Preferences > Add-ons > HiPtah (HiPtah dashboard > Settings > API Keys)."


class PlanLimitError(HiptahError):
    """403: the monthly quota of the plan is used up."""

    default_message = "Your HiPtah plan's generation limit is reached."
    hint = "Upgrade your plan or wait for the monthly reset."


class NotFoundError(HiptahError):
    """404: the job (or another resource) does not exist on the server."""

    default_message = "The server does not know this job."
    hint = "The job may have expired or the server was reset; generate it again if you still need it."


class UnsupportedFormatError(HiptahError):
    """422: the format is not one the service produces."""

    default_message = "This model format is not supported."
    hint = "Use glb, fbx, usdz, stl or 3mf."


class InvalidQualityError(UnsupportedFormatError):
    default_message = "This quality level is not supported."
    hint = "Use draft, standard or high."


class RateLimitError(HiptahError):
    """429: too many requests or too many concurrent jobs."""

    default_message = "HiPtah is rate limiting this key."
    hint = "Wait a moment; the add-on slows down by itself and retries."


class ServerError(HiptahError):
    """5xx: the service failed."""

    default_message = "The HiPtah server had an error."
    hint = "The add-on retries with backoff; if it persists, try again later."


class APIStatusError(HiptahError):
    """Any other unexpected HTTP status."""

    default_message = "The HiPtah server answered with an unexpected status."


# --- transport ---------------------------------------------------------------------


class APIConnectionError(HiptahError):
    default_message = "Could not connect to the HiPtah server."
    hint = "Check your internet connection, proxy settings and the base URL; the add-on retries by itself."


class TLSError(APIConnectionError):
    default_message = "The HiPtah server's TLS certificate could not be verified."
    hint = (
        "If you are behind a corporate proxy, point the add-on at your CA bundle "
        "(REQUESTS_CA_BUNDLE or the CA bundle preference); verification is never turned off."
    )


class APITimeoutError(HiptahError):
    default_message = "The HiPtah server did not answer in time."
    hint = "The add-on retries by itself; if it keeps happening, check your connection."


class UnexpectedResponseError(HiptahError):
    default_message = "The HiPtah server sent a response this add-on does not understand."
    hint = "Try again; if it persists, update the add-on or report it with the request id."


# --- job outcomes ------------------------------------------------------------------


class JobFailedError(HiptahError):
    default_message = "The generation failed on the server."
    hint = "Try rephrasing the prompt, then generate again."


class JobTimeoutError(APITimeoutError):
    default_message = "The job did not finish before the deadline."
    hint = (
        "The job is kept; it may still finish on the server. Retry to keep polling it, "
        "or raise the job deadline in the preferences."
    )


class JobCancelledError(HiptahError):
    default_message = "The job was cancelled."
    hint = "Generate again if you still need the model."


class DownloadError(HiptahError):
    default_message = "The model could not be downloaded."
    hint = "Retry the job; the model stays available on the server until its link expires."


class StorageError(DownloadError):
    default_message = "The model could not be saved to disk."
    hint = "Check that the download folder exists, is writable and has free space, then retry the job."


# HTTP status -> error type, from the contract's error table.
STATUS_ERRORS: dict[int, type[HiptahError]] = {
    400: InvalidPromptError,
    401: AuthenticationError,
    403: PlanLimitError,
    404: NotFoundError,
    422: UnsupportedFormatError,
    429: RateLimitError,
}


def error_for_status(status: int) -> type[HiptahError]:
    """The error type for an HTTP status (5xx -> ServerError)."""
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    if status >= 500:
        return ServerError
    return APIStatusError


# Types a caller may retry automatically (the rest need the user).
RETRYABLE_ERRORS: tuple[type[HiptahError], ...] = (
    RateLimitError,
    ServerError,
    APIConnectionError,
    APITimeoutError,
)


# Of the HTTP statuses, only these are transient (the contract's retry list).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Statuses by which the server refused a request outright: it created nothing, so a
# new request may use a new idempotency key. By status, because a stored ErrorInfo
# keeps only the status.
DEFINITIVE_REJECTIONS = frozenset({400, 401, 403, 422})


def is_retryable(error: BaseException) -> bool:
    """Transient failures only: network errors, timeouts, and statuses in RETRY_STATUSES."""
    if not isinstance(error, RETRYABLE_ERRORS) or isinstance(error, (TLSError, JobTimeoutError)):
        return False
    return error.status is None or error.status in RETRY_STATUSES


__all__ = [
    "DEFINITIVE_REJECTIONS",
    "RETRYABLE_ERRORS",
    "RETRY_STATUSES",
    "STATUS_ERRORS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "DownloadError",
    "HiptahError",
    "InvalidBaseURLError",
    "InvalidImageError",
    "InvalidPromptError",
    "InvalidQualityError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OnlineAccessDisabledError",
    "PlanLimitError",
    "RateLimitError",
    "ServerError",
    "StorageError",
    "TLSError",
    "UnexpectedResponseError",
    "UnsupportedFormatError",
    "error_for_status",
    "is_retryable",
    "redact",
    "register_secret",
]
