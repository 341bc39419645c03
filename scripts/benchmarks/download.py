"""Figure 3: model download through HiptahClient.download vs curl on loopback.

Each client download runs in a fresh interpreter (``--child``) so its memory figure
is not flattered or spoiled by earlier runs: RSS is sampled every 2 ms in a thread
(psutil) and the growth is peak minus the RSS just before the download, after the
imports and the client exist. curl's own ``%{time_total}`` is its figure; both exclude
process start-up. Client and curl runs alternate, so drift on a noisy machine hits both.

    python -m scripts.benchmarks.download --sizes 20,200 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .stats import emit, median, parse

SAMPLE_EVERY = 0.002


def child(base_url: str, api_key: str, job_id: str, dest: str) -> dict[str, Any]:
    """One download in this process: seconds, bytes, RSS growth (sampled and maxrss)."""
    import psutil

    from hiptah_blender.client.http import HiptahClient

    proc = psutil.Process()
    # Time spent in fsync (the client's durability cost; curl does not fsync).
    fsync_s = [0.0]
    real_fsync = os.fsync

    def timed_fsync(fd: Any) -> None:
        t = time.perf_counter()
        real_fsync(fd)
        fsync_s[0] += time.perf_counter() - t

    os.fsync = timed_fsync
    with HiptahClient(api_key, base_url) as client:
        job = client.get_job(job_id)  # outside the timing: the API call is not the download
        base_rss = proc.memory_info().rss
        base_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = [base_rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                stop.wait(SAMPLE_EVERY)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        path = client.download(job, dest)
        seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
    after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "fsync_seconds": fsync_s[0],
        "bytes": path.stat().st_size,
        "rss_growth": peak[0] - base_rss,
        "maxrss_growth": max(0, after_max - base_max),
    }


def run_client(sb: Any, job_id: str, dest: Path) -> dict[str, Any]:
    shutil.rmtree(dest, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "scripts.benchmarks.download", "--child", sb.base_url, sb.api_key, job_id, str(dest)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    return parse(out)


def run_curl(url: str, dest: Path) -> dict[str, Any]:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "curl.glb"
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--noproxy", "*", "-o", str(target), "-w", "%{time_total} %{size_download}", url],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout.split()
    target.unlink()
    return {"seconds": float(out[0]), "bytes": int(float(out[1]))}


def measure(sizes: list[float], runs: int) -> dict[str, Any]:
    from sandbox.harness import SandboxServer

    if shutil.which("curl") is None:
        raise RuntimeError("curl is not installed")
    results: dict[str, Any] = {"runs": runs, "sizes": {}}
    scratch = Path(tempfile.mkdtemp(prefix="hiptah-bench-dl-"))
    try:
        with SandboxServer(models="fake", latency=0) as sb:
            for size in sizes:
                blob = sb.blob(size_mb=size)
                client_runs: list[dict[str, Any]] = []
                curl_runs: list[dict[str, Any]] = []
                run_client(sb, blob["job_id"], scratch / "warm")  # page cache + first-connection costs
                for _ in range(runs):
                    client_runs.append(run_client(sb, blob["job_id"], scratch / "client"))
                    curl_runs.append(run_curl(blob["model_url"], scratch / "curl"))
                total = blob["size"]
                client_mbps = median([total / r["seconds"] / 1e6 for r in client_runs])
                curl_mbps = median([total / r["seconds"] / 1e6 for r in curl_runs])
                results["sizes"][str(size)] = {
                    "bytes": total,
                    "client_mb_s": client_mbps,
                    "curl_mb_s": curl_mbps,
                    "ratio": client_mbps / curl_mbps,
                    "client_s": median([r["seconds"] for r in client_runs]),
                    "curl_s": median([r["seconds"] for r in curl_runs]),
                    "fsync_s": median([r["fsync_seconds"] for r in client_runs]),
                    "rss_growth_mb": median([r["rss_growth"] / 2**20 for r in client_runs]),
                    "rss_growth_max_mb": max(r["rss_growth"] / 2**20 for r in client_runs),
                    "maxrss_growth_mb": median([r["maxrss_growth"] / 2**20 for r in client_runs]),
                }
                print(f"[download] {size} MB: {results['sizes'][str(size)]}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="20,200", help="MB, comma separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("BASE_URL", "API_KEY", "JOB_ID", "DEST"), help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        os.environ.setdefault("NO_PROXY", "*")
        emit(child(*ns.child))
        return
    emit(measure([float(s) for s in ns.sizes.split(",") if s.strip()], ns.runs))


if __name__ == "__main__":
    main()
