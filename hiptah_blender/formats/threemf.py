"""A safe, pure-Python 3MF reader (stdlib + numpy; no bpy, no lxml).

What it reads (3MF core spec 1.3, plus parts of the materials and production
extensions):

* the OPC package: ``_rels/.rels`` StartPart relationship (falling back to
  ``3D/3dmodel.model``), and further model parts referenced with the production
  extension's ``p:path`` attribute;
* ``<model unit=...>`` (micron, millimeter, centimeter, inch, foot, meter);
* ``<basematerials>``/``<base displaycolor>`` and ``<m:colorgroup>``/``<m:color>``;
  other property groups (textures, composites, multiproperties) are accepted
  but give no colour;
* ``<object>`` with ``<mesh>`` or ``<components>``, object ``pid``/``pindex``
  and per-triangle ``pid``/``p1`` overrides (``p2``/``p3`` are ignored: one
  material per triangle);
* ``<build><item objectid transform>``.

Output: one :class:`ThreeMFMesh` per build item. Components are resolved
recursively and merged into the item's mesh. **Vertices are in metres with the
full world transform (components, build item, unit) already applied**, so a
Blender object built from it needs an identity matrix; this keeps shears and
non-uniform scales of nested components exact, which an object matrix could
not. When a transform mirrors (negative determinant) the triangle winding is
reversed so normals keep pointing outwards.

Safety: the file is only ever read in memory (no extraction, no file names
from the archive touch the filesystem); member names with absolute paths,
``..`` segments, backslashes or drive letters are refused; sizes are checked
before and while decompressing (total, per part, compression ratio); XML with
a DOCTYPE, entity declarations or external entities is refused; vertex,
triangle, object and material counts are capped (see :class:`ReadLimits`);
every reference (objects, property groups, indices) is checked; component
cycles and non-finite numbers are errors. Every failure is a
:class:`ThreeMFError` with a message and a hint.

Speed: ``<vertices>`` and ``<triangles>`` blocks written in the usual uniform
way (every element with the same attributes in the same order, as every
exporter does) are parsed with numpy over the raw bytes; the rest of the
document (with those blocks cut out) goes through expat. Anything unusual falls
back to a full expat parse with the same results.

This module is the entry point (``read_3mf``) and re-exports the public names;
the reader's parts are ``threemf_safety.py`` (error type, limits, safe XML and
part names), ``threemf_package.py`` (the zip, read under the limits),
``threemf_fastpath.py`` (numpy parsing of uniform blocks), ``threemf_model.py``
(what a model part holds, attribute readers), ``threemf_parser.py`` (expat
handlers for one part), ``threemf_build.py`` (build items, components,
transforms, materials, merging) and ``threemf_mesh.py`` (the output types).
"""

from __future__ import annotations

import os
from typing import IO

from .threemf_build import _Reader
from .threemf_mesh import DEFAULT_MATERIAL, FloatArray, IntArray, ThreeMFMaterial, ThreeMFMesh
from .threemf_model import CORE_NS, MATERIAL_NS, PRODUCTION_NS, UNITS, parse_color, parse_transform
from .threemf_package import DEFAULT_MODEL_PART, RELS_NS, RELS_PART, START_PART_TYPE, _Package
from .threemf_safety import _LIMIT_HINT, DEFAULT_LIMITS, ReadLimits, ThreeMFError


def read_3mf(
    source: str | os.PathLike[str] | IO[bytes], *, limits: ReadLimits = DEFAULT_LIMITS
) -> list[ThreeMFMesh]:
    """Read a 3MF file (path or binary file object) into one mesh per build item.

    Raises :class:`ThreeMFError` for every problem with the file.
    """
    pkg = _Package(source, limits)
    try:
        return _Reader(pkg, limits).read()
    except ThreeMFError:
        raise
    except MemoryError:
        raise ThreeMFError(
            "Ran out of memory while reading the 3MF file.", hint=_LIMIT_HINT
        ) from None
    except RecursionError:
        raise ThreeMFError("The 3MF file is nested too deeply.") from None
    finally:
        pkg.zf.close()


__all__ = [
    "CORE_NS",
    "DEFAULT_LIMITS",
    "DEFAULT_MATERIAL",
    "DEFAULT_MODEL_PART",
    "MATERIAL_NS",
    "PRODUCTION_NS",
    "RELS_NS",
    "RELS_PART",
    "START_PART_TYPE",
    "UNITS",
    "FloatArray",
    "IntArray",
    "ReadLimits",
    "ThreeMFError",
    "ThreeMFMaterial",
    "ThreeMFMesh",
    "parse_color",
    "parse_transform",
    "read_3mf",
]
