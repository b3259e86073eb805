"""New run ids are random version-4 UUIDs in the text form `uuid.UUID` reads and writes."""

from __future__ import annotations

import os
import uuid

from conveyor._engine.run_ids import new_run_id


def test_a_run_id_is_a_version_4_uuid_in_its_canonical_text() -> None:
    for _ in range(2000):
        text = new_run_id()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_run_ids_do_not_repeat_and_use_every_variant_nibble() -> None:
    ids = [new_run_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert {text[19] for text in ids} == set("89ab")


def test_a_forked_process_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its id goes to the parent, then it leaves at once
        os.close(read)
        os.write(write, new_run_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 4
    assert child != new_run_id()
