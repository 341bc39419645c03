"""scripts/bench.py still runs: the cheapest pieces with tiny sizes, figures produced.

Asserts only that figures exist and are sane numbers, never their values (timing on a
shared machine is not a test).
"""

from __future__ import annotations

import math
import shutil

import pytest

from bench.proc import run_module
from bench.stats import markdown_table, percentile, summary
from scripts import bench as bench_cli


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def test_stats_helpers() -> None:
    assert percentile([1.0, 2.0, 3.0], 99) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert summary([1.0, 3.0])["median"] == 2.0
    assert markdown_table(["a", "b"], [["1", "2"]]).splitlines()[1] == "|---|---|"


@pytest.mark.slow
def test_batch_piece_runs() -> None:
    result = run_module("bench.batch", ["--jobs", "4", "--concurrency", "2", "--seconds", "1", "--rounds", "1"],
                        timeout=120)
    assert _finite(result["wall_median"]) and _finite(result["ratio"])
    (row,) = bench_cli.rows_batch(result)
    assert "ideal" in row[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_download_piece_runs() -> None:
    result = run_module("bench.download", ["--sizes", "1", "--runs", "1"], timeout=120)
    fig = result["sizes"]["1.0"]
    assert fig["bytes"] >= 2**20
    assert all(_finite(fig[k]) for k in ("client_mb_s", "curl_mb_s", "ratio", "rss_growth_mb"))
    table = markdown_table(["#", "figure", "measured", "target", "met"], bench_cli.rows_download(result))
    assert "MB/s" in table
