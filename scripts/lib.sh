# Shared helpers of the service scripts: where the cache lives, free ports, waiting for a port, installing a
# Debian package, and the Debian mirror that debootstrap uses.
# shellcheck shell=bash

CACHE="${CONVEYOR_CACHE:-$HOME/.cache/conveyor}"
mkdir -p "$CACHE"

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

port_open() {  # port_open PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {  # wait_port PORT SECONDS WHAT
  local port=$1 limit=$2 what=$3 waited=0
  until port_open "$port"; do
    sleep 0.2
    waited=$((waited + 1))
    if [ "$waited" -ge $((limit * 5)) ]; then
      echo "$what did not open 127.0.0.1:$port within ${limit}s" >&2
      return 1
    fi
  done
}

apt_install() {  # [APT_NO_RECOMMENDS=1] apt_install PACKAGE...
  if [ "$(id -u)" != 0 ]; then
    echo "need root to apt-get install $*" >&2
    return 1
  fi
  # Another script (a parallel fixture, the machine's own updater) may hold the dpkg lock: wait for it, not fail.
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  local extra=()
  [ "${APT_NO_RECOMMENDS:-}" = 1 ] && extra=(--no-install-recommends)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${extra[@]}" "$@" >/dev/null
}

debian_mirror() {  # the Debian mirror for debootstrap: $CONVEYOR_DEBIAN_MIRROR, else the one this machine's apt uses
  local found="${CONVEYOR_DEBIAN_MIRROR:-}"
  # deb822 .sources first, then the one-line format.
  [ -n "$found" ] || found=$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources \
    2>/dev/null | head -n1 || true)
  [ -n "$found" ] || found=$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' \
    /etc/apt/sources.list 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    echo "no Debian mirror found in apt's sources; set CONVEYOR_DEBIAN_MIRROR" >&2
    return 1
  fi
  echo "$found"
}
