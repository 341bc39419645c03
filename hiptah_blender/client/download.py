"""Stream a model file to disk: size cap, magic bytes, atomic rename, no partial files.

The file is written to ``<dest_dir>/.<name>.part`` and renamed into place
(``os.replace``, after ``fsync``) only when it is complete and checked, so a
crash, a full disk or a truncated transfer never leaves a file that looks
finished. Any failure deletes the temporary file.

Credentials: this module never adds an Authorization header itself. The caller
passes ``auth_headers_for(url)``, which returns the header only for the API's own
origin; every redirect hop asks again, so a CDN (or a redirect from the API to
a CDN) never sees the key.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..i18n import N_
from . import magic
from .errors import DownloadError, StorageError, TLSError
from .validation import FORMATS, is_loopback_host

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
# A CDN answering these for a model URL means the signed link expired (or was
# never valid); the caller fetches the job again for a fresh URL.
EXPIRED_STATUSES = frozenset({403, 404, 410})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

ProgressCallback = Callable[[int, int | None], None]


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: the unit of trust."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def check_model_url(url: str) -> str:
    """Refuse model URLs that are not https (plain http only for loopback, like the sandbox)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise DownloadError("The model URL sent by the server cannot be parsed.") from None
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return url
    raise DownloadError(
        f"The model URL uses {parts.scheme or 'no'}:// on {parts.hostname or 'no host'}; only https:// is accepted.",
    )


def safe_filename(name: str, *, fallback: str = "model") -> str:
    """A file name made only of [A-Za-z0-9._-], never starting with '.', at most 120 characters."""
    cleaned = _SAFE_NAME.sub("_", name or "").lstrip(".")[:120]
    return cleaned or fallback


def check_filename(name: str) -> str:
    """A caller-chosen name must be a plain file name: no directories, no '..', not hidden."""
    if (
        not name
        or name in (".", "..")
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.basename(name) != name
    ):
        raise DownloadError(f"The file name {name!r} is not allowed; use a plain name without folders.")
    return name


def pick_format(job_format: str | None, url: str | None) -> str:
    """The model's format: the job's, else the URL path's suffix, else glb."""
    for candidate in (job_format, os.path.splitext(urlsplit(url or "").path)[1]):
        value = (candidate or "").strip().lower().lstrip(".")
        if value in FORMATS:
            return value
    return "glb"


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _open_following_redirects(
    session: requests.Session,
    url: str,
    *,
    auth_headers_for: Callable[[str], dict[str, str]],
    timeout: tuple[float, float],
    verify: bool | str,
    proxies_for: Callable[[str], dict[str, Any] | None],
    user_agent: str | None,
) -> requests.Response:
    """GET ``url`` streaming; follow redirects by hand so credentials are decided per hop."""
    base_headers = {"Accept-Encoding": "identity"}  # so Content-Length counts the file's bytes
    if user_agent:
        base_headers["User-Agent"] = user_agent
    for _hop in range(MAX_REDIRECTS + 1):
        check_model_url(url)
        headers = {**base_headers, **auth_headers_for(url)}
        try:
            response = session.get(
                url,
                headers=headers,
                stream=True,
                timeout=timeout,
                allow_redirects=False,
                verify=verify,
                proxies=proxies_for(url),
            )
        except requests.exceptions.SSLError as exc:
            raise TLSError(
                f"The TLS certificate of the download server {urlsplit(url).hostname} could not be verified ({exc})."
            ) from None
        except requests.exceptions.Timeout:
            raise DownloadError("The download server did not answer in time.") from None
        except requests.exceptions.RequestException as exc:
            raise DownloadError(f"Could not connect to the download server ({type(exc).__name__}).") from None
        except ValueError as exc:  # requests parses a malformed redirect Location itself
            raise DownloadError(f"The download server sent an answer that cannot be parsed ({exc}).") from None
        if response.status_code in _REDIRECT_STATUSES and response.headers.get("Location"):
            response.close()
            try:
                target = urljoin(url, response.headers["Location"])
                insecure = origin(url)[0] == "https" and origin(target)[0] != "https"
            except ValueError:
                raise DownloadError("The download server redirected to an invalid address.") from None
            if insecure:
                raise DownloadError("The download server redirected from https:// to an insecure address.")
            url = target
            continue
        return response
    raise DownloadError(f"The download was redirected more than {MAX_REDIRECTS} times.")


def fetch_to_file(
    session: requests.Session,
    url: str,
    dest: Path,
    *,
    fmt: str,
    auth_headers_for: Callable[[str], dict[str, str]],
    proxies_for: Callable[[str], dict[str, Any] | None],
    timeout: tuple[float, float],
    verify: bool | str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: ProgressCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
    user_agent: str | None = None,
) -> Path:
    """Download ``url`` into ``dest`` atomically and return ``dest``.

    Raises DownloadError (status set when the server refused, e.g. 403/404/410
    for an expired link), StorageError for local disk problems, TLSError.
    """
    response = _open_following_redirects(
        session, url, auth_headers_for=auth_headers_for, timeout=timeout, verify=verify, proxies_for=proxies_for,
        user_agent=user_agent,
    )
    with contextlib.closing(response):
        if response.status_code != 200:
            expired = response.status_code in EXPIRED_STATUSES
            raise DownloadError(
                "The model link has expired or is not valid any more."
                if expired
                else f"The download server answered {response.status_code} {response.reason}."
                if response.reason
                else f"The download server answered {response.status_code}.",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id") or response.headers.get("Request-Id"),
            )
        total = _content_length(response)
        if total is not None and total > max_bytes:
            raise DownloadError(
                f"The model is {total / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; it was not downloaded.",
                hint="Raise the download size limit in the preferences if you expect such large models.",
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            _stream(response, tmp, fmt=fmt, total=total, encoded=encoding not in ("", "identity"),
                    max_bytes=max_bytes, on_progress=on_progress, chunk_size=chunk_size)
            try:
                magic.verify_file(fmt, tmp)
                os.replace(tmp, dest)
            except OSError as exc:
                raise StorageError(_describe_os_error(exc, dest.parent)) from None
        except BaseException:
            # No partial files, whatever went wrong (including KeyboardInterrupt).
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    _fsync_dir(dest.parent)
    log.debug("downloaded %s (%d bytes)", dest.name, dest.stat().st_size)
    return dest


def _stream(
    response: requests.Response,
    tmp: Path,
    *,
    fmt: str,
    total: int | None,
    encoded: bool,
    max_bytes: int,
    on_progress: ProgressCallback | None,
    chunk_size: int,
) -> None:
    done = 0
    head = b""
    try:
        with open(tmp, "wb") as fh:
            try:
                for chunk in response.iter_content(chunk_size):
                    if not chunk:
                        continue
                    if len(head) < magic.HEAD_BYTES:
                        head += chunk[: magic.HEAD_BYTES - len(head)]
                        # Decide as soon as enough bytes arrived (or on the first chunk when it is short).
                        if len(head) >= magic.HEAD_BYTES and not magic.looks_like(fmt, head):
                            raise DownloadError(
                                f"The downloaded model is corrupt: it is not a {fmt.upper()} file."
                            )
                    done += len(chunk)
                    if done > max_bytes:
                        raise DownloadError(
                            f"The model is larger than the {max_bytes / 1e6:.0f} MB limit; the download was stopped.",
                            hint="Raise the download size limit in the preferences if you expect such large models.",
                        )
                    fh.write(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
            except requests.exceptions.RequestException as exc:
                # urllib3 enforces Content-Length: a short body surfaces here.
                raise DownloadError(
                    f"The download was interrupted after {done} bytes ({type(exc).__name__}); the file was discarded."
                ) from None
            if not magic.looks_like(fmt, head):
                raise DownloadError(f"The downloaded model is corrupt: it is not a {fmt.upper()} file.")
            # With a Content-Encoding the header counts encoded bytes; urllib3 checks those itself.
            if total is not None and not encoded and done != total:
                raise DownloadError(
                    f"The download is truncated: received {done} of {total} bytes; the file was discarded."
                )
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StorageError(_describe_os_error(exc, tmp.parent)) from None


def _describe_os_error(exc: OSError, folder: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return N_(f"The disk holding {folder} is full; the model could not be saved.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return N_(f"The folder {folder} is not writable; the model could not be saved.")
    return N_(f"The model could not be saved in {folder} ({exc.strerror or exc}).")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable on POSIX; directories cannot be opened on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prepare_dest(dest_dir: str | os.PathLike[str], name: str) -> Path:
    """``dest_dir/name``, creating the folder; refuses any name that would leave it."""
    folder = Path(dest_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(_describe_os_error(exc, folder)) from None
    dest = folder / check_filename(name)
    if dest.resolve().parent != folder.resolve():
        raise DownloadError(f"The file name {name!r} would leave the download folder.")
    return dest
