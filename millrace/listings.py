"""Rich tables the CLI prints for stored records: training jobs, dead letters and dropped values."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from ml.registry.entities import (
    DeadLetterCounts,
    DeadLetterRow,
    FieldRejectionTotal,
    TrainingJobRow,
)

__all__ = [
    "dead_letter_counts_table",
    "dead_letters_table",
    "field_rejections_table",
    "jobs_table",
]


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"


def jobs_table(jobs: Iterable[TrainingJobRow]) -> Table:
    """One row per job: what it trained, its status, outcome, version and reason."""
    table = Table("job", "domain", "scope", "status", "outcome", "version", "finished", "reason",
                  title="Training jobs (newest first)")  # fmt: skip
    for job in jobs:
        table.add_row(
            job.id[:8],
            job.domain,
            job.scope,
            job.status,
            job.outcome or "-",
            job.version or "-",
            _when(job.finished_at),
            Text(job.reason or job.error or ""),  # plain text: no rich markup
        )
    return table


def dead_letter_counts_table(counts: DeadLetterCounts) -> Table:
    """Stored dead letters by error type and by topic."""
    table = Table("by", "what", "count", title=f"Dead letters: {counts.total:,} stored")
    for error_type, n in sorted(counts.by_error_type.items(), key=lambda kv: -kv[1]):
        table.add_row("error_type", error_type, f"{n:,}")
    for topic, n in sorted(counts.by_topic.items(), key=lambda kv: -kv[1]):
        table.add_row("topic", topic, f"{n:,}")
    return table


def dead_letters_table(rows: Iterable[DeadLetterRow], payload_chars: int = 80) -> Table:
    """The given dead letters with their position, reason and the start of their payload."""
    table = Table("refused at", "topic\\[partition]@offset", "error_type", "reason", "payload",
                  title="Latest dead letters (newest first)")  # fmt: skip
    for row in rows:
        payload = (
            row.payload
            if len(row.payload) <= payload_chars
            else (row.payload[: payload_chars - 1] + "…")
        )
        table.add_row(
            _when(row.occurred_at),
            Text(f"{row.topic}[{row.partition}]@{row.offset}"),
            Text(row.error_type),
            Text(row.reason),  # plain text: a payload's "[/x]" is no markup
            Text(payload),
        )
    return table


def field_rejections_table(rows: Iterable[FieldRejectionTotal]) -> Table:
    """Values dropped from events that were kept, by topic, field and reason, with the latest
    example."""
    rows = list(rows)
    total = sum(r.count for r in rows)
    table = Table("topic", "field", "reason", "count", "last seen", "e.g. value", "event",
                  title=f"Dropped values (events kept): {total:,}")  # fmt: skip
    for row in rows:
        table.add_row(
            Text(row.topic),
            row.field,
            row.reason,
            f"{row.count:,}",
            _when(row.last_seen_at),
            Text(f"{row.example_value} ({row.example_detail})"),
            Text(row.example_event_id),
        )
    return table
