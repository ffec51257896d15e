"""The pydantic side of the config documents: validates YAML data into the dataclasses of
:mod:`bootstrap.config.model` (and :mod:`bootstrap.config.join_model`) and dumps them back.

Only a run that reads a config file (or a flag value the loader cannot take as it is) imports this
module, and with it pydantic: the defaults are the dataclasses' own, built without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import TypeAdapter
from pydantic_core import core_schema

from bootstrap.config.model import aliases, mark_given

if TYPE_CHECKING:
    from bootstrap.config.model import Converted, _Model

_T = TypeVar("_T")


def document_schema(model: type[_Model], schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """A document type's schema: a mapping is accepted for it (strict mode would take only an instance;
    its fields stay strict), and the instance records which fields the mapping gave."""
    # The wrapper takes the reference: every use of the type, not only the first, must go through it.
    ref = schema.get("ref")
    schema = {**schema, "strict": False} if schema["type"] == "dataclass" else {**schema}
    schema.pop("ref", None)
    names = {key: name for name, key in aliases(model).items()}
    names.update((f.name, f.name) for f in fields(model))

    def record_given(value: object, handler: Callable[[object], Any]) -> Any:
        document = handler(value)
        if isinstance(value, dict):
            mark_given(document, frozenset(names[key] for key in value if key in names))
        return document

    return core_schema.no_info_wrap_validator_function(record_given, schema, ref=ref)


def converted_schema(converted: Converted, schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """A value YAML spells as a string: parsed before the (strict) type check, formatted when dumped."""
    return core_schema.no_info_before_validator_function(
        converted.parse,
        schema,
        serialization=core_schema.plain_serializer_function_ser_schema(converted.format, when_used="always"),
    )


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(model: type[_T]) -> TypeAdapter[_T]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def validate(model: type[_T], data: object) -> _T:
    """``data`` validated into ``model``; raises :class:`pydantic.ValidationError`."""
    return _adapter(model).validate_python(data)


def dump(document: object, *, exclude_none: bool = False) -> Any:
    """A document as JSON-compatible data with its YAML keys (durations and times as strings);
    ``exclude_none`` leaves out every unset (None) field, at any depth."""
    return _adapter(type(document)).dump_python(
        document, mode="json", by_alias=True, exclude_none=exclude_none
    )
