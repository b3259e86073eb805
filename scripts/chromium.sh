#!/usr/bin/env bash
# Debian's Chromium for the UI's browser tests (Playwright drives it; `playwright install` is never used: its
# CDN is not reachable from CI, Debian's mirror is).
#   scripts/chromium.sh start|stop|status|env
# `start` installs it when missing and prints CONVEYOR_CHROMIUM=<path>; there is no daemon, so `stop` is a no-op.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BIN="${CONVEYOR_CHROMIUM:-/usr/bin/chromium}"

installed() {
  [ -x "$BIN" ] && "$BIN" --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1
}

install() {
  APT_NO_RECOMMENDS=1 apt_install chromium fonts-dejavu-core
}

case "${1:-}" in
  start)
    installed || install
    installed || { echo "chromium at $BIN does not start" >&2; exit 1; }
    echo "CONVEYOR_CHROMIUM=$BIN"
    ;;
  stop) echo "chromium: nothing to stop" ;;
  status) if installed; then echo "chromium installed: $BIN"; else echo "chromium not installed"; exit 1; fi ;;
  env) installed && echo "CONVEYOR_CHROMIUM=$BIN" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
