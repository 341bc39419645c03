"""scripts/bench.py still runs: the cheapest pieces with tiny sizes, figures produced.

Asserts only that figures exist and are sane numbers, never their values (timing on a
shared machine is not a test).
"""

from __future__ import annotations

import math
import shutil

import pytest

from scripts import bench as bench_cli
from scripts.benchmarks.proc import run_module
from scripts.benchmarks.stats import markdown_table, percentile, summary


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def test_stats_helpers() -> None:
    assert percentile([1.0, 2.0, 3.0], 99) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert summary([1.0, 3.0])["median"] == 2.0
    assert markdown_table(["a", "b"], [["1", "2"]]).splitlines()[1] == "|---|---|"


@pytest.mark.slow
def test_batch_piece_runs() -> None:
    result = run_module("scripts.benchmarks.batch", ["--jobs", "4", "--concurrency", "2", "--seconds", "1", "--rounds", "1"],
                        timeout=120)
    assert _finite(result["wall_median"]) and _finite(result["ratio"])
    (row,) = bench_cli.rows_batch(result)
    assert "ideal" in row[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_download_piece_runs() -> None:
    result = run_module("scripts.benchmarks.download", ["--sizes", "1", "--runs", "1"], timeout=120)
    fig = result["sizes"]["1.0"]
    assert fig["bytes"] >= 2**20
    assert all(_finite(fig[k]) for k in ("client_mb_s", "curl_mb_s", "ratio", "rss_growth_mb"))
    table = markdown_table(["#", "figure", "measured", "target", "met"], bench_cli.rows_download(result))
    assert "MB/s" in table


def _window(beats: list[float], *, draws: list[float] = (), imports: list[float] = (),
            steps: list[float] = ()) -> dict[str, object]:
    """A heartbeat window as scripts/benchmarks/ui_responsiveness.py collects it inside Blender."""
    return {
        "beats": [[t, t / 2, t] for t in beats],
        "polls": [[beats[1] + 0.001, beats[1] + 0.002]],
        "imports": [[t, t + 0.1] for t in imports],
        "import_jobs": [[t, t + 0.12] for t in imports],
        "steps": [[t, t + 0.0002, 0.0001] for t in steps],
        "draws": [[t, t + 0.0005, 0.0005] for t in draws],
        "vp": [],
        "redraws": len(draws),
    }


def test_ui_figures_and_rows_without_blender() -> None:
    """The ui figure's arithmetic and rows on synthetic samples (the run itself needs the
    UI root: test_ui_piece_runs)."""
    from scripts.benchmarks import ui_responsiveness as ui

    beats = [i * 0.01 for i in range(400)]
    beats[200:] = [t + 0.5 for t in beats[200:]]  # one 0.51 s gap: the import below
    parts = ui.classify(_window(beats, draws=[0.305], imports=[1.995]))
    assert len(parts["import"]) == 1 and parts["import"][0][0] > 500
    assert len(parts["poll"]) == 1 and len(parts["redraw"]) == 1
    assert len(parts["clean"]) == len(parts["quiet"]) + 1 == len(beats) - 3

    rnd = {"load_s": 4.0, "queue": {"queue_ms": 12.0, "outcomes": [["FINISHED"]]},
           "final_states": ["imported"], "left_after_clean": [], "settle_s": [0.1, 0.1],
           "load": _window(beats, draws=[0.305, 0.905], imports=[1.995], steps=[0.6, 1.995]),
           "listed": _window(beats[:200], draws=[0.305]), "baseline": _window(beats[:200], draws=[0.305])}
    figures = ui.figures({"rounds": [rnd], "latency": 5.0, "jobs": 1})
    assert figures["imports"]["n"] == 1 and figures["step"]["n"] == 1  # the importing step is apart
    assert _finite(figures["load"]["gaps"]["p99"]) and _finite(figures["p99_delta_ms"] + 1000)
    rows = bench_cli.rows_ui(figures)
    assert any("imports" in row[1] for row in rows) and any(row[3] == "< +2 ms" for row in rows)
    (skipped,) = bench_cli.rows_ui({"skipped": "no UI root here"})
    assert "skipped: no UI root here" in skipped[2]


@pytest.mark.slow
def test_ui_piece_runs() -> None:
    from tests.ui.driver.session import ui_env_problem

    problem = ui_env_problem()
    if problem is not None:
        pytest.skip(f"needs the UI root: {problem}")
    result = run_module("scripts.benchmarks.ui_responsiveness", ["--rounds", "1"], timeout=900)
    assert result["imported"] == result["jobs"]
    assert all(_finite(result[w]["gaps"]["p99"]) for w in ("baseline", "listed", "load"))
    assert len(bench_cli.rows_ui(result)) >= 3


@pytest.mark.slow
def test_farm_piece_runs() -> None:
    result = run_module("scripts.benchmarks.farm_throughput", ["--jobs", "2", "--rounds", "1", "--triangles", "20000"],
                        timeout=600)
    assert set(result["cases"]) == {"typical/no-previews", "typical/previews", "101k/no-previews", "101k/previews"}
    for case in result["cases"].values():
        assert _finite(case["jobs_per_s"]) and _finite(case["outgrown_at_concurrency"])
    assert len(bench_cli.rows_farm(result)) == 4
