#!/usr/bin/env bash
# helm for the chart's tests and for users without one: built with `go build` from its Go module
# (helm.sh/helm/v4/cmd/helm), fetched through the Go module proxy. The module cache is kept, the compiler cache is
# dropped after a successful build; only the first call builds (about two minutes on two cores).
#   scripts/helm.sh path|build|version|clean
# Everything lives under ${CONVEYOR_CACHE:-~/.cache/conveyor}/helm; `path` (and `build`) print HELM=/abs/path/helm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION="${CONVEYOR_HELM_VERSION:-v4.3.1}"
DIR="$CACHE/helm"
BIN="$DIR/bin-$HELM_VERSION"
HELM="$BIN/helm"

go_env() {
  command -v go >/dev/null || apt_install golang-go
  # An older Go (Debian's) fetches the toolchain helm's go.mod asks for through the module proxy.
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
  export GOMODCACHE="$DIR/go/mod" GOCACHE="$DIR/go/build" GOFLAGS="-mod=mod -buildvcs=false" GOTELEMETRY=off
  export CGO_ENABLED=0
}

build() {
  [ -f "$BIN/.complete" ] && [ -x "$HELM" ] && return 0
  mkdir -p "$DIR"
  # One build at a time: parallel test sessions share the cache.
  exec 9>"$DIR/.lock"
  flock 9
  if [ -f "$BIN/.complete" ] && [ -x "$HELM" ]; then return 0; fi
  go_env
  rm -rf "$BIN"
  mkdir -p "$BIN"
  local t0=$SECONDS pkg=helm.sh/helm/v4/internal/version
  echo "building helm $HELM_VERSION (helm.sh/helm/v4/cmd/helm)" >&2
  # `go install module@version` builds with helm's own go.mod and go.sum (no replaces there); the version is
  # stamped the way helm's Makefile stamps a release.
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X $pkg.version=$HELM_VERSION -X $pkg.metadata= -X $pkg.gitTreeState=clean" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
  "$HELM" version --short >/dev/null
  touch "$BIN/.complete"
  # The binary is all that is used from now on: drop the compiler cache, keep the modules.
  go clean -cache
  echo "helm $HELM_VERSION built in $((SECONDS - t0))s into $BIN" >&2
}

case "${1:-}" in
  path | build)
    build
    echo "HELM=$HELM"
    ;;
  version)
    build
    "$HELM" version --short
    ;;
  clean) rm -rf "$BIN" && echo "removed $BIN" ;;
  *)
    echo "usage: $0 path|build|version|clean" >&2
    exit 2
    ;;
esac
