#!/usr/bin/env bash
# The conveyor container image, built without pulling from any container registry: the base image
# (conveyor-base:bookworm-python3.11: a minimal Debian bookworm with python3 and python3-venv) is made here with
# debootstrap from Debian's package mirror and `docker import`ed; then the repository's Dockerfile builds on it.
#   scripts/image.sh base|build|daemon|status|stop
#     base    make the base image if missing (CONVEYOR_REBUILD_BASE=1 remakes it)
#     build   base, then `docker build` of the Dockerfile; prints IMAGE=conveyor:<version>
#     daemon  start a docker daemon in the background if none answers (Debian's docker.io; needs root)
#     status  whether a docker daemon answers
#     stop    stop the daemon this script started (and only that one)
# A TLS-intercepting proxy (a company's, a sandbox's) is trusted inside the base image when its CA is installed
# on this machine the Debian way, under /usr/local/share/ca-certificates: pip in the build needs it to reach PyPI.
# Environment: CONVEYOR_IMAGE (default conveyor:<pyproject version>), CONVEYOR_DEBIAN_MIRROR, DOCKER.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$CACHE/image"
BASE="conveyor-base:bookworm-python3.11"
# The Debian mirror this machine's apt already uses (deb822 .sources first, then the one-line format).
apt_mirror() {
  local found
  found=$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
  [ -n "$found" ] || found=$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' \
    /etc/apt/sources.list 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    echo "no Debian mirror found in apt's sources; set CONVEYOR_DEBIAN_MIRROR" >&2
    return 1
  fi
  echo "$found"
}
MIRROR="${CONVEYOR_DEBIAN_MIRROR:-}"
DOCKER="${DOCKER:-docker}"
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/pyproject.toml" | head -n1)
IMAGE="${CONVEYOR_IMAGE:-conveyor:$VERSION}"

daemon_answers() {
  "$DOCKER" info >/dev/null 2>&1
}

daemon() {
  mkdir -p "$DIR"
  daemon_answers && return 0
  command -v dockerd >/dev/null || apt_install docker.io
  command -v "$DOCKER" >/dev/null || DOCKER=/usr/bin/docker
  echo "starting dockerd (log: $DIR/dockerd.log)" >&2
  nohup setsid dockerd --host unix:///var/run/docker.sock </dev/null >"$DIR/dockerd.log" 2>&1 9>&- &
  echo $! >"$DIR/dockerd.pid"
  local t0=$SECONDS
  until daemon_answers; do
    if ! kill -0 "$(cat "$DIR/dockerd.pid")" 2>/dev/null; then
      echo "dockerd exited; last lines of $DIR/dockerd.log:" >&2
      tail -n 30 "$DIR/dockerd.log" >&2
      return 1
    fi
    [ $((SECONDS - t0)) -lt 60 ] || { echo "dockerd did not answer within 60s" >&2; return 1; }
    sleep 0.5
  done
}

stop() {
  local pid i
  if [ -f "$DIR/dockerd.pid" ] && kill -0 "$(cat "$DIR/dockerd.pid")" 2>/dev/null; then
    pid=$(cat "$DIR/dockerd.pid")
    kill "$pid"
    # It stops its containerd and removes its pid file on the way out; a new start must wait for that.
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "dockerd stopped"
  fi
  rm -f "$DIR/dockerd.pid"
}

base() {
  daemon
  if [ "${CONVEYOR_REBUILD_BASE:-0}" != 1 ] && "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
    return 0
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local rootfs="$DIR/rootfs" t0=$SECONDS
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  [ -n "$MIRROR" ] || MIRROR=$(apt_mirror)
  echo "debootstrap bookworm (minbase + python3, python3-venv) from $MIRROR" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" >&2
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # What an image does not need: package lists, docs, man pages, locales, logs.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -c . |
    "$DOCKER" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE" >&2
  rm -rf "$rootfs"
  echo "base image $BASE made in $((SECONDS - t0))s" >&2
}

build() {
  base
  local t0=$SECONDS
  # --network host: the build reaches PyPI the way this machine does (a bridge may have no route out).
  DOCKER_BUILDKIT=0 "$DOCKER" build --network host --build-arg "BASE=$BASE" -t "$IMAGE" "$ROOT" >&2
  echo "image $IMAGE built in $((SECONDS - t0))s" >&2
  echo "IMAGE=$IMAGE"
}

case "${1:-}" in
  base) base && echo "BASE=$BASE" ;;
  build) build ;;
  daemon) daemon && echo "docker daemon answers" ;;
  status) if daemon_answers; then echo "docker daemon answers"; else echo "no docker daemon"; exit 1; fi ;;
  stop) stop ;;
  *) echo "usage: $0 base|build|daemon|status|stop" >&2; exit 2 ;;
esac
