#!/usr/bin/env bash
# The images of the services the e2e cluster runs for the example (e2e/services.yaml): PostgreSQL 15 from
# Debian's package and Kafka 4 from its Maven Central jars (scripts/kafka.sh resolves them) on Debian's Java 17,
# both on the project's base image (scripts/image.sh base), built on the same docker daemon as the conveyor image.
# No registry: load them into a kind cluster with scripts/kind.sh load.
#   e2e/services.sh build      prints POSTGRES_IMAGE=... and KAFKA_IMAGE=...
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib.sh"
POSTGRES_IMAGE=conveyor-e2e/postgres:15
KAFKA_VERSION="${CONVEYOR_KAFKA_VERSION:-4.1.1}"
KAFKA_IMAGE="conveyor-e2e/kafka:$KAFKA_VERSION"

build() {
  local base libs ctx
  # The same daemon as the conveyor image: DOCKER_HOST if set, else the project's own (scripts/docker.sh).
  base=$(bash "$ROOT/scripts/image.sh" base | sed -n 's/^BASE=//p')
  [ -n "${DOCKER_HOST:-}" ] || export "$(bash "$ROOT/scripts/docker.sh" start | grep '^DOCKER_HOST=')"
  export DOCKER_BUILDKIT=0
  # --network host: apt-get in the build reaches Debian's mirror the way this machine does.
  docker build -q --network host --build-arg "BASE=$base" -t "$POSTGRES_IMAGE" "$ROOT/e2e/services/postgres" >/dev/null
  libs=$(bash "$ROOT/scripts/kafka.sh" jars | sed -n 's/^KAFKA_LIBS=//p')
  [ -n "$libs" ] || { echo "scripts/kafka.sh jars gave no directory" >&2; exit 1; }
  ctx=$(mktemp -d)
  cp -r "$ROOT/e2e/services/kafka/." "$ctx/"
  mkdir "$ctx/libs"
  cp "$libs"/*.jar "$ctx/libs/"
  docker build -q --network host --build-arg "BASE=$base" -t "$KAFKA_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
  echo "KAFKA_IMAGE=$KAFKA_IMAGE"
}

case "${1:-}" in
  build) build ;;
  *) echo "usage: $0 build" >&2; exit 2 ;;
esac
