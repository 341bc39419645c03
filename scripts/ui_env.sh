#!/usr/bin/env bash
# The real-Blender-with-UI environment: a Debian trixie root holding Debian's Blender
# 4.3.2 (Python 3.13), Xvfb, xdotool, ImageMagick, gnome-keyring and dbus, cached in
# .cache/ui-root.
#
#   bash scripts/ui_env.sh             build the root if needed (idempotent: a stamp holds
#                                      the hash of the package list; a second run does nothing)
#   bash scripts/ui_env.sh check       exit 0 if the root can be built or is there; else print
#                                      why not (not root, no debootstrap, ...) and exit 3
#   bash scripts/ui_env.sh run CMD...  run CMD inside the root (bubblewrap: a private mount
#                                      namespace, so nothing stays mounted if the run is
#                                      killed). /tmp and the project folder are the same paths
#                                      inside; the network is the host's (loopback sandbox).
#
# HIPTAH_UI_ROOT overrides the root's folder. Needs root (debootstrap, chroot) and Debian's
# package registry; debootstrap and bubblewrap are installed on the host with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$PWD
root=${HIPTAH_UI_ROOT:-$project/.cache/ui-root}
suite=trixie
# gnome-keyring + dbus: a real Secret Service for the keychain scenario (tests/ui/test_keychain.py).
packages="blender xvfb xdotool imagemagick libgl1-mesa-dri python3-numpy python3-requests ca-certificates fonts-dejavu-core gnome-keyring dbus"
want=$(echo "v2 $suite $packages" | sha256sum | cut -d' ' -f1)
stamp=$root/.hiptah-ui-root.sha256

why_not() {
  if [ "$(id -u)" != 0 ]; then echo "not running as root (debootstrap and chroot need root)"; return; fi
  if ! command -v debootstrap >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
    echo "debootstrap is missing and there is no apt-get to install it"; return
  fi
  if ! command -v unshare >/dev/null 2>&1; then echo "unshare (util-linux) is missing"; return; fi
}

host_tools() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ui_env: installing ${missing[*]} on the host"
    # flock: setup_env.sh may apt-get on the host at the same time (scripts/test.sh).
    flock /tmp/hiptah-host-apt.lock apt-get update -qq
    DEBIAN_FRONTEND=noninteractive flock /tmp/hiptah-host-apt.lock \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ready() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$root/usr/bin/blender" ]
}

build() {
  if ready; then return 0; fi
  local reason
  reason=$(why_not)
  if [ -n "$reason" ]; then echo "ui_env: cannot build the UI root: $reason" >&2; exit 3; fi
  # One build at a time: test.sh's GUI lane, GUI tests and the ui bench may all ask for
  # the root at once on a fresh clone; the others wait, then find it ready.
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9
  if ready; then exec 9>&-; return 0; fi
  host_tools
  local tmp=$root.building
  rm -rf "$tmp"
  local t0=$SECONDS
  echo "ui_env: debootstrap $suite into $tmp"
  debootstrap --variant=minbase "$suite" "$tmp" >"$tmp.log" 2>&1 || {
    tail -20 "$tmp.log" >&2; echo "ui_env: debootstrap failed (log: $tmp.log)" >&2; exit 1; }
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
  echo "ui_env: apt-get install $packages"
  # A private mount namespace: /proc and /dev vanish with the process, even if it is killed.
  unshare -m --propagation private sh -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    shift
    chroot "$0" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $* && apt-get clean"
  ' "$tmp" "$tmp" $packages >>"$tmp.log" 2>&1 || {
    tail -30 "$tmp.log" >&2; echo "ui_env: apt-get in the root failed (log: $tmp.log)" >&2; exit 1; }
  echo "$want" > "$tmp/.hiptah-ui-root.sha256"
  rm -rf "$root"
  mv "$tmp" "$root"
  rm -f "$tmp.log"
  exec 9>&-
  echo "ui_env: ready in $((SECONDS - t0)) s: $root (blender $(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' blender 2>/dev/null || echo '?'))"
}

case "${1:-build}" in
  build)
    build
    ;;
  check)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
    reason=$(why_not)
    if [ -n "$reason" ]; then echo "$reason"; exit 3; fi
    ;;
  path)
    echo "$root"
    ;;
  run)
    shift
    build >&2
    exec bwrap --bind "$root" / --proc /proc --dev-bind /dev /dev \
      --bind /tmp /tmp --bind "$project" "$project" \
      --ro-bind /etc/resolv.conf /etc/resolv.conf \
      --die-with-parent --chdir "$project" \
      --setenv PATH /usr/sbin:/usr/bin:/sbin:/bin \
      "$@"
    ;;
  *)
    echo "usage: $0 [build|check|path|run CMD...]" >&2; exit 2
    ;;
esac
