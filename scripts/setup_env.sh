#!/usr/bin/env bash
# Creates or updates the development environment from the project's own files.
# Idempotent and fast when nothing changed (a stamp holds the hash of the inputs).
#   .venv            Python 3.11 + requirements-dev.txt (bpy 5.0.1 and the dev tools)
#   .venv-bpyNN-bare one per `bpy==` line of requirements-blender.txt (4.2, 4.5, 5.0):
#                    bpy and its own dependencies only (no pydantic), for the install
#                    test, which must prove the extension's bundled wheels are used.
#                    An older pin of the same series gets its full version instead
#                    (.venv-bpy4.2.0-bare next to .venv-bpy42-bare for 4.2.23) and no
#                    test venv: only the install test runs there.
#   .venv-bpyNN      (4.2, 4.5; 5.0 is .venv) the Blender test suite's venv: pytest,
#                    pydantic, ... (pins from requirements-dev.txt) plus a .pth that
#                    layers the -bare venv's site-packages under it, so bpy is
#                    installed once (~1 GB) per version, not twice
#   SKIP_BLENDER_VENVS=1 skips the .venv-bpyNN ones (e.g. for a quick unit-test setup).
#   node_modules     gltf-validator (Khronos glTF validator) from package.json
#   gnome-keyring, dbus  Debian packages for the keychain tests (a real Secret Service under
#                    dbus-run-session); installed with apt-get when missing and run as root,
#                    else those tests install them themselves or skip with the reason
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

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && ! { command -v gnome-keyring-daemon && command -v dbus-run-session; } >/dev/null 2>&1; then
  echo "setup: installing gnome-keyring and dbus (apt-get) for the keychain tests"
  # flock: scripts/test.sh builds the GUI root (ui_env.sh may apt-get on the host) meanwhile.
  DEBIAN_FRONTEND=noninteractive flock /tmp/hiptah-host-apt.lock \
    apt-get install -y -q --no-install-recommends gnome-keyring dbus >/dev/null \
    || { flock /tmp/hiptah-host-apt.lock apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
         flock /tmp/hiptah-host-apt.lock apt-get install -y -q --no-install-recommends gnome-keyring dbus >/dev/null; }
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

# One bare venv per supported Blender (see requirements-blender.txt), and a test venv
# layered on top of it for the versions other than the main .venv's.
if [ "${SKIP_BLENDER_VENVS:-0}" != 1 ]; then
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  grep -v -E '^[[:space:]]*(#|$|bpy==)' requirements-blender.txt > "$constraints"
  dev_bpy=$(grep -E '^bpy==' requirements-dev.txt)
  # What tests/blender imports besides bpy; versions come from requirements-dev.txt.
  tools="pytest pytest-timeout pydantic hypothesis psutil pillow trimesh networkx lxml keyring SecretStorage jeepney"
  for pin in $(grep -E '^bpy==' requirements-blender.txt); do
    ver=${pin#bpy==}
    major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
    newest=$(grep -E "^bpy==${major}\.${minor}\." requirements-blender.txt | sed 's/^bpy==//' | sort -V | tail -n1)
    if [ "$ver" = "$newest" ]; then bare=.venv-bpy${major}${minor}-bare; else bare=.venv-bpy${ver}-bare; fi
    bstamp=$bare/.requirements.sha256
    bwant=$( (echo "$pin"; cat "$constraints") | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$bstamp" 2>/dev/null)" != "$bwant" ]; then
      echo "setup: creating $bare ($pin only)"
      rm -rf "$bare"
      "$PY" -m venv "$bare"
      "$bare/bin/python" -m pip install --disable-pip-version-check -q "$pin" -c "$constraints"
      echo "$bwant" > "$bstamp"
    fi
    [ "$pin" = "$dev_bpy" ] || [ "$ver" != "$newest" ] && continue
    tv=.venv-bpy${major}${minor}
    tstamp=$tv/.requirements.sha256
    bare_site=$("$bare/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    twant=$( (echo "$bwant $bare_site $tools"; cat requirements-dev.txt) | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$tstamp" 2>/dev/null)" != "$twant" ]; then
      echo "setup: creating $tv (test tools over $bare)"
      rm -rf "$tv"
      "$PY" -m venv "$tv"
      tv_site=$("$tv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      echo "$bare_site" > "$tv_site/hiptah-bpy-bare.pth"
      "$tv/bin/python" -m pip install --disable-pip-version-check -q -c requirements-dev.txt $tools
      echo "$twant" > "$tstamp"
    fi
  done
fi
