"""The numpy fast path: uniform ``<vertices>``/``<triangles>`` blocks parsed over the raw bytes.

Blocks written in the usual uniform way (every element with the same
attributes in the same order, as every exporter does) are cut out of the XML
and parsed with numpy; the rest of the document goes through expat
(``threemf_parser.py``). Anything unusual is left in place for expat.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .threemf_mesh import IntArray

_WS = b" \t\r\n"
_WS_RUN = re.compile(rb"[ \t\r\n]*")
_BLOCK_OPEN = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)(vertices|triangles)((?:[ \t\r\n][^<>]*)?)>")
_ATTR_NAME = re.compile(rb"[ \t\r\n]+([A-Za-z_][\w.:-]*)[ \t\r\n]*=[ \t\r\n]*\"\"")


@dataclass
class _FastBlock:
    count: int
    columns: dict[str, npt.NDArray[Any]]


def _fast_block(
    body: bytes | bytearray,
    prefix: bytes,
    tag: bytes,
    allowed: frozenset[str],
    required: frozenset[str],
    dtype: type[np.float64] | type[np.int64],
) -> _FastBlock | None:
    """Parse a uniform run of ``<tag a="…" b="…"/>`` with numpy, or return None.

    Accepts only content that is unambiguously well-formed: every element has
    the same attributes in the same order and the same spacing, values are one
    token without '<', '&' or whitespace, no comments/CDATA/other elements.
    """
    if b"&" in body or b"'" in body:  # entity references / single quotes: generic path
        return None
    a = np.frombuffer(body, dtype=np.uint8)
    q = np.flatnonzero(a == 0x22)
    if q.size == 0:
        return _FastBlock(0, {}) if not body.strip(_WS) else None
    if q.size % 2:
        return None
    opens, closes = q[0::2], q[1::2]
    lengths = closes - opens - 1
    if lengths.min() < 1:  # empty value
        return None
    marks = np.zeros(a.size + 1, dtype=np.int8)
    marks[opens + 1] = 1
    marks[closes] = -1
    inside = np.cumsum(marks[:-1], dtype=np.int8).view(np.bool_)
    skel = a[~inside].tobytes()
    lead = _WS_RUN.match(skel)
    assert lead is not None
    tail = len(skel)
    while tail and skel[tail - 1] in _WS:
        tail -= 1
    end = skel.find(b"/>", lead.end())
    if end < 0:
        return None
    end += 2
    sep_m = _WS_RUN.match(skel, end)
    assert sep_m is not None
    core, sep = skel[lead.end() : end], skel[end : sep_m.end()]
    head = b"<" + prefix + tag
    if not core.startswith(head):
        return None
    attrs_txt = core[len(head) : -2].rstrip(_WS)
    names_b = _ATTR_NAME.findall(attrs_txt)
    if not names_b or b"".join(m.group(0) for m in _ATTR_NAME.finditer(attrs_txt)) != attrs_txt:
        return None
    names = [n.decode("ascii") for n in names_b]
    if len(set(names)) != len(names) or not set(names) <= allowed or not required <= set(names):
        return None
    k = len(names)
    if q.size % (2 * k):
        return None
    n = q.size // (2 * k)
    unit = core + sep
    if tail - lead.end() + len(sep) != len(unit) * n:
        return None
    if skel[lead.end() : tail] + sep != unit * n:
        return None
    # The skeleton is exact; now the values: '<' only in the skeleton, and only
    # digits (ints) or no whitespace (floats) inside the quotes.
    if body.count(b"<") != n:
        return None
    if dtype is np.int64:
        digits = b"0123456789"
        in_values = _count(body, digits) - _count(skel, digits)
        if in_values != int(lengths.sum()):
            return None
    elif _count(body, _WS) != _count(skel, _WS):
        return None
    if dtype is np.int64:
        nums = _parse_digit_runs(a, closes, lengths)
        if nums is None:
            return None
    else:
        text = np.where(inside, a, np.uint8(0x20)).tobytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                nums = np.fromstring(text, dtype=np.float64, sep=" ")  # type: ignore[call-overload]
            except (ValueError, DeprecationWarning, OverflowError):
                return None
        if nums.size != n * k:
            return None
    table = nums.reshape(n, k)
    return _FastBlock(n, {name: table[:, i] for i, name in enumerate(names)})


def _parse_digit_runs(
    a: npt.NDArray[np.uint8], closes: IntArray, lengths: IntArray
) -> IntArray | None:
    """Vectorised int() of runs of ASCII digits ending before ``closes``."""
    longest = int(lengths.max())
    if longest > 12:  # beyond any valid index; let the generic path report it
        return None
    out = np.zeros(len(closes), dtype=np.int64)
    power = 1
    for k in range(longest):
        digit = a[np.maximum(closes - 1 - k, 0)].astype(np.int64) - 0x30
        out += np.where(lengths > k, digit, 0) * power
        power *= 10
    return out


def _count(data: bytes | bytearray, chars: bytes) -> int:
    """How many bytes of ``data`` are in ``chars`` (one C pass)."""
    return len(data) - len(data.translate(None, chars))


_VERTEX_ATTRS = frozenset({"x", "y", "z"})
_TRIANGLE_ATTRS = frozenset({"v1", "v2", "v3", "p1", "p2", "p3", "pid"})
_TRIANGLE_REQUIRED = frozenset({"v1", "v2", "v3"})


def _cut_blocks(data: bytearray) -> tuple[bytes | bytearray, dict[int, _FastBlock]]:
    """Cut uniform <vertices>/<triangles> bodies out of ``data`` and parse them with numpy.

    Returns the remaining document and the parsed blocks keyed by the byte
    offset of their start tag in that remaining document.
    """
    pieces: list[bytes | bytearray] = []
    blocks: dict[int, _FastBlock] = {}
    pos = 0  # copied up to here
    out_len = 0
    search = 0
    while True:
        m = _BLOCK_OPEN.search(data, search)
        if m is None:
            break
        search = m.end()
        if m.group(0).endswith(b"/>"):
            continue
        prefix, tag = m.group(1), m.group(2)
        close = b"</" + prefix + tag
        end = data.find(close, m.end())
        if end < 0:
            break
        after = _WS_RUN.match(data, end + len(close))
        assert after is not None
        if data[after.end() : after.end() + 1] != b">":
            continue
        body = data[m.end() : end]
        if tag == b"vertices":
            block = _fast_block(body, prefix, b"vertex", _VERTEX_ATTRS, _VERTEX_ATTRS, np.float64)
        else:
            block = _fast_block(
                body, prefix, b"triangle", _TRIANGLE_ATTRS, _TRIANGLE_REQUIRED, np.int64
            )
        del body
        if block is None:
            continue
        pieces.append(data[pos : m.end()])
        out_len += m.end() - pos
        blocks[out_len - (m.end() - m.start())] = block
        pos = end
        search = end
    if not blocks:
        return data, {}
    pieces.append(data[pos:])
    return b"".join(pieces), blocks
