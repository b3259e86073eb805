"""How a workflow's object becomes the bytes a record store keeps, and back.

pydantic models (and anything else pydantic can validate: dataclasses, TypedDicts, plain dicts) are stored as
JSON through a TypeAdapter. Other types register a Codec with `register_codec`.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, Protocol, TypeVar, cast

import pydantic

from conveyor.errors import InvalidObject

T = TypeVar("T")


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...

    def coerce(self, value: object, field: str) -> T:
        """Return `value` as a T (validating a dict into a model, say) or raise InvalidObject naming `field`."""
        ...


class PydanticCodec(Generic[T]):
    """JSON through pydantic; models take the fast path of their own (de)serialisers."""

    def __init__(self, object_type: type[T]) -> None:
        self._type = object_type
        self._is_model = isinstance(object_type, type) and issubclass(object_type, pydantic.BaseModel)
        self._adapter: pydantic.TypeAdapter[T] = pydantic.TypeAdapter(object_type)

    # A model's own serializer and validator (documented attributes of BaseModel), called directly: what
    # model_dump_json and model_validate_json call, without their wrapper, nor the str the first returns (then
    # encoded again). Looked up on each call, not kept: a model not fully defined yet has placeholders there
    # until pydantic builds it. About 1.8 us less per step (one decode and one encode).
    # Typed through Any-annotated locals, not typing.cast: cast is a Python call, twice per step.
    def encode(self, value: T) -> bytes:
        if self._is_model:
            model: Any = value
            encoded: bytes = model.__pydantic_serializer__.to_json(model)
            return encoded
        return self._adapter.dump_json(value)

    def decode(self, data: bytes) -> T:
        # Fields are stored by name (encode's default) and read back by name or alias: validating by alias only,
        # pydantic's default, dropped an aliased field's stored value (the field came back at its default).
        if self._is_model:
            model_type: Any = self._type
            decoded: T = model_type.__pydantic_validator__.validate_json(data, by_alias=True, by_name=True)
            return decoded
        return self._adapter.validate_json(data, by_alias=True, by_name=True)

    def coerce(self, value: object, field: str) -> T:
        expected = getattr(self._type, "__name__", repr(self._type))
        if self._is_model:
            if isinstance(value, self._type):
                return value
            if not isinstance(value, dict):
                raise InvalidObject(field, f"a {expected} or a dict of its fields", f"got {type(value).__name__}")
        try:
            return self._adapter.validate_python(value, strict=False)
        except pydantic.ValidationError as e:
            raise InvalidObject(field, f"a valid {expected}", _describe(e, field)) from None


def _describe(error: pydantic.ValidationError, field: str) -> str:
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(p) for p in (field, *item["loc"]))
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


_registry: dict[type[Any], Codec[Any]] = {}
_lock = threading.Lock()


def register_codec(object_type: type[T], codec: Codec[T]) -> None:
    """Use `codec` for every workflow whose object type is `object_type`."""
    with _lock:
        _registry[object_type] = codec


def codec_for(object_type: type[T]) -> Codec[T]:
    with _lock:
        found = _registry.get(object_type)
    if found is not None:
        return cast(Codec[T], found)
    return PydanticCodec(object_type)
