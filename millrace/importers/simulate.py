"""Seeded simulators of demand (sale/purchase contracts) and network measurements.

Both return a :class:`~millrace.importers.base.Source` whose records are sorted by
``occurred_at`` and fully determined by the arguments: the same arguments (seed included) give
identical events, event ids included. All randomness comes from one ``numpy`` generator drawn in
a fixed order; events are built lazily when iterated.

Demand: each segment (vehicle_type, brand, model, line) has a monthly SALE rate
``base_rate x weight x (1 + trend x m) x (1 + seasonality x sin(2 pi (month - 1) / 12 + phase))``
(``m`` = months since start); PURCHASE rates are ``purchase_ratio`` of that. Monthly counts are
Poisson, spread uniformly over the month. From ``drift_at`` on, the rates of the drifted segments
(both SALE and PURCHASE) are multiplied by ``drift_factor``.

Network: ``cells`` cells each report once per ``interval`` seconds. Every cell has its own mean
RSRP with an AR(1) walk around it; SNR, CQI, RSSI, RSRQ and bitrates follow RSRP. Some values are
missing (``None``) as in real traces. From ``drift_at`` on, the drifted cells lose
``drift_rsrp_db`` dB of RSRP and their downlink bitrate is multiplied by ``drift_factor``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from millrace.importers.base import IdFactory, Record, Rejected, Source
from ml.periods import add_months
from schemas.events import (
    ContractType,
    NetworkMeasurementEvent,
    SaleContractEvent,
    VehicleType,
)

__all__ = [
    "CATALOG",
    "DemandSource",
    "NetworkSource",
    "SegmentProfile",
    "simulate_demand",
    "simulate_network",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SegmentProfile:
    """A demand segment with its typical sale price (COP)."""

    vehicle_type: VehicleType
    brand: str
    model: str
    line: str
    price: float

    @property
    def key(self) -> str:
        return "|".join(
            (str(self.vehicle_type), self.brand.upper(), self.model.upper(), self.line.upper())
        )


_CAR, _MOTO = VehicleType.CAR, VehicleType.MOTORCYCLE
#: Segments used in order; more segments than listed get numbered trim lines.
CATALOG: tuple[SegmentProfile, ...] = (
    SegmentProfile(_CAR, "Mazda", "3 Touring", "Skyactiv", 95e6),
    SegmentProfile(_MOTO, "Yamaha", "FZ 2.0", "FZN-150", 11e6),
    SegmentProfile(_CAR, "Chevrolet", "Onix", "LT", 70e6),
    SegmentProfile(_MOTO, "Bajaj", "Boxer CT100", "CT100 KS", 6e6),
    SegmentProfile(_CAR, "Renault", "Duster", "Zen", 80e6),
    SegmentProfile(_MOTO, "Honda", "CB 190R", "CBR-R", 12e6),
    SegmentProfile(_CAR, "Hyundai", "Accent", "i25 GL", 60e6),
    SegmentProfile(_MOTO, "Suzuki", "GN 125", "GN125", 7e6),
    SegmentProfile(_CAR, "Kia", "Picanto", "Vibrant", 55e6),
    SegmentProfile(_MOTO, "Kawasaki", "Ninja 400", "Ninja 400 KRT", 30e6),
    SegmentProfile(_CAR, "Ford", "Explorer", "Explorer XLT", 190e6),
    SegmentProfile(_MOTO, "Yamaha", "MT-03", "MT", 22e6),
    SegmentProfile(_CAR, "Toyota", "Corolla Cross", "XLI", 120e6),
    SegmentProfile(_MOTO, "Honda", "Wave 110", "Wave Alpha", 5.5e6),
    SegmentProfile(_CAR, "Mazda", "CX-5", "CX-5 Sport", 140e6),
    SegmentProfile(_MOTO, "Bajaj", "Discover 125", "Discover", 6.5e6),
)


def _catalog(n: int) -> list[SegmentProfile]:
    base = list(CATALOG)
    return [
        base[i % len(base)]
        if i < len(base)
        else SegmentProfile(
            base[i % len(base)].vehicle_type,
            base[i % len(base)].brand,
            base[i % len(base)].model,
            f"{base[i % len(base)].line} {i // len(base) + 1}",
            base[i % len(base)].price,
        )
        for i in range(n)
    ]


def _pick(
    rng: np.random.Generator, n: int, chosen: float | Sequence[int | str], keys: list[str]
) -> set[int]:
    """Indices of the drifted items: a fraction (drawn with ``rng``) or explicit indices/keys."""
    if isinstance(chosen, (int, float)) and not isinstance(chosen, bool):
        count = min(n, max(0, math.ceil(float(chosen) * n)))
        return {int(i) for i in rng.choice(n, size=count, replace=False)}
    picked = set()
    for item in chosen:
        picked.add(keys.index(item) if isinstance(item, str) else int(item))
    return picked


class DemandSource(Source):
    """Simulated SALE/PURCHASE contract events (see :func:`simulate_demand`)."""

    name = "simulate_demand"
    time_ordered = True

    def __init__(
        self,
        segments: list[SegmentProfile],
        drifted: set[int],
        seconds: np.ndarray,
        segment_idx: np.ndarray,
        purchase: np.ndarray,
        price_noise: np.ndarray,
        id_prefix: str,
    ) -> None:
        self.segments = segments
        self.drifted_segments = sorted(segments[i].key for i in drifted)
        self._cols = (seconds, segment_idx, purchase, price_noise)
        self._id_prefix = id_prefix

    @property
    def estimated_total(self) -> int:
        return len(self._cols[0])

    def __iter__(self) -> Iterator[Record | Rejected]:
        make_id = IdFactory(self.name, self._id_prefix)
        seconds, seg_idx, purchase, noise = self._cols
        for i in range(len(seconds)):
            seg = self.segments[int(seg_idx[i])]
            sale_price = round(seg.price * float(noise[i]), 2)
            event = SaleContractEvent(
                event_id=make_id(i),
                occurred_at=EPOCH + timedelta(seconds=int(seconds[i])),
                contract_type=ContractType.PURCHASE if purchase[i] else ContractType.SALE,
                vehicle_type=seg.vehicle_type,
                brand=seg.brand,
                model=seg.model,
                line=seg.line,
                sale_price=sale_price,
                purchase_price=round(sale_price * 0.8, 2),
                contract_status="Activa",
                payment_method="Efectivo" if i % 3 == 0 else "Transferencia bancaria",
                source=self.name,
            )
            yield Record("topic_sales", event.segment_key, event)


def simulate_demand(
    seed: int,
    start: date,
    months: int = 36,
    segments: int = 12,
    base_rate: float = 20.0,
    trend: float = 0.01,
    seasonality: float = 0.3,
    purchase_ratio: float = 1.2,
    drift_at: date | None = None,
    drift_factor: float = 2.0,
    drift_segments: float | Sequence[int | str] = 0.25,
) -> DemandSource:
    """Monthly SALE/PURCHASE contracts for ``segments`` segments from ``start``'s month on.

    ``base_rate`` is the mean monthly SALE count of an average segment; ``drift_segments`` is a
    fraction of the segments (chosen with the seed) or a list of segment indices or keys. The
    returned source's ``drifted_segments`` lists the affected segment keys.
    """
    if months < 1 or segments < 1 or base_rate < 0:
        raise ValueError("months and segments must be >= 1 and base_rate >= 0")
    rng = np.random.default_rng(seed)
    catalog = _catalog(segments)
    keys = [s.key for s in catalog]
    weights = rng.lognormal(0.0, 0.5, size=segments)
    weights *= segments / weights.sum()
    phases = rng.normal(0.0, 0.3, size=segments)
    drifted = _pick(rng, segments, drift_segments, keys) if drift_at else set()
    drift_month = add_months(drift_at, 0) if drift_at else None

    seconds, seg_idx, purchase = [], [], []
    for m in range(months):
        lo, hi = add_months(start, m), add_months(start, m + 1)
        season = 1.0 + seasonality * np.sin(2 * np.pi * (lo.month - 1) / 12 + phases)
        rate = base_rate * weights * max(0.0, 1.0 + trend * m) * np.clip(season, 0, None)
        if drift_month is not None and lo >= drift_month:
            rate[sorted(drifted)] *= drift_factor
        for kind, factor in ((0, 1.0), (1, purchase_ratio)):
            counts = rng.poisson(rate * factor)
            n = int(counts.sum())
            seg_idx.append(np.repeat(np.arange(segments), counts))
            purchase.append(np.full(n, kind, dtype=np.int8))
            offsets = rng.integers(0, int((hi - lo).total_seconds()), size=n)
            seconds.append(int((lo - EPOCH).total_seconds()) + offsets)
    secs = np.concatenate(seconds)
    order = np.argsort(secs, kind="stable")
    noise = rng.normal(1.0, 0.05, size=len(secs)).clip(0.7, 1.3)
    prefix = repr(
        (
            seed,
            start,
            months,
            segments,
            base_rate,
            trend,
            seasonality,
            purchase_ratio,
            drift_at,
            drift_factor,
            sorted(drifted),
        )
    )
    return DemandSource(
        catalog,
        drifted,
        secs[order],
        np.concatenate(seg_idx)[order],
        np.concatenate(purchase)[order],
        noise,
        prefix,
    )


class NetworkSource(Source):
    """Simulated per-cell measurements (see :func:`simulate_network`)."""

    name = "simulate_network"
    time_ordered = True

    def __init__(
        self,
        cells: list[str],
        drifted: set[int],
        start: datetime,
        interval: float,
        columns: dict[str, np.ndarray],
        modes: np.ndarray,
        id_prefix: str,
    ) -> None:
        self.cells = cells
        self.drifted_cells = sorted(cells[i] for i in drifted)
        self._start, self._interval = start, interval
        self._columns, self._modes = columns, modes
        self._id_prefix = id_prefix

    @property
    def estimated_total(self) -> int:
        return len(self._modes)

    def __iter__(self) -> Iterator[Record | Rejected]:
        make_id = IdFactory(self.name, self._id_prefix)
        n_cells = len(self.cells)
        names = list(self._columns)
        rows = zip(*(self._columns[k].tolist() for k in names), strict=True)
        for i, values in enumerate(rows):
            cell = self.cells[i % n_cells]
            fields = {k: (None if v != v else v) for k, v in zip(names, values, strict=True)}
            event = NetworkMeasurementEvent(
                event_id=make_id(i),
                occurred_at=self._start + timedelta(seconds=(i // n_cells) * self._interval),
                cell_id=cell,
                network_mode=str(self._modes[i]),
                operator="SIM",
                trace=self.name,
                **fields,
            )
            yield Record("topic_network", cell, event)


def simulate_network(
    seed: int,
    start: datetime,
    n: int | None = None,
    seconds: float | None = None,
    cells: int = 8,
    interval: float = 1.0,
    missing_rate: float = 0.05,
    drift_at: datetime | None = None,
    drift_factor: float = 0.5,
    drift_rsrp_db: float = 10.0,
    drift_cells: float | Sequence[int | str] = 0.5,
) -> NetworkSource:
    """Measurements of ``cells`` cells, one per cell every ``interval`` s from ``start`` (tz-aware).

    Give either ``n`` (total events) or ``seconds`` (duration). ``drift_cells`` is a fraction of
    the cells (chosen with the seed) or a list of indices or cell ids; the returned source's
    ``drifted_cells`` lists them.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if (n is None) == (seconds is None):
        raise ValueError("give exactly one of n or seconds")
    total = int(n) if n is not None else int(float(seconds or 0) / interval) * cells
    rng = np.random.default_rng(seed)
    cell_ids = [f"SIM-{c:03d}" for c in range(cells)]
    drifted = _pick(rng, cells, drift_cells, cell_ids) if drift_at else set()
    idx = np.arange(total)
    cell_of = idx % cells
    tick = idx // cells
    ticks = int(tick.max()) + 1 if total else 0

    base = rng.uniform(-108.0, -82.0, size=cells)
    walk = np.zeros((ticks, cells))
    shocks = rng.normal(0.0, 1.5, size=(ticks, cells))
    for t in range(1, ticks):  # AR(1) around each cell's mean
        walk[t] = 0.95 * walk[t - 1] + shocks[t]
    rsrp = base[cell_of] + walk[tick, cell_of] if total else np.zeros(0)
    if drift_at is not None:
        late = (tick * interval) >= (drift_at - start).total_seconds()
        hit = late & np.isin(cell_of, sorted(drifted))
        rsrp = rsrp - drift_rsrp_db * hit
    else:
        hit = np.zeros(total, dtype=bool)
    rsrp = np.clip(rsrp, -120.0, -70.0)
    quality = (rsrp + 120.0) / 50.0  # 0 (bad) .. 1 (good)
    snr = np.clip(-5 + 30 * quality + rng.normal(0, 3, total), -10, 35)
    cqi = np.clip(np.round(1 + 14 * (snr + 5) / 35 + rng.normal(0, 1, total)), 1, 15)
    rsrq = np.clip(-19 + 12 * quality + rng.normal(0, 1.5, total), -20, -3)
    rssi = np.clip(rsrp + 25 + rng.normal(0, 3, total), -110, -40)
    dl = np.clip(rng.lognormal(np.log(2000 + 60000 * quality**2), 0.6), 0, 400000)
    dl = np.where(hit, dl * drift_factor, dl)
    ul = np.clip(rng.lognormal(np.log(300 + 8000 * quality**2), 0.6), 0, 60000)
    modes = np.where(rng.random(total) < 0.7, "5G", "LTE")
    columns = {
        "rsrp": rsrp.round(0),
        "rsrq": rsrq.round(1),
        "snr": snr.round(1),
        "cqi": cqi,
        "rssi": rssi.round(1),
        "dl_bitrate": dl.round(0),
        "ul_bitrate": ul.round(0),
        "nr_rsrp": np.where(modes == "5G", (rsrp + rng.normal(-3, 3, total)).round(1), np.nan),
        "speed": rng.choice([0.0, 0.0, 5.0, 30.0, 60.0], size=total),
    }
    for key in ("snr", "cqi", "rssi", "rsrq"):
        columns[key] = np.where(rng.random(total) < missing_rate, np.nan, columns[key])
    ping = rng.random(total) < 0.02  # pings are rare, as in the real traces
    columns["ping_avg"] = np.where(ping, rng.gamma(4.0, 6.0, total).round(1), np.nan)
    prefix = repr(
        (
            seed,
            start.isoformat(),
            total,
            cells,
            interval,
            missing_rate,
            drift_at.isoformat() if drift_at else None,
            drift_factor,
            drift_rsrp_db,
            sorted(drifted),
        )
    )
    return NetworkSource(cell_ids, drifted, start, interval, columns, modes, prefix)
