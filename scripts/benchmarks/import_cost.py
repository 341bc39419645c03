"""Figure 6: the add-on's import step vs a bare glTF import of the same ~100k-triangle GLB.

Full = ``importers.import_model`` (importer + HiPtah collection + placement at the 3D
cursor + names + provenance properties + selection); bare = ``bpy.ops.import_scene.gltf``.
Same file, same Blender, the scene reset (``read_homefile(use_empty=True)``) before every
import, the order alternating per run; one untimed warm-up of each first (the glTF
add-on's own first-use imports). The GLB is the sandbox generator's high-quality model
plus a UV sphere, to reach 100k triangles.

    python -m scripts.benchmarks.import_cost --runs 5 --triangles 100000
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from .stats import emit, median


def make_glb(path: str, triangles: int) -> int:
    """Write the test GLB; returns its triangle count."""
    import trimesh

    from sandbox.modelgen import generate_model

    scene: Any = trimesh.load(io.BytesIO(generate_model("a detailed stone statue", "glb", "high")), file_type="glb")
    have = sum(len(g.faces) for g in scene.geometry.values())
    if have < triangles:
        # trimesh's uv_sphere(count=[c, c]) has about 4c^2 triangles; grow until enough.
        count = max(8, math.ceil(math.sqrt((triangles - have) / 4)))
        sphere = trimesh.creation.uv_sphere(radius=0.4, count=[count, count])
        while have + len(sphere.faces) < triangles:
            count += 1
            sphere = trimesh.creation.uv_sphere(radius=0.4, count=[count, count])
        sphere.apply_translation([1.5, 0.0, 0.5])
        scene.add_geometry(sphere, node_name="bench_sphere")
    scene.export(path, file_type="glb")
    return int(sum(len(g.faces) for g in scene.geometry.values()))


def measure(runs: int, triangles: int) -> dict[str, Any]:
    import bpy

    from hiptah_blender.blender import importers
    from hiptah_blender.jobs.records import JobRecord

    folder = tempfile.mkdtemp(prefix="hiptah-bench-import-")
    path = os.path.join(folder, "bench.glb")
    tris = make_glb(path, triangles)
    record = JobRecord(prompt="a detailed stone statue", format="glb", quality="high", job_id="gen_bench")
    inner: list[float] = []
    real_gltf = importers.IMPORTERS["glb"]

    def timed_gltf(p: str, r: JobRecord) -> None:
        t0 = time.perf_counter()
        real_gltf(p, r)
        inner.append(time.perf_counter() - t0)

    def bare() -> None:
        bpy.ops.import_scene.gltf(filepath=path)

    def full() -> None:
        importers.import_model(bpy.context, path, "glb", record=record)

    def timed(fn: Callable[[], None]) -> float:
        bpy.ops.wm.read_homefile(use_empty=True)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    importers.IMPORTERS["glb"] = timed_gltf
    try:
        timed(bare)
        timed(full)
        inner.clear()
        bare_s: list[float] = []
        full_s: list[float] = []
        for i in range(runs):
            if i % 2 == 0:
                bare_s.append(timed(bare))
                full_s.append(timed(full))
            else:
                full_s.append(timed(full))
                bare_s.append(timed(bare))
        context: Any = bpy.context
        objects = len(context.scene.objects)
    finally:
        importers.IMPORTERS["glb"] = real_gltf
        os.unlink(path)
        os.rmdir(folder)
    arrange = [f - i for f, i in zip(full_s, inner, strict=True)]
    return {
        "runs": runs,
        "triangles": tris,
        "objects": objects,
        "bare_ms": median(bare_s) * 1000.0,
        "full_ms": median(full_s) * 1000.0,
        "ratio": median(full_s) / median(bare_s),
        "full_inner_ms": median(inner) * 1000.0,
        "arrange_ms": median(arrange) * 1000.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--triangles", type=int, default=100_000)
    ns = parser.parse_args()
    result = measure(ns.runs, ns.triangles)
    print(f"[import] {result}", flush=True)
    emit(result)


if __name__ == "__main__":
    main()
