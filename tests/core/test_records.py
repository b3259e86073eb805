"""The stored and streamed shapes keep what a frozen dataclass promises, though Meta's, Event's and
OutgoingEvent's `__init__` are written out (for speed): every field set from its argument, by position or by
name, defaults as declared, no field settable afterwards, equality and `dataclasses.replace` as before."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor._core.records import Event, Meta, OutgoingEvent

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def distinct_values(cls: type[Any]) -> dict[str, object]:
    """A value per field, each different from the field's default and from the others."""
    values: dict[str, object] = {}
    for n, field in enumerate(dataclasses.fields(cls)):
        default = field.default
        if field.name == "headers":
            values[field.name] = {"k": f"v{n}"}
        elif field.name == "created_at":
            values[field.name] = NOW
        elif field.name == "data":
            values[field.name] = f"d{n}".encode()
        elif isinstance(default, int) or field.type in ("int", int):
            values[field.name] = 100 + n
        else:
            values[field.name] = f"value-{n}"
    return values


@pytest.mark.parametrize("cls", [Meta, Event, OutgoingEvent])
def test_every_field_is_set_from_its_argument_by_name_and_by_position(cls: type[Any]) -> None:
    values = distinct_values(cls)
    by_name = cls(**values)
    by_position = cls(*values.values())
    for name, value in values.items():
        assert getattr(by_name, name) == value, name
        assert getattr(by_position, name) == value, name
    assert by_name == by_position


@pytest.mark.parametrize("cls", [Meta, Event, OutgoingEvent])
def test_no_field_can_be_set_afterwards(cls: type[Any]) -> None:
    made = cls(**distinct_values(cls))
    for field in dataclasses.fields(cls):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, field.name, None)


def test_defaults_and_replace_are_a_dataclasss() -> None:
    assert Meta() == Meta("", "", 0, "", "", 0, "", "")
    assert dataclasses.replace(Meta(version=3), trace_state="s") == Meta(version=3, trace_state="s")
    assert OutgoingEvent("f", 1, {}).data is None
    # data is not part of an outgoing event's identity
    assert OutgoingEvent("f", 1, {}, b"x") == OutgoingEvent("f", 1, {})
    assert Event(1, "f", 2, {}, NOW) != Event(2, "f", 2, {}, NOW)
