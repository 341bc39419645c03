"""Images for image-to-3D: sniff the type, check the size, encode as a data URI.

Pure Python, no third-party imports. The type is decided by the file's magic
bytes, never by its name, so a renamed GIF is refused before anything is uploaded.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from .errors import InvalidImageError

MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_DATA_URI = re.compile(r"^data:(image/(?:png|jpeg|webp));base64,([A-Za-z0-9+/=\s]*)$", re.DOTALL)


def sniff_image_type(head: bytes) -> str | None:
    """'png', 'jpeg' or 'webp' from the first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _unreadable(name: str, exc: OSError) -> InvalidImageError:
    return InvalidImageError(
        f"The image {name!r} cannot be read ({exc.strerror or exc}).",
        hint="Check the path and that the file exists.",
    )


def _too_large(name: str, size: int) -> InvalidImageError:
    return InvalidImageError(
        f"The image {name!r} is {size / 1e6:.1f} MB; the limit is {MAX_IMAGE_BYTES // (1024 * 1024)} MB.",
        hint="Scale the image down or save it as JPEG or WebP, then try again.",
    )


def image_bytes_to_data_uri(data: bytes, *, name: str = "image") -> str:
    if not data:
        raise InvalidImageError(f"The image {name!r} is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(name, len(data))
    kind = sniff_image_type(data[:16])
    if kind is None:
        raise InvalidImageError(f"The file {name!r} is not a PNG, JPEG or WebP image.")
    return f"data:{IMAGE_TYPES[kind]};base64,{base64.b64encode(data).decode('ascii')}"


def check_image_file(path: str | os.PathLike[str]) -> str:
    """Cheap checks before anything is sent: the file can be read, is at most 10 MB and
    starts like a PNG, JPEG or WebP. Reads 16 bytes; returns 'png', 'jpeg' or 'webp', or
    raises InvalidImageError saying what is wrong."""
    name = os.path.basename(os.fspath(path))
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise _unreadable(name, exc) from None
    if size > MAX_IMAGE_BYTES:
        raise _too_large(name, size)
    kind = sniff_image_type(head)
    if kind is None:
        raise InvalidImageError(f"The file {name!r} is not a PNG, JPEG or WebP image.")
    return kind


def image_file_to_data_uri(path: str | os.PathLike[str]) -> str:
    """Read an image file and return its data URI, or InvalidImageError saying why not."""
    check_image_file(path)  # readable, size, type: the same messages as the UI's check
    name = os.path.basename(os.fspath(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:  # gone or locked since the check
        raise _unreadable(name, exc) from None
    # The bytes are checked again: the file may have changed since check_image_file.
    return image_bytes_to_data_uri(data, name=name)


def check_data_uri(uri: str) -> str:
    """Validate a data URI as the contract allows it; return it unchanged."""
    match = _DATA_URI.match(uri or "")
    if not match:
        raise InvalidImageError("The image must be a data URI of a PNG, JPEG or WebP image.")
    payload = re.sub(r"\s+", "", match.group(2))
    if len(payload) * 3 // 4 > MAX_IMAGE_BYTES + 3:
        raise InvalidImageError("The image is larger than 10 MB.")
    try:
        head = base64.b64decode(payload[:64] + "=" * (-len(payload[:64]) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidImageError("The image data is not valid base64.") from None
    kind = sniff_image_type(head)
    if kind is None or IMAGE_TYPES[kind] != match.group(1):
        raise InvalidImageError("The image data does not match its declared type (PNG, JPEG or WebP).")
    return uri
