#!/usr/bin/env python3
"""Measure the add-on's speed (issue 7) and print a markdown table.

    .venv/bin/python scripts/bench.py            # full run (about 8 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick    # smoke run (about 1.5 minutes)
    .venv/bin/python scripts/bench.py --only tick,download --json out.json
    .venv/bin/python scripts/bench.py --only ui   # real Blender UI (issue 11): ~4 min, needs the UI root

Every figure comes from a fresh interpreter running one ``scripts/benchmarks/`` module against its
own sandbox, with a temporary BLENDER_USER_RESOURCES. Figures are medians over repeated
runs, comparisons are ratios measured in the same run. Nothing here fails on timing:
the "met" column reports, it never asserts. What each figure means: docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.benchmarks.proc import run_module  # noqa: E402
from scripts.benchmarks.stats import markdown_table  # noqa: E402

PIECES = ("tick", "detect", "download", "batch", "extension", "import", "ui", "farm")

# Module and arguments per piece: (full run, --quick run).
PLAN: dict[str, tuple[str, list[str], list[str]]] = {
    "tick": ("scripts.benchmarks.monitor_tick", ["--sizes", "1,10,30,100", "--seconds", "15", "--rounds", "3"],
             ["--sizes", "1,10,30,100", "--seconds", "3", "--rounds", "1"]),
    "detect": ("scripts.benchmarks.detection", ["--jobs", "12", "--rounds", "3"], ["--jobs", "6", "--rounds", "1"]),
    "download": ("scripts.benchmarks.download", ["--sizes", "20,200", "--runs", "5"], ["--sizes", "20,200", "--runs", "1"]),
    "batch": ("scripts.benchmarks.batch", ["--jobs", "60", "--concurrency", "10", "--seconds", "10", "--rounds", "3"],
              ["--jobs", "60", "--concurrency", "10", "--seconds", "2", "--rounds", "1"]),
    "extension": ("scripts.benchmarks.extension", ["--runs", "5"], ["--runs", "1"]),
    "import": ("scripts.benchmarks.import_cost", ["--runs", "7"], ["--runs", "2"]),
    # Needs the UI root (scripts/ui_env.sh); prints why and skips the figure without it.
    "ui": ("scripts.benchmarks.ui_responsiveness", ["--rounds", "5"], ["--rounds", "1"]),
    # Figure 8 (issue 17): where one machine runs out (docs/farm.md).
    "farm": ("scripts.benchmarks.farm_throughput", ["--jobs", "24", "--rounds", "2"], ["--jobs", "6", "--rounds", "1"]),
}


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def rows_tick(r: dict[str, Any]) -> list[list[str]]:
    first = r["first_batch"]
    rows = [[
        "1", f"monitor tick, session's first {int(first['jobs'])} jobs (thread pool start-up): max",
        f"{first['max_ms']:.2f} ms", "-", "-",
    ]]
    for n, fig in r["sizes"].items():
        s = fig["step"]
        target, met = "-", "-"
        if n == "30":
            target = "p99 < 2 ms, max < 16 ms"
            met = yes(s["p99"] < 2.0 and s["max"] < 16.0)
        c = fig["cpu"]
        rows.append([
            "1", f"monitor tick, {n} jobs in flight: wall (CPU) median / p99 / max, {int(s['n'])} ticks",
            f"{s['median']:.2f} / {s['p99']:.2f} / {s['max']:.2f} ms "
            f"({c['median']:.2f} / {c['p99']:.2f} / {c['max']:.2f})", target, met,
        ])
    return rows


def rows_detect(r: dict[str, Any]) -> list[list[str]]:
    interval = r["poll_interval"]
    return [
        ["2", f"detection delay, {r['jobs']} jobs of 3-6 s (median / max)",
         f"{r['delay_median']:.2f} / {r['delay_max']:.2f} s", f"median < {interval:g} s (poll interval)",
         yes(r["delay_median"] < interval)],
        ["2", "polls per job (median / max); above the minimum (max)",
         f"{r['polls_median']:g} / {r['polls_max']}; +{r['extra_polls_max']}", "within 2 of the minimum",
         yes(r["extra_polls_max"] <= 2)],
    ]


def rows_download(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for size, fig in r["sizes"].items():
        mb = float(size)
        rows.append([
            "3", f"download {mb:g} MB: client vs curl (median of {r['runs']})",
            f"{fig['client_mb_s']:.0f} vs {fig['curl_mb_s']:.0f} MB/s = {fig['ratio']:.2f}x"
            f" (fsync {fig['fsync_s'] * 1000:.0f} of {fig['client_s'] * 1000:.0f} ms)",
            ">= 0.8x curl" if mb >= 200 else "-", yes(fig["ratio"] >= 0.8) if mb >= 200 else "-",
        ])
    for size, fig in r["sizes"].items():
        rows.append([
            "3", f"download {float(size):g} MB: peak RSS growth (median / max)",
            f"{fig['rss_growth_mb']:.1f} / {fig['rss_growth_max_mb']:.1f} MB", "< 32 MB",
            yes(fig["rss_growth_max_mb"] < 32.0),
        ])
    return rows


def rows_batch(r: dict[str, Any]) -> list[list[str]]:
    return [["4", f"batch: {r['jobs']} jobs x {r['T']:g} s at concurrency {r['concurrency']} (median of {r['rounds']})",
             f"{r['wall_median']:.1f} s vs ideal {r['ideal']:.0f} s = {r['ratio']:.3f}x", "<= 1.15x",
             yes(r["ratio"] <= 1.15)]]


def rows_extension(r: dict[str, Any]) -> list[list[str]]:
    return [
        ["5", f"enable extension vs minimal one (median of {r['runs']})",
         f"{r['enable_ms']:.0f} vs {r['minimal_enable_ms']:.0f} ms = +{r['extra_ms']:.0f} ms",
         "< +150 ms", yes(r["extra_ms"] < 150.0)],
        ["5", "enable, first start after install (no __pycache__ yet)",
         f"{r['cold_enable_ms']:.0f} ms = +{r['cold_extra_ms']:.0f} ms", "-", "-"],
        ["5", "module import at enable (add-on vs minimal)",
         f"{r['import_ms']:.0f} vs {r['minimal_import_ms']:.1f} ms", "-", "-"],
        ["5", "pydantic / requests / keyring imported by enable",
         " / ".join("yes" if r.get(f"{m}_at_enable") else "no" for m in ("pydantic", "requests", "keyring")),
         "no / no / no",
         yes(not any(r.get(f"{m}_at_enable") for m in ("pydantic", "requests", "keyring")))],
    ]


def rows_import(r: dict[str, Any]) -> list[list[str]]:
    return [["6", f"import {r['triangles'] // 1000}k-triangle GLB: add-on vs bare glTF (median of {r['runs']})",
             f"{r['full_ms']:.0f} vs {r['bare_ms']:.0f} ms = {r['ratio']:.2f}x "
             f"(placement etc. {r['arrange_ms']:.1f} ms)", "<= 1.1x", yes(r["ratio"] <= 1.1)],
            ["6", f"save it to the asset library: main thread, median / max of {r['runs']} "
             f"({r['asset_file_mb']:.1f} MB .blend; flush + rename off-thread: {r['finish_off_thread_ms']:.0f} ms)",
             f"{r['save_ms']:.1f} / {r['save_max_ms']:.1f} ms", "< 50 ms", yes(r["save_max_ms"] < 50)]]


def _pmm(s: dict[str, float] | None, digits: int = 1) -> str:
    if not s:
        return "-"
    return f"{s['median']:.{digits}f} / {s['p99']:.{digits}f} / {s['max']:.{digits}f}"


def rows_farm(r: dict[str, Any]) -> list[list[str]]:
    rows = []
    for case, c in r["cases"].items():
        model, previews = case.split("/")
        what = f"{c['triangles'] // 1000}k-triangle GLB" if model == "101k" else (
            f"typical sandbox model ({c['triangles'] // 1000}k triangles)")
        steps = "download, import, preview, library write" if previews == "previews" else (
            "download, import, library write")
        rows.append(["8", f"one batch process, {what}, {previews.replace('-', ' ')}: jobs/s "
                          f"({steps}; {r['jobs']} jobs, median of {r['rounds']})",
                     f"{c['jobs_per_s']:.2f} jobs/s ({c['s_per_job']:.2f} s a job): outgrown at "
                     f"{c['outgrown_at_concurrency']:.0f} concurrent {r['job_seconds']:g} s jobs", "-", "-"])
    return rows


def rows_ui(r: dict[str, Any]) -> list[list[str]]:
    if "skipped" in r:
        return [["7", "UI responsiveness in a real Blender event loop", f"skipped: {r['skipped']}", "-", "-"]]
    base, listed, load, imp = r["baseline"], r["listed"], r["load"], r["imports"]
    rounds = f"{r['n_rounds']} round{'s' if r['n_rounds'] != 1 else ''}"
    what_if = f" [what-if {r['what_if']}: not the add-on as shipped]" if r.get("what_if") else ""
    delta = r["p99_delta_ms"]
    rows = [
        ["7", f"main-loop gap (10 ms heartbeat), baseline: no jobs, sidebar redrawn at the monitor's rate "
              f"({rounds} x {statistics.mean(r['load_s']):.0f} s): p50 / p99 / max, {int(base['gaps']['n'])} gaps"
              + what_if,
         f"{_pmm(base['gaps'])} ms", "-", "-"],
        ["7", f"main-loop gap, {r['jobs']} jobs running until imported (imports excluded): "
              f"p50 / p99 / max, {int(load['gaps']['n'])} gaps",
         f"{_pmm(load['gaps'])} ms", "-", "-"],
        ["7", "p99 gap, load minus baseline (p50 in brackets)",
         f"{delta:+.1f} ms ({r['p50_delta_ms']:+.2f})", "< +2 ms", yes(delta < 2.0)],
        ["7", "same gaps, main thread's CPU time only (no waiting for a CPU): p99 baseline vs load",
         f"{base['gaps_main_cpu']['p99']:.2f} vs {load['gaps_main_cpu']['p99']:.2f} ms = "
         f"{r['p99_cpu_delta_ms']:+.2f} ms", "< +2 ms", yes(r["p99_cpu_delta_ms"] < 2.0)],
        ["7", f"imports (main thread by design): {imp['n']}; import median / max; gaps holding one: median / max",
         (f"{imp['import_job']['median']:.0f} / {imp['import_job']['max']:.0f} ms; "
          f"{imp['gaps']['median']:.0f} / {imp['gaps']['max']:.0f} ms ({imp['gaps']['n']:.0f} gaps)")
         if imp["import_job"] and imp["gaps"] else "-", "-", "-"],
        ["7", "monitor step inside Blender, outside imports: wall (CPU) p50 / p99 / max",
         f"{_pmm(r['step'], 2)} ms ({_pmm(r['step_cpu'], 2)})", "-", "-"],
        ["7", "gaps with a sidebar redraw: p50 / p99, baseline vs 10 finished jobs listed vs load",
         f"{base['redraw']['median']:.0f} / {base['redraw']['p99']:.0f} vs "
         f"{listed['redraw']['median']:.0f} / {listed['redraw']['p99']:.0f} vs "
         f"{load['redraw']['median']:.0f} / {load['redraw']['p99']:.0f} ms"
         if base["redraw"] and listed["redraw"] and load["redraw"] else "-", "-", "-"],
        ["7", "CPUs busy (all Blender threads; the local sandbox), baseline vs load",
         f"{base.get('blender_cpus', 0):.2f}; {base.get('sandbox_cpus', 0):.2f} vs "
         f"{load.get('blender_cpus', 0):.2f}; {load.get('sandbox_cpus', 0):.2f}", "-", "-"],
        ["7", "gaps without a redraw: p99 / max, baseline vs load",
         f"{base['quiet']['p99']:.1f} / {base['quiet']['max']:.1f} vs {load['quiet']['p99']:.1f} / "
         f"{load['quiet']['max']:.1f} ms" if base["quiet"] and load["quiet"] else "-", "-", "-"],
    ]
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[list[str]]]] = {
    "tick": rows_tick, "detect": rows_detect, "download": rows_download,
    "batch": rows_batch, "extension": rows_extension, "import": rows_import, "ui": rows_ui,
    "farm": rows_farm,
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def run(pieces: list[str], quick: bool) -> tuple[dict[str, Any], str]:
    results: dict[str, Any] = {}
    started = time.monotonic()
    for piece in pieces:
        module, full_args, quick_args = PLAN[piece]
        t0 = time.monotonic()
        print(f"== {piece} ({module})", file=sys.stderr, flush=True)
        results[piece] = run_module(module, quick_args if quick else full_args)
        results[piece]["_seconds"] = time.monotonic() - t0
    duration = time.monotonic() - started
    rows = [row for piece in pieces for row in ROWS[piece](results[piece])]
    table = markdown_table(["#", "figure", "measured", "target", "met"], rows)
    header = (
        f"{'Quick' if quick else 'Full'} run {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{duration / 60:.1f} min; {machine()}"
    )
    pressure = results.get("tick", {}).get("cpu_pressure")
    if pressure is not None:
        header += f"; CPU pressure (PSI some, 5 min) at the end of the tick figures: {pressure:.0f}%"
    results["_meta"] = {"quick": quick, "duration_s": duration, "machine": machine(), "header": header}
    return results, header + "\n\n" + table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small samples: a smoke run in under 3 minutes")
    parser.add_argument("--only", default=",".join(PIECES), help=f"comma-separated subset of {', '.join(PIECES)}")
    parser.add_argument("--json", type=Path, default=None, help="also write every raw figure here")
    ns = parser.parse_args(argv)
    pieces = [p.strip() for p in ns.only.split(",") if p.strip()]
    unknown = [p for p in pieces if p not in PLAN]
    if unknown:
        parser.error(f"unknown piece(s) {unknown}; choose from {', '.join(PIECES)}")
    results, report = run(pieces, ns.quick)
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
