"""write_termination_message: what a worker says the operator reads from its pod's status. Written only into a
file that exists (the kubelet mounts it; a worker run by hand writes nothing), at most the 4096 bytes the kubelet
keeps, cut between characters, and a file that cannot be written never fails the exit it explains."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conveyor.kubernetes import CODE_MISMATCH, TERMINATION_LOG, TERMINATION_MESSAGE_LIMIT, write_termination_message


def test_the_constants_the_worker_and_the_operator_share() -> None:
    assert TERMINATION_LOG.as_posix() == "/dev/termination-log"
    assert TERMINATION_MESSAGE_LIMIT == 4096
    assert CODE_MISMATCH == "CodeMismatch"


def test_written_into_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    write_termination_message(log, f"{CODE_MISMATCH}: only in the code: PAID")
    assert log.read_text() == "CodeMismatch: only in the code: PAID"
    write_termination_message(str(log), "replaced")
    assert log.read_text() == "replaced"


def test_nothing_written_without_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "termination-log"
    write_termination_message(missing, "nobody reads this")
    write_termination_message(tmp_path / "absent" / "termination-log", "nor this")
    write_termination_message(None, "nor this")
    write_termination_message(tmp_path, "a directory is no termination log")
    assert list(tmp_path.iterdir()) == []


def test_truncated_to_the_limit_at_a_character_boundary(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    write_termination_message(log, "x" * 5000)
    assert log.read_bytes() == b"x" * TERMINATION_MESSAGE_LIMIT
    # 4095 one-byte characters, then a two-byte one that would end past the limit: it goes whole.
    write_termination_message(log, "x" * 4095 + "é" + "y")
    assert log.read_bytes() == b"x" * 4095
    # Three-byte characters: 1365 of them fill 4095 bytes, the 1366th does not fit.
    write_termination_message(log, "€" * 2000)
    assert log.read_text() == "€" * 1365
    assert len(log.read_bytes()) == 4095


def test_a_file_that_cannot_be_written_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")

    def refuse(self: Path, data: str) -> int:
        raise PermissionError("read-only")

    monkeypatch.setattr(Path, "write_text", refuse)
    with caplog.at_level(logging.WARNING, logger="conveyor.kubernetes"):
        write_termination_message(log, "why")
    assert "cannot write the termination message" in caplog.text
