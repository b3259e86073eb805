"""PydanticCodec: what a record store keeps of a workflow's object is the JSON pydantic makes of it, byte for byte
what `model_dump_json` gives, and it comes back as the declared type."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest
from typing_extensions import TypedDict

from conveyor._core.codec import PydanticCodec
from conveyor.errors import InvalidObject


class Order(pydantic.BaseModel):
    id: str = ""
    amount: int = 0
    note: str = pydantic.Field("", alias="Note")


class RushOrder(Order):
    deadline: str = ""


class Tree(pydantic.BaseModel):
    name: str
    children: list[Later] = []


class Later(pydantic.BaseModel):
    value: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Labels(TypedDict):
    colour: str


def test_a_model_is_stored_as_model_dump_json_gives_it_and_comes_back_equal() -> None:
    """Aliased fields too: stored by field name, read back by name (or by alias, as the model is declared)."""
    codec = PydanticCodec(Order)
    order = Order(id="o-1", amount=42, Note="fragile")
    data = codec.encode(order)
    assert isinstance(data, bytes)
    assert data == order.model_dump_json().encode()
    assert codec.decode(data) == order
    assert codec.decode(b'{"id":"o-1","amount":42,"Note":"fragile"}') == order


def test_a_subclass_instance_keeps_its_own_fields_as_model_dump_json_does() -> None:
    codec = PydanticCodec(Order)
    rush = RushOrder(id="r", amount=1, Note="", deadline="noon")
    assert codec.encode(rush) == rush.model_dump_json().encode()
    assert b'"deadline":"noon"' in codec.encode(rush)
    assert type(codec.decode(codec.encode(rush))) is Order


def test_a_model_completed_after_the_codec_was_made_works_once_pydantic_builds_it() -> None:
    codec = PydanticCodec(Tree)  # Later was not defined when Tree was, and nobody called model_rebuild
    tree = Tree(name="root", children=[Later(value=1)])
    assert codec.decode(codec.encode(tree)) == tree


def test_other_types_go_through_a_type_adapter() -> None:
    points = PydanticCodec(Point)
    assert points.decode(points.encode(Point(1, 2))) == Point(1, 2)
    labels = PydanticCodec(Labels)
    assert labels.decode(labels.encode({"colour": "red"})) == {"colour": "red"}


def test_bytes_that_are_not_the_type_are_refused_by_pydantic() -> None:
    with pytest.raises(pydantic.ValidationError, match="amount"):
        PydanticCodec(Order).decode(b'{"id":"o","amount":"many"}')


def test_coerce_names_the_field_and_what_was_expected() -> None:
    codec = PydanticCodec(Order)
    assert codec.coerce({"id": "o", "amount": "3"}, "initial_value") == Order(id="o", amount=3, Note="")
    with pytest.raises(InvalidObject, match="initial_value"):
        codec.coerce(["not", "an", "order"], "initial_value")
