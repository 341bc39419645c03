"""The 3MF (OPC) package: the zip archive read in memory under the limits, and its start part.

No file is ever extracted and no name from the archive touches the filesystem;
sizes are checked before and while decompressing (total, per part, ratio).
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import IO

from .threemf_safety import (
    _LIMIT_HINT,
    ReadLimits,
    ThreeMFError,
    _new_parser,
    _parse_xml,
    _part_name,
    _unsafe_name,
)

RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
START_PART_TYPE = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
DEFAULT_MODEL_PART = "3D/3dmodel.model"
RELS_PART = "_rels/.rels"


class _Package:
    """The zip, read in memory under the limits."""

    def __init__(self, source: str | os.PathLike[str] | IO[bytes], limits: ReadLimits) -> None:
        self.limits = limits
        try:
            self.zf = zipfile.ZipFile(source)
        except OSError as exc:
            raise ThreeMFError(
                f"The 3MF file cannot be opened ({exc.strerror or exc}).",
                hint="Check the path and permissions; the download may have been moved or deleted.",
            ) from None
        except (zipfile.BadZipFile, EOFError, ValueError, struct.error, OverflowError) as exc:
            raise ThreeMFError(
                f"The file is not a valid 3MF package (not a readable zip archive: {exc}).",
                hint="A 3MF file is a zip archive; this one is damaged, truncated or of another type. Download it again.",
            ) from None
        infos = self.zf.infolist()
        if len(infos) > limits.max_members:
            raise ThreeMFError(
                f"The 3MF archive has {len(infos)} members (limit {limits.max_members}).",
                hint=_LIMIT_HINT,
            )
        self.members: dict[str, zipfile.ZipInfo] = {}
        lower: dict[str, list[str]] = {}
        total = 0
        for info in infos:
            name = info.filename
            if _unsafe_name(name):
                raise ThreeMFError(
                    f"The 3MF archive contains a member with an unsafe path: {name!r}.",
                    hint="Absolute paths, '..' and backslashes never occur in valid 3MF files; the file may be malicious.",
                )
            if name in self.members:
                raise ThreeMFError(f"The 3MF archive contains the member {name!r} twice.")
            self.members[name] = info
            lower.setdefault(name.lower(), []).append(name)
            total += info.file_size
        if total > limits.max_total_uncompressed:
            raise ThreeMFError(
                f"The 3MF archive would expand to {total / 2**20:.0f} MiB "
                f"(limit {limits.max_total_uncompressed / 2**20:.0f} MiB).",
                hint="This looks like a zip bomb or an extremely large model; it was not imported.",
            )
        self._lower = lower
        self._budget = limits.max_total_uncompressed

    def find(self, name: str) -> zipfile.ZipInfo | None:
        info = self.members.get(name)
        if info is None:  # OPC part names compare case-insensitively
            names = self._lower.get(name.lower(), [])
            if len(names) == 1:
                info = self.members[names[0]]
        return info

    def read(self, info: zipfile.ZipInfo, cap: int) -> bytearray:
        lim = self.limits
        name = info.filename
        if info.flag_bits & 0x1:
            raise ThreeMFError(
                f"The 3MF member {name!r} is encrypted.",
                hint="Encrypted 3MF files are not supported; export the model without encryption.",
            )
        size = info.file_size
        if size > cap:
            raise ThreeMFError(
                f"The 3MF part {name!r} is {size / 2**20:.0f} MiB (limit {cap / 2**20:.0f} MiB).",
                hint=_LIMIT_HINT,
            )
        if size >= lim.ratio_min_bytes and size > lim.max_ratio * max(info.compress_size, 1):
            raise ThreeMFError(
                f"The 3MF part {name!r} is compressed {size / max(info.compress_size, 1):.0f}:1, "
                f"which is suspicious (limit {lim.max_ratio:.0f}:1).",
                hint="This looks like a zip bomb; it was not imported.",
            )
        if size > self._budget:
            raise ThreeMFError(
                "The 3MF parts expand beyond the total size limit.",
                hint="This looks like a zip bomb or an extremely large model; it was not imported.",
            )
        buf = bytearray(size)
        view = memoryview(buf)
        pos = 0
        try:
            with self.zf.open(info) as fh:
                assert isinstance(fh, zipfile.ZipExtFile)
                while pos < size:
                    n = fh.readinto(view[pos : min(size, pos + (1 << 22))])
                    if not n:
                        break
                    pos += n
                if fh.read(1):  # more data than the directory declared
                    raise ThreeMFError(
                        f"The 3MF member {name!r} is larger than its declared size.",
                        hint="The archive is damaged or crafted to evade size checks; it was not imported.",
                    )
        except ThreeMFError:
            raise
        except NotImplementedError as exc:
            raise ThreeMFError(
                f"The 3MF member {name!r} uses an unsupported compression method ({exc}).",
                hint="Re-export the file with standard (deflate) compression.",
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
            raise ThreeMFError(
                f"The 3MF member {name!r} is corrupt ({exc}).",
                hint="The download may be truncated or damaged; download it again.",
            ) from None
        finally:
            view.release()
        if pos != size:
            raise ThreeMFError(
                f"The 3MF member {name!r} is truncated ({pos} of {size} bytes).",
                hint="The download may be incomplete; download it again.",
            )
        self._budget -= size
        return buf

    def start_part(self) -> str:
        rels = self.find(RELS_PART)
        if rels is not None:
            data = self.read(rels, self.limits.max_small_part_bytes)
            targets: list[str] = []

            def start(name: str, attrs: dict[str, str]) -> None:
                if (
                    name == f"{RELS_NS} Relationship"
                    and attrs.get("Type", "").strip() == START_PART_TYPE
                    and attrs.get("TargetMode", "Internal") == "Internal"
                    and "Target" in attrs
                ):
                    targets.append(attrs["Target"])

            parser = _new_parser()
            parser.StartElementHandler = start
            _parse_xml(RELS_PART, data, parser)
            for target in targets:
                name = _part_name(target, "package relationships")
                if self.find(name) is not None:
                    return name
        if self.find(DEFAULT_MODEL_PART) is not None:
            return DEFAULT_MODEL_PART
        raise ThreeMFError(
            "The 3MF package has no 3D model part (no StartPart relationship and no 3D/3dmodel.model).",
        )
