#!/usr/bin/env bash
# Creates or updates the development environment from the project's own files.
# Idempotent and fast when nothing changed (a stamp holds the hash of the inputs).
#   .venv            Python 3.11 + requirements-dev.txt (bpy 5.0.1 and the dev tools)
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
