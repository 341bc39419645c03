"""The bad-input table (README 'Bad input') in every shipped language: each row's text,
exactly as the user sees it in English, is translated in full (every sentence has an
entry), and the values in it (file names, the prompt's length) stay as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiptah_blender.i18n import load_catalogs
from sandbox.harness import SandboxServer
from tests.reliability.harness.bad_input import BAD_INPUTS, run_bad_input

CATALOGS = load_catalogs(Path(__file__).resolve().parents[2] / "hiptah_blender" / "locale")


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_text_reads_in_every_language(name: str, fault_sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_bad_input(name, fault_sandbox, tmp_path)
    if not result.outcome.startswith("refused"):
        return  # accepted (emoji, right-to-left, a job id made safe): the table describes it, the user sees no message
    assert len(CATALOGS) == 4
    for lang, cat in CATALOGS.items():
        shown, complete = cat.translate_all(result.text)
        assert complete, f"{lang}: not fully translated: {result.text!r} -> {shown!r}"
        assert shown != result.text, lang
