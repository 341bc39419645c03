#!/usr/bin/env bash
# The test command: sets everything up from the project's files, then runs
# ruff, mypy and the whole pytest suite. Non-zero on any failure.
#
#   bpy 5.0 (.venv):  the whole suite, which includes tests/install: build the zips,
#                     then install the linux-x64 zip into bare bpy 4.2, 4.5 and 5.0 venvs
#   bpy 4.2 and 4.5:  tests/blender again, in .venv-bpy42 / .venv-bpy45
#   GUI suite:        tests/ui in Debian's Blender 4.3.2 with its whole UI under Xvfb
#                     (scripts/ui_env.sh builds its cached root; needs root + debootstrap,
#                     skipped with the reason where impossible, required when CI=true)
# With arguments (e.g. `scripts/test.sh tests/unit -x`) only the 5.0 pytest runs, with them.
# Every step runs even when an earlier one fails; the timings go to stdout (docs/shipping.md).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1

# The install test must not skip a Blender because its venv is missing.
export HIPTAH_REQUIRE_BLENDER_VENVS=1
status=0
timings=()
run() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== $name"
  # A fresh Blender user folder per run: nothing leaks between Blender versions.
  BLENDER_USER_RESOURCES="$(mktemp -d)" "$@" || rc=$?
  timings+=("$(printf '%-48s %4d s  %s' "$name" $((SECONDS - t0)) "$([ $rc = 0 ] && echo ok || echo FAILED)")")
  [ $rc = 0 ] || status=1
}

run "ruff" .venv/bin/ruff check .
run "mypy" .venv/bin/mypy
run "pytest, bpy $(grep -E '^bpy==' requirements-dev.txt | cut -d= -f3) (all; install test on every Blender)" \
  .venv/bin/python -m pytest "$@"

if [ $# -eq 0 ]; then
  dev_bpy=$(grep -E '^bpy==' requirements-dev.txt)
  for pin in $(grep -E '^bpy==' requirements-blender.txt); do
    [ "$pin" = "$dev_bpy" ] && continue
    ver=${pin#bpy==}
    major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
    # An older pin of a series (4.2.0 next to 4.2.23) runs only the install test.
    newest=$(grep -E "^bpy==${major}\.${minor}\." requirements-blender.txt | sed 's/^bpy==//' | sort -V | tail -n1)
    [ "$ver" = "$newest" ] || continue
    # The sandbox needs fastapi and bpy 5.0 (FBX/USDZ export): always the main venv's Python.
    HIPTAH_SANDBOX_PYTHON="$PWD/.venv/bin/python" \
      run "pytest tests/blender, bpy $ver" \
      ".venv-bpy${major}${minor}/bin/python" -m pytest tests/blender -p no:cacheprovider
  done
fi

if [ $# -eq 0 ]; then
  if why=$(bash scripts/ui_env.sh check); then
    run "GUI root (Debian trixie + Blender 4.3.2, cached)" bash scripts/ui_env.sh
    run "pytest tests/ui, Blender 4.3.2 GUI under Xvfb" .venv/bin/python -m pytest tests/ui -p no:cacheprovider
  elif [ "${CI:-}" = true ]; then
    echo "== GUI suite cannot run here: $why (required in CI)"
    status=1
  else
    echo "== GUI suite skipped: $why"
  fi
fi

echo "== timings"
printf '%s\n' "${timings[@]}"
exit $status
