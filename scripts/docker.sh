#!/usr/bin/env bash
# The project's own docker daemon: the image builds (scripts/image.sh) and the kind cluster (scripts/kind.sh) run
# on it, so they never meet, stop or fill another daemon on the machine (a developer's /var/run/docker.sock).
# Debian's docker.io, installed when missing; its socket, pid and state under /run/conveyor, its images and
# containers under ${CONVEYOR_CACHE:-~/.cache/conveyor}/docker (a cache: the node image and the base images stay).
# No docker0 bridge and no iptables rules of its own (--bridge none --iptables=false): nothing of the host's
# network changes; kind's user-defined network still works, and builds use --network host.
#
# Where root's capability bounding set lacks a capability (some VMs and sandboxes), `docker run --privileged`,
# and so every kind node, fails in runc; the daemon's default runtime is then scripts/runc-capfilter, which drops
# those capabilities from each container's spec. On a normal machine the daemon runs plain runc.
#
#   scripts/docker.sh start|stop|status|env
#     start   start the daemon if it does not answer; prints DOCKER_HOST=unix://...
#     env     prints DOCKER_HOST=... when it answers (exit 1 when not)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
RUN="${CONVEYOR_DOCKER_RUN:-/run/conveyor}"
SOCKET="$RUN/docker.sock"
HOST="unix://$SOCKET"
DATA="$CACHE/docker"
LOG="$CACHE/docker.log"
PIDFILE="$RUN/docker.pid"

answers() {
  DOCKER_HOST="$HOST" docker info >/dev/null 2>&1
}

# The capabilities (of those the kernel has) that root's bounding set lacks, as a count.
missing_caps() {
  local last bnd full
  last=$(cat /proc/sys/kernel/cap_last_cap)
  bnd=$((16#$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)))
  full=$(((1 << (last + 1)) - 1))
  python3 -c "print(bin($full & ~$bnd).count('1'))"
}

start() {
  mkdir -p "$RUN" "$DATA"
  exec 7>"$RUN/docker.lock"
  flock 7
  if answers; then
    echo "DOCKER_HOST=$HOST"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/docker.sh: starting a docker daemon needs root" >&2
    return 1
  fi
  command -v dockerd >/dev/null || APT_NO_RECOMMENDS=1 apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  local args=(--host "$HOST" --data-root "$DATA" --exec-root "$RUN/exec" --pidfile "$PIDFILE"
    --bridge none --iptables=false --ip6tables=false --ip-masq=false)
  if [ "$(missing_caps)" != 0 ]; then
    # Installed outside the repository: the daemon keeps the path, and a checkout may move or go.
    install -D -m 0755 "$HERE/runc-capfilter" "$CACHE/bin/runc-capfilter"
    args+=(--add-runtime "capfilter=$CACHE/bin/runc-capfilter" --default-runtime capfilter)
    echo "root's capability bounding set lacks $(missing_caps) capabilities: runtime runc-capfilter" >&2
  fi
  echo "starting dockerd on $SOCKET (data $DATA, log $LOG)" >&2
  nohup setsid dockerd "${args[@]}" </dev/null >"$LOG" 2>&1 7>&- 8>&- 9>&- &
  local pid=$! t0=$SECONDS
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dockerd exited; last lines of $LOG:" >&2
      tail -n 30 "$LOG" >&2
      return 1
    fi
    [ $((SECONDS - t0)) -lt 90 ] || { echo "dockerd did not answer on $SOCKET within 90s" >&2; return 1; }
    sleep 0.5
  done
  echo "DOCKER_HOST=$HOST"
}

stop() {
  local pid i
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    # It stops its containers and its containerd on the way out; a new start must wait for that.
    for i in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  echo "docker daemon stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "docker daemon answers on $SOCKET"; else echo "docker daemon not running"; exit 1; fi ;;
  env) answers && echo "DOCKER_HOST=$HOST" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
