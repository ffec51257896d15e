"""Builds a document from simple data without pydantic: the defaulted documents of a run without a
config file, with its flag values in place.

:func:`construct` takes exactly what the strict pydantic validation of :mod:`bootstrap.config.schema`
takes unchanged (mappings of known YAML keys whose values already have their field's type, and the
strings of a duration field) and answers None for anything else, which the loader then parses with
pydantic as usual. The defaults themselves are the dataclasses' own: there is no second copy of them.
"""

from __future__ import annotations

import sys
import types
from dataclasses import fields
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from bootstrap.config.model import Converted, _Model, aliases, mark_given

_T = TypeVar("_T", bound=_Model)


class _Unsure(Exception):
    """The value is not one the fast path can take as pydantic would."""


_EXACT = (str, int, bool)


def construct(model: type[_T], data: dict[str, Any]) -> _T | None:
    """``data`` (YAML keys) as a ``model`` instance equal to what pydantic would validate it into, or
    None when that is not certain (an unknown key, a value of another type, a duration that does not
    parse): then only pydantic can say what is wrong."""
    try:
        return _construct(model, data)
    except _Unsure:
        return None


_FIELDS: dict[type[_Model], dict[str, tuple[str, Any]]] = {}


def _fields(model: type[_Model]) -> dict[str, tuple[str, Any]]:
    """YAML key -> (attribute name, resolved type) of every field of ``model``."""
    known = _FIELDS.get(model)
    if known is None:
        hints = get_type_hints(model, vars(sys.modules[model.__module__]), include_extras=True)
        keys = aliases(model)
        known = _FIELDS[model] = {keys[f.name]: (f.name, hints[f.name]) for f in fields(model)}
    return known


def _construct(model: type[_T], data: object) -> _T:
    if type(data) is not dict:
        raise _Unsure
    known = _fields(model)
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in known:
            raise _Unsure
        name, hint = known[key]
        values[name] = _value(hint, value)
    document = model(**values)
    mark_given(document, frozenset(values))
    return document


def _value(hint: Any, value: object) -> object:
    """``value`` as a field of type ``hint`` holds it; raises :class:`_Unsure` unless certain."""
    if hint in _EXACT:
        if type(value) is not hint:  # strict: no bool for int, no str subclass, no coercion
            raise _Unsure
        return value
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Literal:
        if type(value) is not str or value not in args:
            raise _Unsure
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise _Unsure
        return _value(options[0], value)
    if origin is list:
        if type(value) is not list:
            raise _Unsure
        return [_value(args[0], item) for item in value]
    if origin is Annotated:
        base, *metadata = args
        if len(metadata) != 1 or not isinstance(metadata[0], Converted):
            raise _Unsure
        try:
            parsed = metadata[0].parse(value)
        except ValueError:
            raise _Unsure from None
        if type(parsed) is not base:
            raise _Unsure
        return parsed
    if isinstance(hint, type) and issubclass(hint, _Model):
        return _construct(hint, value)
    raise _Unsure
