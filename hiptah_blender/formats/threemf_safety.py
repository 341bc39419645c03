"""3MF reading safety: the error type, the size/count limits, a DTD-free XML parser, safe part names.

No third-party imports. Every failure of the reader is a :class:`ThreeMFError`
with a message and a hint; :class:`ReadLimits` caps what a file may make the
reader do; XML with a DOCTYPE, entity declarations or external entities is
refused; archive member and part names that could escape (absolute, ``..``,
backslashes, drive letters) are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.parsers import expat

from ..client.errors import HiptahError
from ..i18n import N_

_GENERIC_HINT = N_(
    "The file may be damaged or not a 3MF model; download it again or re-export it "
    "from the program that made it."
)
_LIMIT_HINT = N_(
    "The file exceeds the importer's safety limits; if you trust it, simplify or split "
    "the model and try again."
)


class ThreeMFError(HiptahError):
    """The 3MF file cannot be read (corrupt, unsafe, unsupported or over a limit)."""

    default_message = "The 3MF file could not be read."
    hint = _GENERIC_HINT


@dataclass(frozen=True)
class ReadLimits:
    """Safety limits; the defaults allow any realistic model."""

    max_total_uncompressed: int = 1 << 30  # sum of all members' declared sizes
    max_part_bytes: int = 1 << 30  # one model part (XML)
    max_small_part_bytes: int = 4 << 20  # relationships / content types
    max_ratio: float = 200.0  # uncompressed / compressed size ...
    ratio_min_bytes: int = 1 << 20  # ... checked for members at least this big
    max_members: int = 10_000
    max_vertices: int = 50_000_000  # total in the output (after instancing)
    max_triangles: int = 50_000_000
    max_objects: int = 1_000_000
    max_build_items: int = 100_000
    max_component_depth: int = 64
    max_materials: int = 4_096  # distinct materials per output mesh


DEFAULT_LIMITS = ReadLimits()


# --------------------------------------------------------------------------- XML safety


def _refuse_dtd(*_args: object) -> None:
    raise ThreeMFError(
        "The 3MF file contains an XML DOCTYPE or entity declaration, which is not allowed.",
        hint="3MF files never need DTDs; this file may be malicious (entity expansion attack).",
    )


def _refuse_external(*_args: object) -> int:
    _refuse_dtd()
    return 0


def _new_parser() -> Any:
    """An expat parser with namespaces and every DTD feature refused."""
    p = expat.ParserCreate(namespace_separator=" ")
    p.StartDoctypeDeclHandler = _refuse_dtd
    p.EntityDeclHandler = _refuse_dtd
    p.UnparsedEntityDeclHandler = _refuse_dtd
    p.NotationDeclHandler = _refuse_dtd
    p.ExternalEntityRefHandler = _refuse_external
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True
    return p


def _xml_error(part: str, exc: expat.ExpatError) -> ThreeMFError:
    return ThreeMFError(
        f"The 3MF part {part!r} is not well-formed XML ({expat.ErrorString(exc.code)} "
        f"at line {exc.lineno}, column {exc.offset}).",
    )


def _parse_xml(part: str, data: bytes | bytearray, parser: Any) -> None:
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _xml_error(part, exc) from None
    except RecursionError:
        raise ThreeMFError(f"The 3MF part {part!r} is nested too deeply.") from None



# --------------------------------------------------------------------------- part names


_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> bool:
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return True
    if _DRIVE.match(name):
        return True
    return any(seg in ("..", ".") for seg in name.split("/"))


def _part_name(target: str, where: str) -> str:
    """Normalise an OPC part reference ("/3D/x.model", "3D/x.model", percent-encoded)."""
    name = unquote(target.strip()).lstrip("/")
    if _unsafe_name(name) or name.endswith("/"):
        raise ThreeMFError(
            f"The 3MF file refers to an unsafe or invalid part name {target!r} ({where}).",
            hint="The file may be malicious or damaged; it was not imported.",
        )
    return name
