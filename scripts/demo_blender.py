#!/usr/bin/env python3
"""The end-to-end demo, driven from Python: sandbox -> headless Blender -> render.

    .venv/bin/python scripts/demo_blender.py "a medieval wooden cart with iron wheels"
        [--zip dist/hiptah_blender-...zip] [--latency 4] [--format glb] [--quality high] [--out out]

1. Starts the local sandbox (``sandbox.harness.SandboxServer``) with a few seconds of
   latency, so the job's timeline shows real queueing and polling.
2. Imports Blender (the bpy module) with a throw-away BLENDER_USER_RESOURCES, installs
   the extension from the built zip (``--zip``, as a user would) or, without one,
   enables it from this checkout, and puts the sandbox's URL and key in its preferences.
3. ``bpy.ops.hiptah.generate(prompt=..., wait=True)``, the scripting entry point.
4. Frames the model with a camera, a sun and a world colour, renders a small Cycles
   CPU preview and saves the scene: ``<out>/<slug>.png``, ``<out>/<slug>.blend`` and a
   copy of the downloaded model ``<out>/<slug>.<format>``.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def slug(text: str) -> str:
    return re.sub(r"[^\w]+", "_", text.lower()).strip("_")[:60] or "hiptah_model"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("prompt", nargs="?", default="a medieval wooden cart with iron wheels")
    p.add_argument("--zip", default="", help="extension zip to install (default: enable from the checkout)")
    p.add_argument("--latency", type=float, default=4.0, help="sandbox seconds per job (default 4)")
    p.add_argument("--format", default="glb", choices=["glb", "fbx", "usdz", "stl", "3mf"])
    p.add_argument("--quality", default="high", choices=["draft", "standard", "high"])
    p.add_argument("--out", default=str(ROOT / "out"), help="output folder (default out/)")
    p.add_argument("--samples", type=int, default=16)
    return p.parse_args(argv)


def install_extension(bpy: Any, zip_path: str) -> str:
    """Install + enable the add-on; returns its module name."""
    if zip_path:
        repos = bpy.context.preferences.extensions.repos
        repo = next(r for r in repos if r.module == "user_default")
        os.makedirs(repo.directory, exist_ok=True)
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        module = "bl_ext.user_default.hiptah_blender"
        how = f"installed from {zip_path}"
    else:
        addon_utils: Any = importlib.import_module("addon_utils")  # Blender's, typed loosely here
        sys.path.insert(0, str(ROOT))
        if addon_utils.enable("hiptah_blender", default_set=True) is None:
            raise SystemExit("demo: the add-on failed to register (see above)")
        module = "hiptah_blender"
        how = "enabled from the checkout (no zip given)"
    if module not in bpy.context.preferences.addons:
        raise SystemExit(f"demo: {module} is not enabled after installing")
    print(f"demo: extension {module} {how}")
    return module


def frame_and_light(bpy: Any, objects: list[Any]) -> None:
    from mathutils import Vector

    scene = bpy.context.scene
    points = [o.matrix_world @ Vector(c) for o in objects if o.type == "MESH" for c in o.bound_box]
    lo = Vector(tuple(min(p[i] for p in points) for i in range(3)))
    hi = Vector(tuple(max(p[i] for p in points) for i in range(3)))
    centre = (lo + hi) / 2
    size = max((hi - lo).length, 0.1)

    # A ground plane catches the shadow, so the model does not float.
    bpy.ops.mesh.primitive_plane_add(size=size * 8, location=(centre.x, centre.y, lo.z))
    ground = bpy.context.active_object
    ground.name = "Ground"
    mat = bpy.data.materials.new("Ground")
    mat.diffuse_color = (0.35, 0.35, 0.33, 1.0)
    if bpy.app.version < (5, 0, 0):  # node trees are always on from 5.0 (use_nodes is deprecated)
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (0.35, 0.35, 0.33, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.9
    ground.data.materials.append(mat)

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 50
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    direction = Vector((1.0, -1.25, 0.75)).normalized()
    # Distance so the bounding sphere fits the 50 mm lens' narrower (vertical) field of view.
    fov = 2 * math.atan(cam_data.sensor_width / 2 / cam_data.lens) * 360 / 480
    cam.location = centre + direction * (size / 2) / math.tan(fov / 2) * 1.15
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam

    sun_data = bpy.data.lights.new("Sun", type="SUN")
    sun_data.energy = 2.5
    sun_data.angle = math.radians(8)
    sun = bpy.data.objects.new("Sun", sun_data)
    sun.rotation_euler = (math.radians(50), math.radians(10), math.radians(35))
    scene.collection.objects.link(sun)

    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.42, 0.52, 0.65)
    if bpy.app.version < (5, 0, 0):
        world.use_nodes = True
    background = world.node_tree.nodes.get("Background") if world.node_tree else None
    if background is not None:
        background.inputs["Color"].default_value = (0.42, 0.52, 0.65, 1.0)
        background.inputs["Strength"].default_value = 0.8


def render(bpy: Any, png: Path, samples: int) -> float:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    try:
        import _cycles

        scene.cycles.use_denoising = bool(getattr(_cycles, "with_openimagedenoise", False))
    except ImportError:
        scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 480, 360
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(png)
    scene.view_settings.view_transform = "AgX" if "AgX" in _enum_ids(scene.view_settings, "view_transform") else "Filmic"
    start = time.monotonic()
    bpy.ops.render.render(write_still=True)
    return time.monotonic() - start


def _enum_ids(owner: Any, prop: str) -> set[str]:
    return {item.identifier for item in owner.bl_rna.properties[prop].enum_items}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hiptah-demo-bur-"))
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slug(args.prompt)
    png, blend = out_dir / f"{name}.png", out_dir / f"{name}.blend"

    sys.path.insert(0, str(ROOT))
    from sandbox.harness import SandboxServer

    print(f"demo: starting the sandbox (latency {args.latency:g} s)")
    with SandboxServer(latency=args.latency) as sb:
        print(f"demo: sandbox at {sb.base_url} (models: {sb.generator or 'default'})")
        # Imported only now (after BLENDER_USER_RESOURCES is set); driven dynamically.
        bpy: Any = importlib.import_module("bpy")
        module = install_extension(bpy, args.zip)
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.api_key = sb.api_key
        prefs.base_url = sb.base_url
        bpy.ops.wm.read_homefile(use_empty=True)

        print(f"demo: bpy.ops.hiptah.generate(prompt={args.prompt!r}, format={args.format!r}, wait=True)")
        start = time.monotonic()
        try:
            result = bpy.ops.hiptah.generate(
                prompt=args.prompt, format=args.format, quality=args.quality, wait=True
            )
        except RuntimeError as exc:  # an ERROR report: cause and fix
            print(f"demo: generation failed: {exc}", file=sys.stderr)
            return 1
        took = time.monotonic() - start
        runtime = sys.modules[module + ".blender.runtime"]
        record = runtime.peek().scheduler.jobs()[0]
        print(f"demo: {sorted(result)} in {took:.1f} s; job {record.job_id} -> {record.state.value}")
        print("demo: job timeline")
        t0 = record.timeline[0].at if record.timeline else record.created_at
        for entry in record.timeline:
            print(f"  +{entry.at - t0:6.2f} s  {entry.what}")
        for level, text in runtime.REPORTS:
            print(f"demo: report {level}: {text}")

        objects: list[Any] = list(bpy.data.collections["HiPtah"].all_objects)
        roots = [o for o in objects if o.parent is None]
        meshes = [o for o in objects if o.type == "MESH"]
        triangles = sum(sum(len(p.vertices) - 2 for p in o.data.polygons) for o in meshes)
        print(
            f"demo: imported {len(objects)} objects ({len(meshes)} meshes, {triangles} triangles) "
            f"into collection 'HiPtah'; top level: {', '.join(o.name for o in roots)}"
        )
        for root in roots:
            props = {k: v for k, v in root.items() if k.startswith("hiptah_")}
            print(f"demo: {root.name} custom properties: {props}")

        frame_and_light(bpy, objects)
        print(f"demo: rendering {png.name} (Cycles CPU, 480x360, {args.samples} samples)")
        seconds = render(bpy, png, args.samples)
        print(f"demo: rendered in {seconds:.1f} s")
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))

    # The download folder lives in the throw-away user resources: keep a copy beside the render.
    model_copy = out_dir / f"{name}.{record.format}"
    shutil.copyfile(record.file_path, model_copy)
    print(f"demo: model file  {model_copy}")
    print(f"demo: preview     {png}")
    print(f"demo: scene       {blend}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
