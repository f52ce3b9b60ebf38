"""A refused message as the store keeps it: :class:`~schemas.events.DeadLetterRecord` (what the
dead-letter topic carries, the whole payload) -> :class:`~ml.registry.entities.DeadLetterRow`
(a bounded excerpt of the payload, for operators)."""

from __future__ import annotations

from ml.registry.entities import DeadLetterRow
from schemas.events import DeadLetterRecord

__all__ = ["DEFAULT_EXCERPT_CHARS", "dead_letter_row", "excerpt", "storable"]

#: Characters of a payload kept by default (the ``DEAD_LETTER_PAYLOAD_CHARS`` setting).
DEFAULT_EXCERPT_CHARS = 500

#: Appended to a cut excerpt (counted in its length).
ELLIPSIS = "…"


def storable(text: str) -> str:
    """``text`` without NUL characters (PostgreSQL's text refuses them; a poison payload may
    hold them): each becomes U+FFFD."""
    return text.replace("\x00", "\ufffd")


def excerpt(text: str, limit: int = DEFAULT_EXCERPT_CHARS) -> str:
    """``text`` when it fits in ``limit`` characters, else its start ending in an ellipsis (in
    all at most ``limit`` characters). NUL characters are replaced (see :func:`storable`)."""
    text = storable(text)
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def dead_letter_row(record: DeadLetterRecord, limit: int = DEFAULT_EXCERPT_CHARS) -> DeadLetterRow:
    """The store's row of ``record``; its payload cut to at most ``limit`` characters."""
    payload = record.payload or ""
    return DeadLetterRow(
        event_id=record.event_id,
        consumer=excerpt(record.consumer or "", 120),
        topic=record.source_topic,
        partition=int(record.partition if record.partition is not None else -1),
        offset=int(record.offset if record.offset is not None else -1),
        key=excerpt(record.key, 255) if record.key else None,
        error_type=str(getattr(record.error_type, "value", record.error_type)),
        reason=storable(record.reason),
        payload=excerpt(payload, limit),
        payload_bytes=len(payload.encode("utf-8", "replace")),
        occurred_at=record.occurred_at,
    )
