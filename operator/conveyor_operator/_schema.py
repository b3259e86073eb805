"""pydantic JSON Schema to a Kubernetes *structural* OpenAPI v3 schema.

The API server accepts only a subset of JSON Schema in a CRD: every node typed, no `$ref`, no `additionalProperties:
false`, no `propertyNames`, no null types. pydantic writes all of those, so this walks its output once: references
are inlined, an optional field is its inner type (absence, not null, means unset), and titles go (descriptions are
what `kubectl explain` shows).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

_DROPPED = {"title", "propertyNames"}


class _Structural(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 schema of `model` (by alias), structural and self-contained."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_Structural, mode="serialization")
    definitions = raw.pop("$defs", {})
    cleaned: dict[str, Any] = _clean(raw, definitions)
    return cleaned


def _clean(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(each, definitions) for each in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        # A field's own description wins over its model's docstring.
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, definitions)
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue
        # Property names are data, not schema keywords: a property called "title" must survive.
        if key == "properties":
            cleaned[key] = {name: _clean(sub, definitions) for name, sub in value.items()}
        else:
            cleaned[key] = _clean(value, definitions)
    return cleaned
