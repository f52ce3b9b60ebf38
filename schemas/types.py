"""Constrained field types of the event contracts: only what every store can hold gets through.

PostgreSQL refuses NUL in text, lone surrogates cannot be encoded, ``VARCHAR(n)`` refuses longer
values, JSON columns refuse ``NaN``/``Infinity`` and a float summed or squared into an aggregate
must stay finite. These types refuse such values at validation time (a dead letter with the
reason), so poison never reaches the store and never stops a consumer.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints

__all__ = [
    "LABEL_PATTERN",
    "MAX_JSON_DEPTH",
    "MAX_JSON_TEXT",
    "MAX_MEASURE",
    "MAX_PRICE",
    "EventTime",
    "Finite",
    "FreeText",
    "JsonObject",
    "Label",
    "Measure",
    "Name",
    "Price",
    "Rate",
    "TEXT_PATTERN",
    "check_text",
    "label",
    "number",
]

#: Largest accepted price: squares and monthly sums of it stay far from float overflow.
MAX_PRICE = 1e12
#: Largest absolute value of a network measurement (same reason).
MAX_MEASURE = 1e9
#: Deepest nesting accepted inside free-form JSON objects (``evidence``, ``config``).
MAX_JSON_DEPTH = 16
#: Longest string (or key) accepted inside free-form JSON objects.
MAX_JSON_TEXT = 2000
_INT64 = 2**63

#: C0/C1 control characters, DEL and (lone) surrogates: never accepted in a label.
_LABEL_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The same, except tab, line feed and carriage return, which free text may contain.
_TEXT_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: What ``occurred_at`` must start with: an ISO 8601 date and time (not an epoch number).
_ISO_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def check_text(value: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or ValueError naming the first forbidden character."""
    bad = (_TEXT_BAD if multiline else _LABEL_BAD).search(value)
    if bad is not None:
        kind = "surrogate" if "\ud800" <= bad.group() <= "\udfff" else "control character"
        raise ValueError(
            f"must not contain a {kind} (U+{ord(bad.group()):04X} at position {bad.start()})"
        )
    return value


def _label(value: str) -> str:
    return check_text(value)


def _free_text(value: str) -> str:
    return check_text(value, multiline=True)


#: JSON Schema patterns documenting the rules above (publishers can check before sending).
LABEL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def label(max_length: int, *, min_length: int = 0, strip: bool = False) -> Any:
    """A one-line text type: at most ``max_length`` characters, no control characters."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=strip, min_length=min_length or None, max_length=max_length
        ),
        AfterValidator(_label),
        Field(json_schema_extra={"pattern": LABEL_PATTERN}),
    ]


#: A short identifier-like name (domain, scope, brand...): trimmed, 1-120 characters.
Name = label(120, min_length=1, strip=True)
#: A one-line text of at most 120 characters.
Label = label(120)
#: Human text (reasons): tab and line breaks allowed, other control characters not.
FreeText = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_free_text),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]

#: A finite float (JSON number; booleans and numeric strings are not numbers).
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: A non-negative price up to :data:`MAX_PRICE`.
Price = Annotated[float, Strict(), Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
#: A measurement within +-:data:`MAX_MEASURE`.
Measure = Annotated[float, Strict(), Field(ge=-MAX_MEASURE, le=MAX_MEASURE, allow_inf_nan=False)]
#: A non-negative measurement (bit rates).
Rate = Annotated[float, Strict(), Field(ge=0, le=MAX_MEASURE, allow_inf_nan=False)]


def number(ge: float, le: float) -> Any:
    """A finite JSON number within ``[ge, le]``."""
    return Annotated[float, Strict(), Field(ge=ge, le=le, allow_inf_nan=False)]


def _event_time_input(value: object) -> object:
    """Only an ISO 8601 string (or, from Python, a datetime): epoch numbers are ambiguous."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if not _ISO_PREFIX.match(value):
            raise ValueError(
                "must be an ISO 8601 date-time string with a timezone, e.g. 2024-05-01T12:00:00Z"
            )
        return value
    raise ValueError(
        f"must be an ISO 8601 date-time string with a timezone, not {type(value).__name__} "
        "(epoch numbers are not accepted)"
    )


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("occurred_at must carry a timezone (ISO 8601 with Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the representable range once converted to UTC") from None


#: Event time: ISO 8601 with a timezone, normalised to UTC.
EventTime = Annotated[
    datetime,
    BeforeValidator(_event_time_input),
    AfterValidator(_to_utc),
    Field(json_schema_extra={"format": "date-time", "type": "string"}),
]


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object every store can hold: bounded depth, finite numbers, int64 integers,
    keys and strings of at most :data:`MAX_JSON_TEXT` characters without control characters.
    Iterative, so that no nesting can exhaust the interpreter's recursion limit."""
    stack: list[tuple[str, Any, int]] = [("", value, 1)]
    while stack:
        path, item, depth = stack.pop()
        where = (path or "object")[:200]
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise ValueError(f"{where}: keys must be strings")
                    _check_json_text(key, f"{where} key")
                pairs: Any = item.items()
            else:
                pairs = enumerate(item)
            for key, child in pairs:
                stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
        elif isinstance(item, str):
            _check_json_text(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise ValueError(f"{where}: integer outside the 64-bit range")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where}: numbers must be finite")
        else:
            raise ValueError(f"{where}: {type(item).__name__} is not a JSON value")
    return value


def _check_json_text(text: str, where: str) -> None:
    if len(text) > MAX_JSON_TEXT:
        raise ValueError(f"{where}: text longer than {MAX_JSON_TEXT} characters")
    try:
        check_text(text, multiline=True)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


#: A free-form JSON object (evidence, model config) that the store's JSON columns accept.
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]
