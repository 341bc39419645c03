"""Measurement helpers for scripts/bench.py (issue 7). Dev tooling: never shipped.

Each module measures one figure and can run as ``python -m bench.<name> --json``
in a fresh interpreter (bpy pieces need their own process: a clean Blender state,
a temporary BLENDER_USER_RESOURCES); the last stdout line is ``BENCH_RESULT=<json>``.
"""
