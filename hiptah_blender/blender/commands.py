"""The extension's command line: ``blender -b -c hiptah <command> ...``.

    blender -b -c hiptah batch prompts.csv --template "a {color} {object}" --out out/batch
    blender -b -c hiptah generate "a wooden chair" --out chair.blend
    blender -b -c hiptah status [--check]
    blender -b -c hiptah version
    blender -b -c hiptah --help

Registered with ``bpy.utils.register_cli_command`` (Blender 4.2+) while the add-on
is enabled, so anyone who installed the extension can run a batch without this
repository. Registering costs nothing: the batch modules (and pydantic, requests)
are imported only when a command runs. Settings not given as options come from the
add-on's preferences (the key from the system keychain when there is one), overlaid by
``HIPTAH_API_KEY`` / ``HIPTAH_BASE_URL``; each command says where its key came from.

Exit status: 0 success; 1 a job or row failed; 2 bad options, input or settings
(argparse's own usage errors are 2 too); 130/143 interrupted (batch: state saved).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import bpy

from ..client import errors, validation
from . import farm_commands, monitor, runtime
from .settings import addon_preferences, read_settings, store_path

if TYPE_CHECKING:
    import argparse  # imported when a command runs: enabling the add-on stays light

COMMAND_ID = "hiptah"
PROG = f"blender -b -c {COMMAND_ID}"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_handle: Any = None


def register() -> None:
    global _handle
    register_cli = getattr(bpy.utils, "register_cli_command", None)
    if register_cli is not None and _handle is None:  # 4.2+; guard against a double register
        _handle = register_cli(COMMAND_ID, execute)


def unregister() -> None:
    global _handle
    handle, _handle = _handle, None
    if handle is not None:
        bpy.utils.unregister_cli_command(handle)


def execute(argv: list[str]) -> int:
    """Blender's callback: the arguments after ``-c hiptah``; returns the exit status."""
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse's --help and usage errors, the batch's fail()
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception:
        import traceback

        # Never let a traceback be the only trace of a failed run: say it failed, non-zero.
        traceback.print_exc()
        print(f"{COMMAND_ID}: internal error (above); please report it.", file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from ..batch import cli as batch_cli

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="HiPtah for Blender on the command line: text or image to 3D models.",
        epilog=f"'{PROG} COMMAND --help' describes each command. Settings not given as options come "
        "from the add-on's preferences, or HIPTAH_API_KEY / HIPTAH_BASE_URL.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    batch = sub.add_parser(
        "batch",
        help="many prompts (.txt, .csv, .tsv, .json) into one Asset Browser library (resumable)",
        description=batch_cli.DESCRIPTION,
    )
    batch_cli.add_arguments(batch)
    batch.set_defaults(**batch_defaults())

    generate = sub.add_parser(
        "generate",
        help="one prompt (or image) into a model, imported into the scene (--out saves it)",
        description="Generate one model like the panel's Generate button, wait for it and import it.",
    )
    generate.add_argument("prompt", nargs="?", default="", help="what to generate (optional with --image)")
    generate.add_argument("--image", default="", help="PNG, JPEG or WebP file for image-to-3D")
    generate.add_argument("--format", choices=validation.FORMATS, default=None,
                          help="model format (default: the preference, glb)")
    generate.add_argument("--quality", choices=validation.QUALITIES, default=None,
                          help="quality (default: the preference, high)")
    generate.add_argument("--out", default="", help="save the scene with the model as this .blend file")

    status = sub.add_parser(
        "status",
        help="the settings in effect and the add-on's job history",
        description="Show the base URL, key, online access and job history; exit 2 when generation "
        "cannot run as configured.",
    )
    status.add_argument("--check", action="store_true", help="also ask the server whether the key is accepted")
    sub.add_parser("version", help="the extension's, Blender's and Python's versions")
    farm_commands.add_parsers(sub)  # merge, farm-submit
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    if not argv:
        parser.print_help()
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if args.command == "batch":
        return cmd_batch(args)
    if args.command == "generate":
        return cmd_generate(args)
    if args.command == "status":
        return cmd_status(args)
    if args.command == "version":
        print(version_line())
        return EXIT_OK
    if args.command in farm_commands.COMMANDS:
        return farm_commands.run(args)
    parser.print_help()
    return EXIT_USAGE


def version_line() -> str:
    py = ".".join(str(n) for n in sys.version_info[:3])
    return f"HiPtah for Blender {runtime.addon_version()} (Blender {bpy.app.version_string}, Python {py})"


# ---------------------------------------------------------------------- batch
def batch_defaults() -> dict[str, Any]:
    """What the add-on's preferences (with the environment over them) say, for the batch
    options left out."""
    settings = read_settings()
    defaults: dict[str, Any] = {}
    if settings.api_key:
        defaults["api_key"] = settings.api_key
        # To say where the key came from (never the key): a hash tells an --api-key apart.
        defaults["api_key_default"] = (hash(settings.api_key), settings.api_key_status)
    if not settings.base_url_error:
        defaults["base_url"] = settings.base_url
    prefs = addon_preferences()
    if prefs is not None:
        defaults["plan"] = str(prefs.plan).lower()
        if defaults["plan"] == "enterprise":  # the contract's limit, set in the preferences
            defaults["concurrency"] = settings.max_concurrent
    return defaults


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import cli as batch_cli

    base_url = args.base_url or validation.DEFAULT_BASE_URL
    if not args.dry_run and not bpy.app.online_access and not validation.is_sandbox_url(base_url):
        print(
            f"batch: {errors.OnlineAccessDisabledError.default_message} Run Blender with --online-mode, "
            "or enable Edit > Preferences > System > Network > Allow Online Access.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    default = getattr(args, "api_key_default", None)
    if args.api_key and default is not None and hash(args.api_key) == default[0]:
        print(f"batch: API key {default[1]}", file=sys.stderr)
    elif args.api_key:
        print("batch: API key from the --api-key option", file=sys.stderr)
    from .batch_library import open_library

    with _no_history_resume():
        return batch_cli.run_args(args, open_library)


@contextlib.contextmanager
def _no_history_resume() -> Iterator[None]:
    """The batch loads and saves its library file; the add-on's load_post handler would
    then resume the user's own (panel) jobs in this process. A batch keeps to its rows."""
    handlers = bpy.app.handlers.load_post
    present = monitor.on_load_post in handlers
    if present:
        handlers.remove(monitor.on_load_post)
    try:
        yield
    finally:
        if present and monitor.on_load_post not in handlers:
            handlers.append(monitor.on_load_post)


# ---------------------------------------------------------------------- generate
def cmd_generate(args: argparse.Namespace) -> int:
    if not args.prompt.strip() and not args.image:
        print("generate: give a prompt, an --image, or both.", file=sys.stderr)
        return EXIT_USAGE
    options: dict[str, Any] = {"prompt": args.prompt, "wait": True}
    if args.format:
        options["format"] = args.format
    if args.quality:
        options["quality"] = args.quality
    if args.image:
        options["image_path"] = os.path.abspath(args.image)
    settings = read_settings()
    if settings.api_key:
        print(f"generate: API key {settings.api_key_status}", file=sys.stderr)
    try:
        # Blender prints the operator's reports itself; an ERROR report raises here.
        result = bpy.ops.hiptah.generate(**options)  # type: ignore[attr-defined]
    except RuntimeError as exc:
        text = str(exc).strip()
        if not bpy.app.online_access and "online access" in text.lower():
            text += " From the command line: blender -b --online-mode -c hiptah generate ..."
        print(f"generate: {text}", file=sys.stderr)
        return EXIT_FAILED
    rt = runtime.peek()
    record = max(rt.snapshots.values(), key=lambda r: r.created_at) if rt and rt.snapshots else None
    if rt is not None:
        rt.scheduler.flush()
    if "FINISHED" not in result or record is None:
        return EXIT_FAILED
    print(f"generate: {record.state.value} job {record.job_id}: {record.file_path}")
    if args.out:
        out = os.path.abspath(args.out)
        bpy.ops.wm.save_as_mainfile(filepath=out, check_existing=False)
        print(f"generate: saved {out}")
    return EXIT_OK


# ---------------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    from ..jobs.store import JobStore

    settings = read_settings()
    key = f"***{settings.api_key[-4:]}" if len(settings.api_key) > 8 else ("set" if settings.api_key else "none")
    print(version_line())
    print(f"base URL:      {settings.base_url}{' (sandbox)' if settings.is_sandbox else ''}"
          f"{' [HIPTAH_BASE_URL]' if settings.base_url_from_env else ''}")
    print(f"API key:       {key}{' [HIPTAH_API_KEY]' if settings.api_key_from_env else ''}")
    print(f"key lives:     {settings.api_key_status or 'none'}")
    print(f"online access: {'on' if settings.online_access else 'off'}")
    print(f"jobs at once:  {settings.max_concurrent}")
    print(f"models folder: {settings.download_dir}")
    records = JobStore(store_path()).load() if os.path.isfile(store_path()) else []
    counts: dict[str, int] = {}
    for record in records:
        counts[record.state.value] = counts.get(record.state.value, 0) + 1
    listed = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
    print(f"job history:   {listed} ({store_path()})")
    problem = settings.configuration_error()
    if problem is not None:
        sys.stdout.flush()  # keep the report's order when both go to one terminal
        print(f"cannot generate: {problem.user_text()}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        try:
            print(f"connection:    {runtime.test_connection()}")
        except errors.HiptahError as exc:
            print(f"connection:    {exc.user_text()}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK
