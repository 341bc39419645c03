"""Development entry point of the batch command (the real one ships in the extension).

    .venv/bin/python scripts/batch.py prompts.csv --template "a {color} {material} {object}"
    blender -b -P scripts/batch.py -- prompts.txt --out out/batch

Users with the extension installed run ``blender -b -c hiptah batch ...`` instead;
both run :mod:`hiptah_blender.batch.cli` (see docs/batch.md for options and exit
codes). This script only puts the checkout, and its .venv's packages under a real
Blender binary, on the path.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _find_dev_packages() -> None:
    """Under a real Blender binary pydantic is missing (the extension bundles it as
    wheels). A development checkout's .venv of the same Python version has it:
    append it, after Blender's own modules so those win."""
    try:
        import pydantic  # noqa: F401
    except ImportError:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for site in (ROOT / ".venv" / "lib" / version / "site-packages", ROOT / ".venv" / "Lib" / "site-packages"):
            if site.is_dir() and str(site) not in sys.path:
                sys.path.append(str(site))
                break


_find_dev_packages()

from typing import Any  # noqa: E402

from hiptah_blender.batch import cli  # noqa: E402
from hiptah_blender.batch.cli import script_args  # noqa: E402


def _open_library(path: Any, **options: Any) -> Any:
    # Imported only for a real run: argument handling and dry runs need no Blender.
    from hiptah_blender.blender.batch_library import open_library

    return open_library(path, **options)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, _open_library)


__all__ = ["main", "script_args"]

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
