"""The container the pod runner's own tests run (`python -m tests.e2e.pod_app MODE MARKER`): it prints its
environment as one JSON line (the tests read it from the pod's log), serves /healthz on $CONVEYOR_PORT, and

- `serve`: on SIGTERM writes "SIGTERM" to MARKER and exits 0;
- `crash-once`: on its first start (MARKER missing) creates MARKER, writes "boom" to its termination message file
  ($CONVEYOR_TERMINATION_LOG) and exits 3; afterwards it serves;
- `stubborn`: ignores SIGTERM (only SIGKILL stops it)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    mode, marker = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(dict(os.environ)), flush=True)
    if mode == "crash-once" and not marker.exists():
        marker.write_text("started once")
        Path(os.environ["CONVEYOR_TERMINATION_LOG"]).write_text("boom")
        sys.exit(3)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if mode == "serve":
            marker.write_text("SIGTERM")
            stop.set()

    signal.signal(signal.SIGTERM, on_term)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["CONVEYOR_PORT"])), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while not stop.wait(0.2):  # a timed wait, so the signal handler gets to run
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
