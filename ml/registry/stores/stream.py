"""The stream's aggregate: what one batch commits in one transaction (observations, positions
with their fingerprints, processor states, processed event ids, dead letters, drift events,
forecasts, scores and the partitions' current statistics), and the positions, faults and
statistics read back from it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from ml.aggregates import FieldStats, merge_fields
from ml.observations import ObservationDelta, combine
from ml.registry import entities as e
from ml.registry.db import Database
from ml.registry.errors import StaleCheckpoint
from ml.registry.models import (
    DriftEventRecord,
    Forecast,
    Observation,
    ProcessedEvent,
    ScoreHistory,
    StreamCheckpoint,
    StreamFault,
    StreamStatistic,
    as_utc,
    utcnow,
)
from ml.registry.stores.dead_letters import add_dead_letters, add_field_rejections

__all__ = ["CheckpointKey", "StreamStore"]

#: (consumer, topic, partition)
CheckpointKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class _Marks:
    """What a stream batch records of its partitions (see ``StreamStore.apply_observations``)."""

    offsets: Mapping[CheckpointKey, int]
    states: Mapping[CheckpointKey, e.ProcessorState | None]
    expected: Mapping[CheckpointKey, int | None]
    fingerprints: Mapping[CheckpointKey, str | None]


class StreamStore:
    """The stream worker's commit and what it reads back (positions, checkpoints, faults)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- the batch commit --------------------------------------------------------------------
    def apply_observations(
        self,
        deltas: Iterable[ObservationDelta],
        checkpoints: Mapping[CheckpointKey, int] | None = None,
        states: Mapping[CheckpointKey, e.ProcessorState | None] | None = None,
        event_ids: Iterable[tuple[str, str]] = (),
        corrections: Iterable[tuple[str, str, datetime]] = (),
        drift_events: Iterable[dict[str, Any]] = (),
        forecasts: Iterable[e.ForecastRow] = (),
        scores: Iterable[dict[str, Any]] = (),
        *,
        statistics: Mapping[CheckpointKey, e.StatisticsChange] | None = None,
        expected: Mapping[CheckpointKey, int | None] | None = None,
        fingerprints: Mapping[CheckpointKey, str | None] | None = None,
        dead_letters: Iterable[e.DeadLetterRow] = (),
        field_rejections: Iterable[e.FieldRejectionCount] = (),
        attempts: int = 3,
    ) -> None:
        """Commit one stream batch in ONE transaction: merge ``deltas`` into the observations,
        record the partitions' ``checkpoints`` (offsets, with the ``fingerprints`` of the records
        at them) and processor ``states`` (with their format version), the processed
        ``event_ids``, late-event ``corrections`` per observation, new ``drift_events`` (deduped
        by event id), ``forecasts`` (upserted), score-history rows, the changes of the
        partitions' current ``statistics``, the batch's refused messages (``dead_letters``,
        deduped by their event id, which derives from topic/partition/offset) and the counts
        of the values it dropped from accepted events (``field_rejections``).

        ``expected`` fences the batch: for each key it names, the stored offset must still be
        the given one (None: no row yet), otherwise :class:`StaleCheckpoint` is raised and
        nothing is written (another worker took the partition and moved on).

        Checkpoints are written first so that, on SQLite, the write lock is held before the
        observation rows are read (no lost update between processes). A unique-key race on a new
        row (two workers during a rebalance hand-over) rolls back and retries the whole batch.
        """
        combined = sorted(combine(deltas).items(), key=lambda kv: kv[0])
        ids = [(domain, event_id) for domain, event_id in event_ids]
        late = Counter(corrections)
        extras = (
            list(drift_events),
            list(forecasts),
            list(scores),
            dict(statistics or {}),
            list(dead_letters),
            list(field_rejections),
        )
        marks = _Marks(checkpoints or {}, states or {}, expected or {}, fingerprints or {})
        for attempt in range(1, attempts + 1):
            try:
                self._apply(combined, marks, ids, late, extras)
                return
            except IntegrityError:
                if attempt == attempts:
                    raise

    def _apply(
        self,
        combined: list[tuple[tuple[str, str, datetime], ObservationDelta]],
        marks: _Marks,
        event_ids: list[tuple[str, str]],
        late: Counter[tuple[str, str, datetime]],
        extras: tuple[
            list[dict[str, Any]],
            list[e.ForecastRow],
            list[dict[str, Any]],
            dict[CheckpointKey, e.StatisticsChange],
            list[e.DeadLetterRow],
            list[e.FieldRejectionCount],
        ],
    ) -> None:
        now = utcnow()
        with self._db.session.begin() as session:
            keys = sorted(set(marks.offsets) | set(marks.states))
            stored = _stored_checkpoints(session, keys)
            for key, want in marks.expected.items():
                row = stored.get(key)
                if (row.offset if row is not None else None) != want:
                    raise StaleCheckpoint(
                        f"{key[1]}[{key[2]}] of {key[0]}: stored offset is "
                        f"{row.offset if row is not None else 'none'}, this batch starts after "
                        f"{want}; another worker committed it"
                    )
            for key in keys:
                _put_checkpoint(session, key, marks, now, stored)
            session.flush()
            if event_ids:  # the driver's executemany: no per-row work in SQLAlchemy
                mark = self._db.mark
                session.connection().exec_driver_sql(
                    f"INSERT INTO {ProcessedEvent.__tablename__} (domain, event_id)"
                    f" VALUES ({mark}, {mark})",
                    event_ids,
                )
            _merge_observations(session, combined, late, now, self._db)
            _add_drift_events(session, extras[0])
            _upsert_forecasts(session, extras[1], now, self._db.mark)
            _insert_many(session, ScoreHistory, extras[2])
            for key, change in sorted(extras[3].items()):
                _change_statistics(session, key, change, now, self._db)
            add_dead_letters(session, extras[4])
            add_field_rejections(session, extras[5])

    # --- reads of the stream's path ----------------------------------------------------------
    def known_event_ids(self, domain: str, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` were already processed for ``domain``."""
        ids = list(set(event_ids))
        found: set[str] = set()
        mark = self._db.mark
        with self._db.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                # plain driver SQL: building 500 bound parameters through the ORM cost ~2 us
                # per event on the stream's path
                sql = (
                    f"SELECT event_id FROM {ProcessedEvent.__tablename__} WHERE domain = {mark}"
                    f" AND event_id IN ({', '.join([mark] * len(chunk))})"
                )
                found.update(row[0] for row in conn.exec_driver_sql(sql, (domain, *chunk)))
        return found

    def positions(self, consumer: str) -> dict[tuple[str, int], e.StreamPosition]:
        """Where ``consumer``'s stored state ends, per (topic, partition) (no state blobs)."""
        query = select(
            StreamCheckpoint.topic,
            StreamCheckpoint.partition,
            StreamCheckpoint.offset,
            StreamCheckpoint.fingerprint,
        ).where(StreamCheckpoint.consumer == consumer)
        with self._db.engine.connect() as conn:
            return {(r[0], r[1]): e.StreamPosition(*r) for r in conn.execute(query)}

    def progress(self) -> list[e.PartitionProgress]:
        """Every consumer's stored position per partition with the time it last moved."""
        query = select(
            StreamCheckpoint.consumer,
            StreamCheckpoint.topic,
            StreamCheckpoint.partition,
            StreamCheckpoint.offset,
            StreamCheckpoint.updated_at,
        ).order_by(StreamCheckpoint.consumer, StreamCheckpoint.topic, StreamCheckpoint.partition)
        with self._db.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [e.PartitionProgress(r[0], r[1], r[2], r[3], as_utc(r[4])) for r in rows]

    def checkpoints(self, consumer: str) -> dict[tuple[str, int], e.StoredCheckpoint]:
        """``consumer``'s stored positions with the processor states they include."""
        query = select(StreamCheckpoint).where(StreamCheckpoint.consumer == consumer)
        with self._db.session() as session:
            return {(r.topic, r.partition): r.to_entity() for r in session.scalars(query)}

    def statistics(self, consumer: str, topic: str) -> list[e.StreamStatisticRow]:
        """The current statistics of ``consumer``'s partitions of ``topic``."""
        query = (
            select(StreamStatistic)
            .where(StreamStatistic.consumer == consumer, StreamStatistic.topic == topic)
            .order_by(StreamStatistic.partition, StreamStatistic.scope, StreamStatistic.name)
        )
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]

    # --- operators: positions and refused partitions -----------------------------------------
    def reset_positions(
        self, consumer: str, topic: str, offsets: Mapping[int, int] | None = None
    ) -> int:
        """Move ``consumer``'s stored positions on ``topic``: to ``offsets`` (partition -> last
        offset to treat as included) or, without it, to the beginning (-1). Observations and
        processor state stay; the positions lose their fingerprint and the topic's faults are
        cleared. Returns how many positions were moved."""
        now = utcnow()
        with self._db.session.begin() as session:
            rows = session.scalars(
                select(StreamCheckpoint).where(
                    StreamCheckpoint.consumer == consumer, StreamCheckpoint.topic == topic
                )
            ).all()
            moved = 0
            for row in rows:
                target = -1 if offsets is None else offsets.get(row.partition)
                if target is None:
                    continue
                row.offset, row.fingerprint, row.updated_at = target, None, now
                moved += 1
            session.execute(
                delete(StreamFault).where(
                    StreamFault.consumer == consumer, StreamFault.topic == topic
                )
            )
        return moved

    def record_fault(
        self, consumer: str, topic: str, partition: int, stored_offset: int, reason: str
    ) -> None:
        """Note that ``consumer`` refused a partition (replaces an earlier note)."""
        with self._db.session.begin() as session:
            row = session.get(StreamFault, (consumer, topic, partition))
            if row is None:
                row = StreamFault(consumer=consumer, topic=topic, partition=partition)
                session.add(row)
            row.stored_offset, row.reason, row.detected_at = stored_offset, reason, utcnow()

    def clear_fault(self, consumer: str, topic: str, partition: int) -> None:
        with self._db.session.begin() as session:
            row = session.get(StreamFault, (consumer, topic, partition))
            if row is not None:
                session.delete(row)

    def faults(self, consumer: str | None = None) -> list[e.PartitionFault]:
        """Partitions refused by a worker (of ``consumer``, or of any)."""
        query = select(StreamFault).order_by(StreamFault.topic, StreamFault.partition)
        if consumer is not None:
            query = query.where(StreamFault.consumer == consumer)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]


# --- the parts of a commit ---------------------------------------------------------------------
def _merge_observations(
    session: Session,
    combined: list[tuple[tuple[str, str, datetime], ObservationDelta]],
    late: Counter[tuple[str, str, datetime]],
    now: datetime,
    db: Database,
) -> None:
    """Merge the batch's deltas into their observation rows: the stored ones are read (and
    locked on PostgreSQL) in one query, then the driver's executemany updates them and another
    inserts the new ones (values bound as SQLAlchemy binds them, see :func:`_binder`; no ORM
    object or per-row SQLAlchemy work: a sparse stream writes one row per event)."""
    if not combined:
        return
    table = Observation.__table__
    c = table.c
    keys = [key for key, _ in combined]
    query = select(c.id, c.domain, c.series_key, c.period_start, c.n_events, c.fields,
                   c.corrections).where(
        c.domain.in_({k[0] for k in keys}),
        c.series_key.in_({k[1] for k in keys}),
        c.period_start.in_({k[2] for k in keys}),
    )  # fmt: skip
    if db.locking:
        query = query.with_for_update()
    wanted = set(keys)
    existing = {
        key: row
        for row in session.execute(query)
        if (key := (row.domain, row.series_key, row.period_start)) in wanted
    }
    connection, mark = session.connection(), db.mark
    as_json = _binder(c.fields, connection.dialect)
    as_time = _binder(c.period_start, connection.dialect)
    stamped = as_time(now)
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for key, delta in combined:
        row = existing.get(key)
        if row is None:
            fields = {k: v.to_dict() for k, v in delta.fields.items()}
            inserts.append((key[0], key[1], as_time(key[2]), delta.n_events, as_json(fields),
                            late[key], stamped))  # fmt: skip
            continue
        stored = {k: FieldStats.from_dict(v) for k, v in (row.fields or {}).items()}
        merged = merge_fields(stored, delta.fields)
        fields = {k: v.to_dict() for k, v in merged.items()}
        updates.append((as_json(fields), (row.n_events or 0) + delta.n_events,
                        (row.corrections or 0) + late[key], stamped, row.id))  # fmt: skip
    if updates:
        connection.exec_driver_sql(
            f"UPDATE {table.name} SET fields = {mark}, n_events = {mark}, corrections = {mark},"
            f" updated_at = {mark} WHERE id = {mark}",
            updates,
        )
    if inserts:
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} (domain, series_key, period_start, n_events, fields,"
            f" corrections, updated_at) VALUES ({', '.join([mark] * 7)})",
            inserts,
        )


def _stored_checkpoints(
    session: Session, keys: list[CheckpointKey]
) -> dict[CheckpointKey, StreamCheckpoint]:
    """The stored checkpoint rows among ``keys``, read in one query (without their state
    blobs, which the batch replaces: up to megabytes per partition)."""
    if not keys:
        return {}
    query = (
        select(StreamCheckpoint)
        .options(defer(StreamCheckpoint.state))
        .where(
            StreamCheckpoint.consumer.in_({k[0] for k in keys}),
            StreamCheckpoint.topic.in_({k[1] for k in keys}),
            StreamCheckpoint.partition.in_({k[2] for k in keys}),
        )
    )
    return {(r.consumer, r.topic, r.partition): r for r in session.scalars(query)}


def _put_checkpoint(
    session: Session,
    key: CheckpointKey,
    marks: _Marks,
    now: datetime,
    stored: Mapping[CheckpointKey, StreamCheckpoint],
) -> None:
    consumer, topic, partition = key
    offset, states = marks.offsets.get(key), marks.states
    row = stored.get(key)
    if row is None:
        if offset is None:
            raise ValueError(f"a new checkpoint needs an offset: {key}")
        row = StreamCheckpoint(consumer=consumer, topic=topic, partition=partition)
        session.add(row)
    if offset is not None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"checkpoint offset must be a non-negative int, got {offset!r}")
        row.offset = offset
        row.fingerprint = marks.fingerprints.get(key)
    if key in states:
        state = states[key]
        row.state = state.blob if state is not None else None
        row.state_version = state.version if state is not None else None
    row.updated_at = now


def _add_drift_events(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the drift events whose ``event_id`` is new; return how many."""
    if not rows:
        return 0
    known = set(
        session.scalars(
            select(DriftEventRecord.event_id).where(
                DriftEventRecord.event_id.in_([r["event_id"] for r in rows])
            )
        )
    )
    fresh = {r["event_id"]: r for r in rows if r["event_id"] not in known}
    _insert_many(
        session,
        DriftEventRecord,
        [{**r, "evidence": r.get("evidence") or {}} for r in fresh.values()],
    )
    return len(fresh)


def _insert_many(session: Session, entity: type, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``entity``'s table with one Core executemany per set of columns
    given (no ORM object per row; a column a row does not name takes its default)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for group in groups.values():
        session.execute(insert(entity.__table__), group)


def _binder(column: Any, dialect: Any) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value of ``column`` before the driver sees it on ``dialect``
    (the dialect's own implementation of the type: e.g. SQLite stores times as text in one
    format, which every equality on them relies on)."""
    return column.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def _upsert_sql(
    connection: Any, table: Any, keys: Sequence[str], values: Sequence[str], mark: str
) -> str:
    """``INSERT`` of ``keys`` + ``values`` into ``table``, ``ON CONFLICT (keys) DO UPDATE`` of
    ``values``, for the driver's executemany: the same SQL on SQLite and PostgreSQL, names
    quoted where the dialect would need it."""
    quote = connection.dialect.identifier_preparer.quote
    columns = [*keys, *values]
    return (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))})"
        f" VALUES ({', '.join([mark] * len(columns))})"
        f" ON CONFLICT ({', '.join(map(quote, keys))}) DO UPDATE SET "
        + ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in values)
    )


#: columns an upsert of a forecast replaces (the rest is its key)
_FORECAST_VALUES = ("value", "lower", "upper", "fallback_level", "created_at")


def _upsert_forecasts(
    session: Session, rows: Iterable[e.ForecastRow], now: datetime, mark: str
) -> int:
    """Insert or replace forecasts keyed by (domain, series, version, period): one
    ``INSERT ... ON CONFLICT (uq_forecast) DO UPDATE`` executed for all of them, in key order,
    as the driver's executemany (no ORM object and no per-row SQLAlchemy work: a sparse network
    stream writes one or two per event). The same SQL on SQLite and PostgreSQL; times go
    through the column type's own bind processor, once per distinct value."""
    latest = {(f.domain, f.series_key, f.model_version, f.period_start): f for f in rows}
    if not latest:
        return 0
    connection = session.connection()
    bind = _binder(Forecast.__table__.c.period_start, connection.dialect)
    stamps: dict[datetime, Any] = {}

    def stamp(value: datetime) -> Any:
        known = stamps.get(value)
        if known is None:
            known = stamps[value] = bind(value)
        return known

    keys = ("domain", "series_key", "model_version", "period_start")
    created = stamp(now)
    connection.exec_driver_sql(
        _upsert_sql(connection, Forecast.__table__, keys, _FORECAST_VALUES, mark),
        [
            (
                f.domain,
                f.series_key,
                f.model_version,
                stamp(f.period_start),
                f.value,
                f.lower,
                f.upper,
                f.fallback_level,
                created,
            )
            for _, f in sorted(latest.items(), key=lambda item: item[0])
        ],
    )
    return len(latest)


def _change_statistics(
    session: Session, key: CheckpointKey, change: e.StatisticsChange, now: datetime, db: Database
) -> None:
    """Apply one partition's statistics change (rows keyed by scope and name): the deletions as
    statements, the values as one ``INSERT ... ON CONFLICT DO UPDATE`` executed by the driver
    for all of them (no ORM object or per-row SQLAlchemy work: a batch changes tens of rows per
    partition; values bound as SQLAlchemy binds them, see :func:`_binder`)."""
    consumer, topic, partition = key
    of_partition = (
        StreamStatistic.consumer == consumer,
        StreamStatistic.topic == topic,
        StreamStatistic.partition == partition,
    )
    if change.replace:
        session.execute(delete(StreamStatistic).where(*of_partition))
    elif change.removed:
        session.execute(
            delete(StreamStatistic).where(
                *of_partition,
                tuple_(StreamStatistic.scope, StreamStatistic.name).in_(list(change.removed)),
            )
        )
    if not change.values:
        return
    table = StreamStatistic.__table__
    connection = session.connection()
    as_json = _binder(table.c.value, connection.dialect)
    stamped = _binder(table.c.updated_at, connection.dialect)(now)
    keys = ("consumer", "topic", "partition", "scope", "name")
    connection.exec_driver_sql(
        _upsert_sql(connection, table, keys, ("domain", "value", "updated_at"), db.mark),
        [
            (
                consumer,
                topic,
                partition,
                scope,
                name,
                change.domain,
                as_json(e.plain(value)),
                stamped,
            )
            for (scope, name), value in sorted(change.values.items())
        ],
    )
