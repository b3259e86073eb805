"""The services a bench runs on: the one its environment variable names, or the project's own, started by its
script (scripts/postgres.sh, kafka.sh, kube.sh print `VARIABLE=value` lines, and starting is idempotent)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def script_says(script: str, command: str, variable: str) -> str:
    """The value scripts/`script` `command` prints for `variable`; the bench exits saying so if it prints none."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / script), command], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(rf"{variable}=(\S+)", out)
    if not found:
        sys.exit(f"scripts/{script} {command} did not print {variable}: {out}")
    return found.group(1)


def service(script: str, variable: str) -> str:
    """$`variable` when set, else what scripts/`script` start prints for it."""
    return os.environ.get(variable) or script_says(script, "start", variable)
