#!/usr/bin/env bash
# Creates or updates the development environment from the project's own files.
# Idempotent and fast when nothing changed (a stamp holds the hash of the inputs).
#   .venv            Python 3.11 + requirements-dev.txt (bpy 5.0.1 and the dev tools)
#   .venv-bpyNN      one per `bpy==` line of requirements-blender.txt (4.2, 4.5, 5.0):
#                    bpy and its own dependencies only (no pydantic), for the install
#                    test, which must prove the extension's bundled wheels are used
#   .venv-bpyNN/test-tools   pytest, pydantic, ... (pins from requirements-dev.txt), put on
#                    PYTHONPATH only when running the Blender suite in that venv; cheaper
#                    than a second copy of bpy (~1 GB) per version
#   SKIP_BLENDER_VENVS=1 skips the .venv-bpyNN ones (e.g. for a quick unit-test setup).
#   node_modules     gltf-validator (Khronos glTF validator) from package.json
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "error: Python 3.11 is required (Blender 4.2-5.0 embed 3.11); found $("$PY" --version 2>&1)." >&2
  echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements-dev.txt into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

if [ -f package.json ] && command -v npm >/dev/null 2>&1; then
  nstamp=node_modules/.package.sha256
  nwant=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$nstamp" 2>/dev/null)" != "$nwant" ]; then
    echo "setup: installing node tools (gltf-validator)"
    if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi
    echo "$nwant" > "$nstamp"
  fi
fi

# One bare venv per supported Blender (see requirements-blender.txt).
if [ "${SKIP_BLENDER_VENVS:-0}" != 1 ]; then
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  grep -v -E '^[[:space:]]*(#|$|bpy==)' requirements-blender.txt > "$constraints"
  # Test tools for running tests/blender inside these venvs; versions come from requirements-dev.txt.
  tools="pytest pytest-timeout pydantic hypothesis psutil"
  for pin in $(grep -E '^bpy==' requirements-blender.txt); do
    ver=${pin#bpy==}
    major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
    venv=.venv-bpy${major}${minor}
    bstamp=$venv/.requirements.sha256
    bwant=$( (echo "$pin $tools"; cat "$constraints" requirements-dev.txt) | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$bstamp" 2>/dev/null)" != "$bwant" ]; then
      echo "setup: creating $venv ($pin, bare) + $venv/test-tools"
      rm -rf "$venv"
      "$PY" -m venv "$venv"
      "$venv/bin/python" -m pip install --disable-pip-version-check -q "$pin" -c "$constraints"
      "$venv/bin/python" -m pip install --disable-pip-version-check -q --target "$venv/test-tools" \
        -c requirements-dev.txt $tools
      echo "$bwant" > "$bstamp"
    fi
  done
fi
