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

    def encode(self, value: T) -> bytes:
        if self._is_model:
            return cast(pydantic.BaseModel, value).model_dump_json().encode()
        return self._adapter.dump_json(value)

    def decode(self, data: bytes) -> T:
        if self._is_model:
            return cast(T, cast(Any, self._type).model_validate_json(data))
        return self._adapter.validate_json(data)

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
