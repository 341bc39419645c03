"""The batch command: many prompts in, one Blender asset library out.

    blender -b -c hiptah batch prompts.csv --template "a {color} {material} {object}"
    .venv/bin/python scripts/batch.py prompts.txt            (development checkout)

Runs every row through the add-on's own scheduler (same concurrency limit, poll
timing, retries, persistence), shows live progress, imports each model into
``<out>/hiptah_assets.blend`` as an asset, and prints a summary table. Running
the same command again resumes: nothing is generated twice. See docs/batch.md.

Pure Python up to the library writer (``..blender.library``, imported only for a
real run), so argument handling, dry runs and quota checks run without Blender.

Exit status: 0 all rows done; 1 some row failed or is left (plan limit);
2 bad input/options or a quota refusal; 130 interrupted (Ctrl-C, state saved);
143 terminated (SIGTERM, state saved).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ..client.errors import HiptahError, register_secret
from .inputs import InputError, Row, load_rows
from .quota import (
    PLANS,
    accepted_this_month,
    check_quota,
    default_concurrency,
    plan_named,
)
from .state import BatchLockedError, BatchState, link_rows

if TYPE_CHECKING:
    from ..jobs.records import JobRecord
    from .receiver import WebhookReceiver

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
WEBHOOK_FALLBACK_POLL = 30.0  # with webhooks, polling is only the safety net


class Terminated(KeyboardInterrupt):
    """SIGTERM: handled like Ctrl-C (state saved), with its own exit status."""


def script_args(argv: list[str]) -> list[str]:
    """Arguments meant for this script: after "--" under ``blender -b -P``."""
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return argv[1:]


DESCRIPTION = "Generate HiPtah models in bulk into a Blender asset library (resumable)."


def build_parser(prog: str = "batch.py") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=prog, description=DESCRIPTION))


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The batch options, on a parser of its own or on ``blender -c hiptah``'s subcommand."""
    p.add_argument("input", help="prompts: .txt (one a line), .csv/.tsv (header row) or .json (list)")
    p.add_argument("--template", help='fill CSV columns into a prompt: "a {color} {material} {object}"')
    p.add_argument("--format", default=None, help="default format: glb, fbx, usdz, stl, 3mf (default glb)")
    p.add_argument("--quality", default=None, help="default quality: draft, standard, high (default high)")
    p.add_argument("--out", default="out/batch", help="output folder (default out/batch)")
    p.add_argument("--plan", default="creator", choices=sorted(PLANS), help="your HiPtah plan (default creator)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="jobs in flight at once (default: the plan's limit, creator 10 / pro 30)")
    p.add_argument("--quota-left", type=int, default=None,
                   help="generations your plan has left this month (from the dashboard); "
                        "default: the plan's allowance minus what this folder's state recorded")
    p.add_argument("--allow-over-quota", action="store_true", help="start even if the batch exceeds the quota left")
    p.add_argument("--dry-run", action="store_true", help="print the prompts and the quota they need; send nothing")
    p.add_argument("--base-url", default=None, help="API base URL (default $HIPTAH_BASE_URL or the HiPtah API)")
    p.add_argument("--api-key", default=None, help="API key (default $HIPTAH_API_KEY)")
    p.add_argument("--webhook-listen", metavar="HOST:PORT", default=None,
                   help="receive job webhooks on this address (port 0: any free port)")
    p.add_argument("--public-url", default=None,
                   help="URL HiPtah posts webhooks to (default http://HOST:PORT/hooks; '{port}' is replaced)")
    p.add_argument("--poll-interval", type=float, default=None,
                   help=f"seconds between polls (default 2; {WEBHOOK_FALLBACK_POLL:g} with webhooks)")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds each job may take (default 600)")
    p.add_argument("--no-render", action="store_true", help="skip rendering asset previews")
    p.add_argument("--verbose", action="store_true", help="let Blender's importer output through")
    return p


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"batch: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        fail(f"--webhook-listen wants HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def stored_records(state: BatchState) -> list[JobRecord]:
    from ..jobs.store import JobStore

    return JobStore(state.store_path).load() if state.store_path.exists() else []


def new_generations(rows: list[Row], records: list[JobRecord], state: BatchState) -> int:
    """Rows that still need a server job (the rest resume existing jobs)."""
    linked = link_rows(rows, records, state.load_manifest())
    return sum(1 for row in rows if (r := linked.get(row.key)) is None or not r.job_id)


def dry_run(rows: list[Row], args: argparse.Namespace, state: BatchState) -> int:
    records = stored_records(state)
    linked = link_rows(rows, records, state.load_manifest())
    print(f"{len(rows)} prompt(s) from {args.input}:")
    for row in rows:
        record = linked.get(row.key)
        note = f"  [{record.state.value} {record.job_id or ''}]".rstrip() if record else ""
        print(f"  {row.source:>9}  {row.format:4} {row.quality:8}  {row.prompt}{note}")
    quota = quota_check(rows, records, args, state)
    print(quota.describe())
    if quota.over:
        if args.allow_over_quota:
            print("--allow-over-quota: a real run would start anyway and stop at the plan limit.")
        else:
            print("A real run would refuse to start (pass --allow-over-quota to start anyway).")
            return EXIT_USAGE
    return EXIT_OK


def quota_check(rows: list[Row], records: list[JobRecord], args: argparse.Namespace, state: BatchState) -> Any:
    plan = plan_named(args.plan)
    return check_quota(
        plan,
        cost=new_generations(rows, records, state),
        quota_left=args.quota_left,
        used_recorded=accepted_this_month(records),
    )


def setup_webhooks(args: argparse.Namespace, state: BatchState, client_factory: Any,
                   base_url: str, api_key: str) -> WebhookReceiver | None:
    """Listen, then register the public URL (once per URL and account: reused on re-runs)."""
    from .receiver import WebhookReceiver

    host, port = parse_listen(args.webhook_listen)
    # The receiver serves the public URL's path (a proxy or tunnel may change host and port).
    path = urlsplit((args.public_url or "").replace("{port}", "0")).path
    receiver = WebhookReceiver(host, port, path=path or "/hooks")
    receiver.start()
    public_url = (args.public_url or receiver.local_url).replace("{port}", str(receiver.port))
    saved = state.saved_webhook(base_url, api_key, public_url)
    if saved is not None:
        receiver.set_secret(saved["secret"])
        print(f"Webhooks: listening on {receiver.local_url}; reusing registration {saved.get('webhook_id') or ''} "
              f"for {public_url}", file=sys.stderr)
        return receiver
    try:
        registration = client_factory().register_webhook(public_url, ["job.completed", "job.failed"])
    except HiptahError as exc:
        receiver.stop()
        print(f"Webhooks: registration failed, polling instead: {exc.user_text()}", file=sys.stderr)
        return None
    if not registration.secret:
        receiver.stop()
        print("Webhooks: the server returned no signing secret; polling instead.", file=sys.stderr)
        return None
    state.save_webhook(base_url, api_key, public_url, registration.webhook_id, registration.secret)
    receiver.set_secret(registration.secret)
    print(f"Webhooks: listening on {receiver.local_url}; registered {registration.webhook_id} for {public_url}",
          file=sys.stderr)
    return receiver


class StopRequest:
    """Set by SIGINT/SIGTERM; the batch loop stops at its next safe point (never in the
    middle of a scheduler step or a .blend write). A second signal stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Terminated() if signum != signal.SIGINT else KeyboardInterrupt()
        self.signum = signum


def install_signal_handlers(stop: StopRequest) -> dict[int, Any]:
    """Route Ctrl-C and SIGTERM to ``stop``; returns the previous handlers."""
    # Blender may have installed its own handlers; ours apply for the run only.
    previous: dict[int, Any] = {signal.SIGINT: signal.signal(signal.SIGINT, stop.handle)}
    if hasattr(signal, "SIGTERM"):
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, stop.handle)
    return previous


def run(rows: list[Row], args: argparse.Namespace, state: BatchState, stop: StopRequest) -> int:
    from ..client.validation import DEFAULT_BASE_URL, clean_api_key, clean_base_url
    from ..jobs.scheduler import Scheduler, SchedulerConfig
    from ..jobs.store import JobStore
    from .progress import Progress, summary_table
    from .runner import BatchRunner

    try:
        api_key = clean_api_key(args.api_key or os.environ.get("HIPTAH_API_KEY"))
        base_url = clean_base_url(args.base_url or os.environ.get("HIPTAH_BASE_URL") or DEFAULT_BASE_URL)
    except HiptahError as exc:
        fail(exc.user_text())
    register_secret(api_key)
    plan = plan_named(args.plan)
    concurrency = args.concurrency if args.concurrency is not None else default_concurrency(plan)
    if concurrency < 1:
        fail("--concurrency must be at least 1")
    if plan.concurrent is not None and concurrency > plan.concurrent:
        print(f"warning: --concurrency {concurrency} is above the {plan.name} plan's {plan.concurrent}; "
              "the server will answer 429 and the scheduler will back off", file=sys.stderr)

    quota = quota_check(rows, stored_records(state), args, state)
    print(quota.describe(), file=sys.stderr)
    if quota.over and not args.allow_over_quota:
        fail("refusing to start: the batch needs more generations than the plan has left. "
             "Pass --allow-over-quota to start anyway (it stops at the limit and can be resumed), "
             "or --quota-left N if you know better.")

    def client_factory() -> Any:
        from ..client.http import HiptahClient

        return HiptahClient(api_key, base_url)

    receiver = setup_webhooks(args, state, client_factory, base_url, api_key) if args.webhook_listen else None
    poll_interval = args.poll_interval or (WEBHOOK_FALLBACK_POLL if receiver is not None else 2.0)
    config = SchedulerConfig(
        max_concurrent=concurrency,
        poll_interval=poll_interval,
        job_deadline=args.deadline,
        download_dir=str(state.models_dir),
        max_workers=min(16, max(2, concurrency)),
        # The contract's 30 s cap would make the webhook fallback poll more often than asked.
        max_poll_interval=max(30.0, poll_interval),
    )
    scheduler = Scheduler(client_factory, JobStore(state.store_path), config)
    progress = Progress()
    if scheduler.warning:
        progress.log(f"warning: {scheduler.warning}")

    library = None
    item_factory = None
    try:
        # The one bpy part: imported only for a real run (dry runs and tests need no Blender).
        from ..blender.library import AssetLibrary, LibraryItem

        library = AssetLibrary(state.library_path, previews=not args.no_render, quiet=not args.verbose,
                               log=progress.log, personal_dir=personal_library_dir(progress.log))
        library.open()
        item_factory = LibraryItem.from_record
        runner = BatchRunner(rows, scheduler, state, concurrency=concurrency, progress=progress,
                             library=library, item_factory=item_factory, receiver=receiver,
                             should_stop=stop)
        runner.prepare()
        result = runner.run()
    finally:
        scheduler.shutdown(wait=False)
        if receiver is not None:
            receiver.stop()

    print(summary_table(result.summary))
    c = result.counts
    print(f"\n{c.done} done, {c.failed} failed, {c.running + c.waiting} left of {c.total}. "
          f"Library: {state.library_path}  Models: {state.models_dir}")
    if receiver is not None:
        polls = sum(result.polls.values())
        print(f"Webhooks: {receiver.stats.accepted} accepted, {receiver.stats.duplicates} duplicate(s) ignored, "
              f"{receiver.stats.rejected} rejected; {polls} poll(s) in total (fallback every {poll_interval:g} s).")
    if result.stopped:
        print(result.stopped)
    return EXIT_OK if result.ok else EXIT_FAILED


def personal_library_dir(log: Callable[[str], None]) -> str | None:
    """The add-on's personal asset library folder when it is on (the add-on's preferences:
    each batch result is also saved there), registered as the 'HiPtah' library."""
    try:
        import bpy

        from ..blender import personal_library
        from ..blender.settings import addon_preferences, read_settings
    except ImportError:
        return None
    if addon_preferences(bpy.context) is None:
        return None  # the development entry point (scripts/batch.py): no add-on, no personal library
    settings = read_settings(bpy.context)
    if not settings.asset_library:
        return None
    try:
        personal_library.ensure_registered(bpy.context, settings.library_dir)
    except (OSError, RuntimeError) as exc:
        log(f"warning: the personal asset library {settings.library_dir} cannot be used: {exc}")
        return None
    return settings.library_dir


def main(argv: list[str] | None = None) -> int:
    """scripts/batch.py: ``argv`` as in sys.argv (program name first, or Blender's "--")."""
    args = build_parser().parse_args(script_args(sys.argv if argv is None else argv))
    return run_args(args)


def run_args(args: argparse.Namespace) -> int:
    """The batch for parsed options; the exit status (see the module docstring)."""
    try:
        rows = load_rows(args.input, template=args.template, default_format=args.format,
                         default_quality=args.quality)
    except InputError as exc:
        print(exc.describe(), file=sys.stderr)
        return EXIT_USAGE
    if args.quota_left is not None and args.quota_left < 0:
        fail("--quota-left cannot be negative")
    state = BatchState(args.out)
    if args.dry_run:
        return dry_run(rows, args, state)
    stop = StopRequest()
    previous_handlers = install_signal_handlers(stop)
    try:
        with state.locked():
            return run(rows, args, state, stop)
    except BatchLockedError as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated) or stop.signum == getattr(signal, "SIGTERM", None)
        what = "Terminated" if terminated else "Interrupted"
        print(f"\n{what}: state saved in {state.out_dir}; run the same command again to resume.",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        for signum, handler in previous_handlers.items():
            # None: the handler was set outside Python (Blender's own, under -c); it cannot be
            # put back from here, so the default applies for the rest of the process.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
