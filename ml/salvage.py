"""Validation that keeps the good fields: an event whose only problems are invalid values of
its *droppable* fields (``DROPPABLE_FIELDS`` of the event model, e.g. the measurements of a
network measurement) is accepted with those values missing, and each dropped value is reported
as a :class:`FieldRejection` (field, reason, value) to be counted.

An event is still refused when anything else is wrong (a key field, the time, the id: the
pydantic error is raised unchanged, naming every problem) or when no value is left once the bad
ones are dropped (:class:`NothingValid`, see ``BaseEvent.has_values``).

``NaN`` / ``Infinity`` literals (not JSON: the strict parser refuses them) and numbers that
overflow to infinity are droppable values too, when they stand in a droppable top-level field
(:func:`lenient_loads`); anywhere else the payload stays unparsable.

Pure Python, names no domain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import BaseEvent

__all__ = [
    "FIELD_REASONS",
    "FieldRejection",
    "NothingValid",
    "describe",
    "lenient_loads",
    "validate_keeping_fields",
]

#: Why a value was dropped: below / above its field's range, NaN or infinite, not a number.
FIELD_REASONS = ("below_range", "above_range", "not_finite", "not_a_number")
#: Longest excerpt of a dropped value kept for operators.
VALUE_CHARS = 60

_BY_ERROR_TYPE = {
    "greater_than_equal": "below_range",
    "greater_than": "below_range",
    "less_than_equal": "above_range",
    "less_than": "above_range",
    "finite_number": "not_finite",
}


@dataclass(frozen=True, slots=True)
class FieldRejection:
    """One dropped value: which field, why (one of :data:`FIELD_REASONS`), the value as text
    (an excerpt) and the validator's message."""

    field: str
    reason: str
    value: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason} ({self.value}: {self.detail})"


class NothingValid(ValueError):
    """Every value the event carried was invalid: nothing is left to keep."""

    def __init__(self, dropped: list[FieldRejection]) -> None:
        self.dropped = dropped
        super().__init__("every measured value is invalid: " + "; ".join(str(d) for d in dropped))


class _NonFinite:
    """A ``NaN`` / ``Infinity`` literal (or a number overflowing to infinity) seen by
    :func:`lenient_loads`."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _excerpt(value: Any) -> str:
    try:
        text = value.text if isinstance(value, _NonFinite) else json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def describe(exc: ValidationError) -> str:
    """Every problem of a validation error on one line: ``field: message; ...``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def lenient_loads(
    value: bytes, droppable: tuple[str, ...]
) -> tuple[dict[str, Any], list[FieldRejection]] | None:
    """The JSON object of ``value`` with its non-finite values (``NaN``, ``Infinity``,
    ``1e400``) in ``droppable`` top-level fields set to null, and those values as rejections;
    None when the payload is unparsable for any other reason as well (the strict parser's
    verdict stands), or holds no such value."""
    try:
        data = json.loads(value.decode("utf-8"), parse_constant=_NonFinite, parse_float=_float)
    except (ValueError, RecursionError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    dropped = [
        FieldRejection(name, "not_finite", _excerpt(v), "Input should be a finite number")
        for name, v in data.items()
        if name in droppable and isinstance(v, _NonFinite)
    ]
    if not dropped:
        return None
    cleaned = {**data, **{d.field: None for d in dropped}}
    try:  # anything the strict parser would still refuse (other literals, lone surrogates...)
        return orjson.loads(orjson.dumps(cleaned)), dropped
    except (orjson.JSONEncodeError, orjson.JSONDecodeError, TypeError):
        return None


def validate_keeping_fields(
    model: type[BaseEvent],
    data: Mapping[str, Any],
    dropped: list[FieldRejection] | None = None,
) -> tuple[BaseEvent, list[FieldRejection]]:
    """``data`` validated as ``model``, its invalid droppable values set to missing; returns
    the event and every dropped value (``dropped``: values already dropped while parsing).

    Raises the pydantic ``ValidationError`` (naming every problem) when a field that is not
    droppable is invalid, and :class:`NothingValid` when the event has no value left."""
    dropped = list(dropped or ())
    droppable = model.DROPPABLE_FIELDS
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        if not droppable:
            raise
        bad: dict[str, dict[str, Any]] = {}
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            name = loc[0] if loc else None
            if name not in droppable or data.get(name) is None:  # type: ignore[arg-type]
                raise  # something else is wrong: the event is refused with every problem
            bad.setdefault(str(name), err)
        event = model.model_validate({**data, **{name: None for name in bad}})
        dropped += [
            FieldRejection(
                name,
                _BY_ERROR_TYPE.get(err["type"], "not_a_number"),
                _excerpt(data[name]),
                err["msg"],
            )
            for name, err in bad.items()
        ]
    if dropped and not event.has_values():
        raise NothingValid(dropped)
    return event, dropped
