"""Every bench refuses a bad size before it starts anything (no service is needed to see it), naming the flag and
what was expected, with argparse's exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.bench.conftest import BENCH

SIZES = {
    "engine.py": ["--runs", "--parallel"],
    "throughput.py": ["--runs", "--parallel", "--seconds"],
    "deployed.py": ["--runs", "--parallel", "--seconds", "--rates", "--rest"],
    "ui_paging.py": ["--runs", "--repeat"],
}
BAD = {
    "--seconds": [("-1", "expected a number of seconds > 0, got '-1'"), ("soon", "got 'soon'")],
    "count": [("0", "expected a whole number >= 1, got '0'"), ("1.5", "got '1.5'"), ("two", "got 'two'")],
}
CASES = [
    (script, flag, value, message)
    for script, flags in SIZES.items()
    for flag in flags
    for value, message in BAD["--seconds" if flag in ("--seconds", "--rest") else "count"]
]


@pytest.mark.parametrize(("script", "flag", "value", "message"), CASES)
def test_a_bad_size_is_refused_naming_the_flag(script: str, flag: str, value: str, message: str) -> None:
    # Without the services' variables: a bench that started anything before checking its flags would hang or fail
    # differently here.
    env = {k: v for k, v in os.environ.items() if k not in ("CONVEYOR_PG_DSN", "CONVEYOR_KAFKA", "KUBECONFIG")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), f"{flag}={value}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"argument {flag}: " in done.stderr and message in done.stderr
    assert done.stdout == ""
