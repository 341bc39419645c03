#!/usr/bin/env bash
# The demo: prompt -> local sandbox -> headless Blender with the extension -> out/<slug>.png + .blend
#   bash scripts/demo.sh "a medieval wooden cart with iron wheels"
# Environment: DEMO_LATENCY (sandbox seconds per job, default 4), DEMO_FORMAT (glb),
# DEMO_FROM_REPO=1 to skip building the zip and enable the add-on from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPT="${1:-a medieval wooden cart with iron wheels}"

bash scripts/setup_env.sh

# Blender must never touch the user's own configuration.
BUR="$(mktemp -d -t hiptah-demo-bur-XXXXXX)"
trap 'rm -rf "$BUR"' EXIT
export BLENDER_USER_RESOURCES="$BUR"
unset HIPTAH_API_KEY HIPTAH_BASE_URL  # the demo configures the sandbox in the preferences

# Install the way users do, from the built zip, when it can be built (wheels cached or
# downloadable); otherwise enable the add-on from this checkout.
ZIP=""
if [ "${DEMO_FROM_REPO:-0}" != "1" ] && [ -f scripts/build.py ]; then
  DIST="build/demo-dist"
  rm -rf "$DIST"
  if .venv/bin/python scripts/build.py --platform linux-x64 --offline --output "$DIST" >/dev/null 2>&1 \
     || timeout 180 .venv/bin/python scripts/build.py --platform linux-x64 --output "$DIST" >/dev/null 2>&1; then
    ZIP="$(ls "$DIST"/*-linux_x64.zip | head -n1)"  # the main archive (4.2.13+); the other is for 4.2.0-4.2.12
    echo "demo: built $ZIP"
  else
    echo "demo: could not build the extension zip (offline?); enabling the add-on from the checkout"
  fi
fi

exec .venv/bin/python scripts/demo_blender.py --zip "$ZIP" --latency "${DEMO_LATENCY:-4}" \
  --format "${DEMO_FORMAT:-glb}" "$PROMPT"
