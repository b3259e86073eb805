"""Misuse of the public API must fail type-checking (as temporalio's tests do): mypy runs on tests/typing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

MISUSE = Path(__file__).parent / "typing" / "misuse.py"


def test_misuse_fails_type_checking() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--hide-error-context", str(MISUSE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    reported = {int(m.group(1)) for m in re.finditer(r"misuse\.py:(\d+): error", result.stdout)}
    expected = {i for i, line in enumerate(MISUSE.read_text().splitlines(), 1) if "  # E:" in line}
    assert expected, "no misuse marked"
    assert reported == expected, (
        f"missed: {sorted(expected - reported)}, unexpected: {sorted(reported - expected)}\n{result.stdout}"
    )
