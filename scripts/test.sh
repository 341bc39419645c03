#!/usr/bin/env bash
# The test command: sets everything up from the project's files, then runs
# ruff, mypy and the whole pytest suite. Non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh

export BLENDER_USER_RESOURCES="${BLENDER_USER_RESOURCES:-$(mktemp -d)}"
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest (bpy 5.0.1)"
.venv/bin/python -m pytest "$@"
