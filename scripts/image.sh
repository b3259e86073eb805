#!/usr/bin/env bash
# The conveyor container image, built without pulling from any container registry: the base image
# (conveyor-base:bookworm-python3.11: a minimal Debian bookworm with python3 and python3-venv) is made here with
# debootstrap from Debian's package mirror and `docker import`ed; then the repository's Dockerfile builds on it.
#   scripts/image.sh base|build
#     base    make the base image if missing (CONVEYOR_REBUILD_BASE=1 remakes it); prints BASE=...
#     build   base, then `docker build` of the Dockerfile; prints IMAGE=conveyor:<version> and the DOCKER_HOST
#             that holds it
# The docker daemon is the one DOCKER_HOST names, or else the project's own (scripts/docker.sh start).
# A TLS-intercepting proxy (a company's, a sandbox's) is trusted inside the base image when its CA is installed
# on this machine the Debian way, under /usr/local/share/ca-certificates: pip in the build needs it to reach PyPI.
# Environment: CONVEYOR_IMAGE (default conveyor:<pyproject version>), CONVEYOR_DEBIAN_MIRROR, DOCKER.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$CACHE/image"
BASE="conveyor-base:bookworm-python3.11"
DOCKER="${DOCKER:-docker}"
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/pyproject.toml" | head -n1)
IMAGE="${CONVEYOR_IMAGE:-conveyor:$VERSION}"

daemon_answers() {
  "$DOCKER" info >/dev/null 2>&1
}

# The daemon DOCKER_HOST names, or else the project's own (scripts/docker.sh): never another one on the machine.
daemon() {
  mkdir -p "$DIR"
  if [ -z "${DOCKER_HOST:-}" ]; then
    export "$(bash "$(dirname "$0")/docker.sh" start | grep '^DOCKER_HOST=')"
  fi
  daemon_answers || { echo "no docker daemon answers at DOCKER_HOST=$DOCKER_HOST" >&2; return 1; }
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
  local mirror
  mirror=$(debian_mirror)
  echo "debootstrap bookworm (minbase + python3, python3-venv) from $mirror" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >&2
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
  echo "DOCKER_HOST=$DOCKER_HOST"
}

case "${1:-}" in
  base) base && echo "BASE=$BASE" ;;
  build) build ;;
  *) echo "usage: $0 base|build" >&2; exit 2 ;;
esac
