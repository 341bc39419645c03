"""Figure 6: the add-on's import step vs a bare glTF import of the same ~100k-triangle GLB,
and what saving it to the personal asset library adds to the main thread.

Full = ``importers.import_model`` (importer + HiPtah collection + placement at the 3D
cursor + names + provenance properties + selection); bare = ``bpy.ops.import_scene.gltf``.
Same file, same Blender, the scene reset (``read_homefile(use_empty=True)``) before every
import, the order alternating per run; one untimed warm-up of each first (the glTF
add-on's own first-use imports). The GLB is the sandbox generator's high-quality model
plus a UV sphere, to reach 100k triangles.

Save = the main-thread part of ``library.write_asset_file`` as a UI Blender runs it after
an import (asset collection, metadata, the worker's thumbnail as preview,
``bpy.data.libraries.write`` of the model's data-blocks to a ``.part`` file); finish =
the flush and rename (plus, on Blender 5.0+, the background Blender that adds the
preview), which the UI runs on a worker thread: reported, not on the main thread.

    python -m scripts.benchmarks.import_cost --runs 5 --triangles 100000
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
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
        importers.IMPORTERS["glb"] = real_gltf
        save_s, finish_s, size = measure_save(runs, folder, path, record)
    finally:
        importers.IMPORTERS["glb"] = real_gltf
        os.unlink(path)
        shutil.rmtree(folder, ignore_errors=True)
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
        "save_ms": median(save_s) * 1000.0,
        "save_max_ms": max(save_s) * 1000.0,
        "finish_off_thread_ms": median(finish_s) * 1000.0,
        "asset_file_mb": size / 1e6,
    }


def measure_save(runs: int, folder: str, path: str, record: Any) -> tuple[list[float], list[float], int]:
    """Main-thread and off-thread seconds of saving the imported model as an asset."""
    import bpy

    from hiptah_blender import thumbnail
    from hiptah_blender.blender import importers, library, previews

    library_dir = os.path.join(folder, "library")
    main_s: list[float] = []
    finish_s: list[float] = []
    size = 0
    for _ in range(runs + 1):  # the first is a warm-up
        bpy.ops.wm.read_homefile(use_empty=True)
        roots = importers.import_model(bpy.context, path, "glb", record=record)
        objects = [o for r in roots for o in (r, *r.children_recursive)]
        geometry = previews.copy_geometry(roots)
        pixels = thumbnail.render_polygons(*geometry) if geometry is not None else None  # the worker's part
        item = library.LibraryItem("gen_bench", record.prompt, "glb", "high", "gen_bench", path, time.time())
        later: list[Callable[[], None]] = []
        t0 = time.perf_counter()
        final = library.write_asset_file(
            library_dir, objects, item, anchor=(0.0, 0.0, 0.0),
            preview=(thumbnail.SIZE, pixels) if pixels is not None else None, finish=later.append,
        )
        main_s.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        for work in later:
            work()
        finish_s.append(time.perf_counter() - t1)
        size = os.path.getsize(final)
    return main_s[1:], finish_s[1:], size


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
