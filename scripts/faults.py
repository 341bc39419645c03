"""Run the reliability fault matrix (and the bad-input cases) and print the markdown tables.

    .venv/bin/python scripts/faults.py              # scaled time: about 2 minutes
    .venv/bin/python scripts/faults.py --full       # real time: 60 s outage, 30 s timeouts, 25-40 s jobs
    .venv/bin/python scripts/faults.py --only network_outage --only disk_full --no-bad-input

Every row comes from real jobs against the sandbox (fake models: the cases test
transport, not geometry); the Blender rows run real Blender (the bpy module) in
subprocesses. The same case functions run as tests in tests/reliability/.
Exit status 1 when a case found a problem (a lost job, a double charge, ...).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Anything that imports bpy (the sandbox's FBX/USDZ helper, the Blender cases) must not
# touch the real user's Blender configuration.
if not os.environ.get("BLENDER_USER_RESOURCES"):
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="hiptah-faults-bur-")

from sandbox.harness import SandboxServer  # noqa: E402
from tests.reliability.harness import bad_input, cases  # noqa: E402
from tests.reliability.harness.flow import FAST, FULL  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="real time instead of scaled time (takes about half an hour)")
    parser.add_argument("--only", action="append", choices=sorted(cases.FAULT_CASES), default=[],
                        help="run only this fault case (repeatable)")
    parser.add_argument("--no-blender", action="store_true", help="skip the real-Blender kill case")
    parser.add_argument("--no-bad-input", action="store_true", help="skip the bad-input table")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (printed)")
    parser.add_argument("--verbose", action="store_true", help="show the add-on's job log on stderr")
    args = parser.parse_args(argv)
    if not args.verbose:
        # Failed jobs are the point of most cases: their warnings are expected noise.
        logging.getLogger("hiptah").setLevel(logging.ERROR)

    timing = FULL if args.full else FAST
    names = args.only or list(cases.FAULT_CASES)
    if args.no_blender:
        names = [n for n in names if n != "blender_kill"]
    work = Path(tempfile.mkdtemp(prefix="hiptah-faults-"))
    problems: list[str] = []
    started = time.monotonic()
    flags = cases.sandbox_flags()
    if timing.latency is None:
        flags["latency"] = None  # realistic 25-40 s jobs
    print(f"# scripts/faults.py ({timing.name} time, scale {timing.scale:g}) on {platform.platform()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}", file=sys.stderr)
    rows: list[str] = []
    with SandboxServer(**flags) as sb:
        for name in names:
            print(f"- {name} ...", file=sys.stderr, flush=True)
            result = cases.run_case(name, sb, work, timing)
            rows.append(result.row())
            problems += [f"{name}: {p}" for p in result.problems]
            print(f"  {result.seconds:.1f} s, problems: {result.problems or 'none'}", file=sys.stderr, flush=True)
        bad_rows: list[str] = []
        if not args.no_bad_input:
            for name in bad_input.BAD_INPUTS:
                outcome = bad_input.run_bad_input(name, sb, work / "bad-input")
                bad_rows.append(outcome.row())
                problems += [f"{name}: {p}" for p in outcome.problems]
    print("### Fault matrix\n")
    print(cases.TABLE_HEADER)
    print("\n".join(rows))
    if bad_rows:
        print("\n### Bad input\n")
        print(bad_input.TABLE_HEADER)
        print("\n".join(bad_rows))
    print(f"\n_{len(rows)} fault cases and {len(bad_rows)} bad inputs in {time.monotonic() - started:.0f} s "
          f"({timing.name} time)._")
    if problems:
        print("\nPROBLEMS:\n" + "\n".join(f"- {p}" for p in problems))
    if args.keep:
        print(f"scratch folder kept: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
