"""Image-to-3D input on the Blender side: which image the user chose, whether it can
be sent, and turning an Image datablock into a file the scheduler can read.

The scheduler reads and encodes the image file on a worker thread. Blender data can
only be read on the main thread, so a datablock is turned into a file here, and as
little as possible is done: an unmodified image whose file on disk is already a PNG,
JPEG or WebP is sent from that file; the bytes of a packed PNG/JPEG/WebP are written
out as they are; anything else (generated, edited, other file types) is saved as a
temporary PNG in the add-on's ``tmp`` folder, which is deleted when the job is done
or removed.

``file_info()`` is cached by (path, mtime, size) because poll() and draw() call it on
every redraw: an unchanged file is never opened again.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import bpy

from ..client import images
from ..client.errors import InvalidImageError
from ..i18n import N_

FILTER_GLOB = "*.png;*.jpg;*.jpeg;*.webp"
TEMP_PREFIX = "hiptah-image-"
NOTHING_CHOSEN = N_("Choose an image file or a Blender image for image-to-3D.")

# Image sources whose pixels are not one still picture we can save.
_UNSUPPORTED_SOURCES = {
    "MOVIE": "a movie",
    "SEQUENCE": "an image sequence",
    "TILED": "a UDIM tiled image",
    "VIEWER": "a render result or viewer image",
}
_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_CACHE_LIMIT = 64


@dataclass(frozen=True)
class FileInfo:
    kind: str | None  # 'png' / 'jpeg' / 'webp' from the magic bytes, None otherwise
    size: int
    problem: str | None  # why it cannot be sent as it is (None: it can)


@dataclass(frozen=True)
class PreparedImage:
    path: str  # the file the scheduler sends
    name: str  # what the user calls it: the file name or the datablock's name
    temp: bool  # True: a temporary file of ours, deleted when the job is done

    def discard(self) -> None:
        if self.temp:
            remove_quietly(self.path)


_file_cache: dict[str, tuple[tuple[int, int], FileInfo]] = {}


def file_info(path: str) -> FileInfo:
    """What the image file at ``path`` is, and why it cannot be sent (if it cannot).
    One stat() per call; the 16-byte header is read only when the file changed."""
    try:
        stat = os.stat(path)
    except OSError:
        stat = None
    if stat is None or not os.path.isfile(path):
        _file_cache.pop(path, None)
        try:
            images.check_image_file(path)  # for the exact message ("cannot be read ...")
        except InvalidImageError as exc:
            return FileInfo(None, 0, exc.message)
        return FileInfo(None, 0, f"{os.path.basename(path)!r} is not a file.")
    key = (stat.st_mtime_ns, stat.st_size)
    hit = _file_cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        info = FileInfo(images.check_image_file(path), stat.st_size, None)
    except InvalidImageError as exc:
        kind = _sniff(path)
        info = FileInfo(kind, stat.st_size, exc.message)
    if len(_file_cache) >= _CACHE_LIMIT:
        _file_cache.clear()
    _file_cache[path] = (key, info)
    return info


def _sniff(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return images.sniff_image_type(fh.read(16))
    except OSError:
        return None


def image_file_path(image: Any) -> str:
    """Absolute path of a datablock's file ('' when it has none)."""
    raw = str(image.filepath or "")
    return bpy.path.abspath(raw, library=image.library) if raw else ""


def _sends_own_file(image: Any) -> bool:
    """True when the datablock is an unmodified PNG/JPEG/WebP file on disk: send that file."""
    if image.source != "FILE" or image.packed_file is not None or image.is_dirty:
        return False
    path = image_file_path(image)
    return bool(path) and file_info(path).kind is not None


def datablock_problem(image: Any) -> str | None:
    """Why this Image datablock cannot be sent (cheap: flags, a stat and a cached header)."""
    name = image.name
    what = _UNSUPPORTED_SOURCES.get(image.source)
    if what is not None:
        return N_(f"The image {name!r} is {what}; save it as a PNG or JPEG file first.")
    if image.packed_file is not None or image.source == "GENERATED" or image.is_dirty:
        return None  # the pixels are in the .blend or in memory
    path = image_file_path(image)
    if not path or not os.path.isfile(path):
        return N_(f"The image {name!r} has no pixels: its file {path or '(none)'} is missing.")
    info = file_info(path)
    if info.kind is not None:
        return info.problem  # a PNG/JPEG/WebP file over 10 MB is sent as it is: refuse now
    return None  # another type (TIFF, EXR, ...): converted to PNG when sent


def describe_datablock(image: Any) -> str:
    """One line for the panel: how the datablock will be sent."""
    if _sends_own_file(image):
        return N_(f"Sends its file {os.path.basename(image_file_path(image))}")
    if image.packed_file is not None and not image.is_dirty:
        return N_("Packed image: sent as stored in the .blend")
    return N_("Edited image: saved as PNG when sent") if image.is_dirty else N_("Saved as PNG when sent")


def selection(ui: Any) -> tuple[str | None, Any]:
    """The panel's choice: (absolute file path, None), (None, Image) or (None, None)."""
    if ui.image is not None:
        return None, ui.image
    path = str(ui.image_file).strip()
    return (bpy.path.abspath(path) if path else None), None


def selection_problem(ui: Any) -> str | None:
    path, image = selection(ui)
    if image is not None:
        return datablock_problem(image)
    if path is not None:
        return file_info(path).problem
    return NOTHING_CHOSEN


# ---------------------------------------------------------------------- preparing
def prepare_file(path: str) -> PreparedImage:
    """A file chosen by path: sent as it is (the scheduler checks it again on submit)."""
    return PreparedImage(path=path, name=os.path.basename(path), temp=False)


def prepare_datablock(image: Any, folder: str) -> PreparedImage:
    """A file with the datablock's pixels, for the scheduler. Main thread only.
    Raises InvalidImageError (nothing is left behind)."""
    name = str(image.name)
    problem = datablock_problem(image)
    if problem is not None:
        raise InvalidImageError(problem)
    if _sends_own_file(image):
        return PreparedImage(path=image_file_path(image), name=name, temp=False)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InvalidImageError(
            f"The image {name!r} cannot be saved for sending: {folder} cannot be created ({exc.strerror or exc}).",
            hint="Check that Blender's user folder is writable.",
        ) from None
    packed = image.packed_file
    kind = None
    if packed is not None and not image.is_dirty and 0 < packed.size <= images.MAX_IMAGE_BYTES:
        kind = images.sniff_image_type(bytes(packed.data[:16]))
    dest = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}{_EXTENSIONS.get(kind or 'png')}")
    try:
        if kind is not None:
            with open(dest, "wb") as fh:  # already PNG/JPEG/WebP: no re-encoding
                fh.write(bytes(packed.data))
        else:
            _save_png(image, dest)
        size = os.path.getsize(dest)
        if size > images.MAX_IMAGE_BYTES:
            raise InvalidImageError(
                f"The image {name!r} is {size / 1e6:.1f} MB as PNG; the limit is 10 MB.",
                hint="Scale it down (Image > Resize in the Image Editor), or save it as a JPEG file and pick that.",
            )
        images.check_image_file(dest)
    except InvalidImageError:
        remove_quietly(dest)
        raise
    except (RuntimeError, OSError, ValueError) as exc:
        remove_quietly(dest)
        detail = str(exc).replace("Error: ", "").strip().splitlines()
        raise InvalidImageError(
            f"The image {name!r} could not be saved as PNG ({detail[0][:160]})."
            if detail else f"The image {name!r} could not be saved as PNG.",
            hint="Open it in the Image Editor to check it has pixels, or save it as a PNG file and pick that.",
        ) from None
    return PreparedImage(path=dest, name=name, temp=True)


def _save_png(image: Any, dest: str) -> None:
    """Write the datablock's pixels as a PNG through a throwaway image, so the user's
    image (its file path, format, dirty flag) is never touched. Image.save() would
    mark an edited image as saved, and save_render() applies the scene's view
    transform; copying the pixels keeps them exactly as stored."""
    import numpy as np

    width, height = (int(v) for v in image.size)  # loads the pixels if needed
    if width == 0 or height == 0 or not image.has_data:
        raise InvalidImageError(
            f"The image {image.name!r} has no pixels (its file may be missing or unreadable).",
            hint="Open it in the Image Editor to check it, or pick an image file instead.",
        )
    count = len(image.pixels)
    channels = count // (width * height)
    flat = np.empty(count, dtype=np.float32)
    image.pixels.foreach_get(flat)
    rgba = np.ones((width * height, 4), dtype=np.float32)
    pixels = flat.reshape(-1, channels)
    if channels >= 3:
        rgba[:, : min(4, channels)] = pixels[:, :4]
    else:  # grey (+ alpha)
        rgba[:, :3] = pixels[:, :1]
        if channels == 2:
            rgba[:, 3] = pixels[:, 1]
    copy: Any = bpy.data.images.new(
        "hiptah-image-send", width, height, alpha=True, float_buffer=bool(image.is_float)
    )
    try:
        if image.is_float:
            copy.colorspace_settings.name = image.colorspace_settings.name
        copy.pixels.foreach_set(rgba.ravel())
        copy.filepath_raw = dest
        copy.file_format = "PNG"
        copy.save()
    finally:
        bpy.data.images.remove(copy)


# ---------------------------------------------------------------------- clean-up
def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def is_temp_image(path: str | None, folder: str) -> bool:
    """Only files this module made are ever deleted."""
    if not path:
        return False
    return os.path.basename(path).startswith(TEMP_PREFIX) and os.path.dirname(os.path.abspath(path)) == os.path.abspath(folder)


def sweep(folder: str, keep: Iterable[str]) -> int:
    """Delete our temporary images that no job needs any more (left by a crash)."""
    wanted = {os.path.abspath(p) for p in keep}
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        path = os.path.abspath(os.path.join(folder, name))
        if name.startswith(TEMP_PREFIX) and path not in wanted:
            remove_quietly(path)
            removed += 1
    return removed
