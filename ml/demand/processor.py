"""The demand domain's per-partition stream processor.

For each accepted sale/purchase event: count it in the partition's monthly book (late events
are flagged as corrections). For each month the event-time watermark closes, for every known
segment: the online forecaster predicts the month, then learns it (progressive validation);
the segment's drift monitor sees its monthly inputs, the absolute error and the prediction
latency, and its change detectors (:mod:`ml.demand.changes`: level and variance CUSUMs on the
year-over-year sales ratio and on the forecast's absolute errors) see the month; detections
become drift events and, through the trigger policy, retrain requests. Input drift is tested on
each segment's year-over-year log ratio of monthly sales (seasonality cancels out; a level shift
of x2 moves it by log 2). The error degradation trigger compares
the partition's mean absolute error over the last ``window`` months with its baseline (the
same statistic when the window first filled, or after a new model was announced), degraded
when worse than baseline x DEGRADATION_FACTOR (scope ``global``).

Scopes: drift events and retrain requests are per segment (``vehicle_type|brand|model|line``);
the trainer maps a segment scope to the domain's model scope (``global``), so many drifting
segments make one job. Every id is deterministic in the events, so a replay yields the same.

Catch-up mode (:mod:`ml.triggers`): while the month closes are far behind the wall clock
(``clock``, injectable) the policy holds the requests; after each batch the processor releases
them at the time of the batch's first event within the lag bound. Staleness: at each month
close, a live version activated more than ``MAX_MODEL_AGE_DAYS`` before the close (event time)
gets one request (scope ``global``, reason ``staleness``, id from the version); the age is
counted from the version's activation, which is what the stream is told of it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ml.demand.changes import SegmentChanges, yoy_log_ratio
from ml.demand.months import ClosedMonth, MonthlyBook
from ml.demand.online import OnlineDemandForecaster
from ml.drift import DriftMonitor
from ml.periods import month_start, next_month
from ml.registry.entities import ForecastRow
from ml.streaming import PartitionProcessor, ProcessorOutput
from ml.triggers import TriggerPolicy, reason_for
from schemas.events import BaseEvent, DriftEvent, RetrainReason, SaleContractEvent, deterministic_id

__all__ = ["DemandProcessor", "ONLINE_MODEL"]

#: ``model_version`` of the forecasts the online model writes.
ONLINE_MODEL = "online"
DOMAIN = "demand"


class DemandProcessor(PartitionProcessor):
    """State of one partition of ``sales.transactions``."""

    #: 2: per-segment change detectors, catch-up and staleness state in the policy
    STATE_VERSION = 2

    def __init__(
        self,
        *,
        allowed_lateness: timedelta,
        policy: TriggerPolicy,
        sigma: float = 3.0,
        window: int = 12,
        horizon: int = 6,
    ) -> None:
        self.book = MonthlyBook(allowed_lateness=allowed_lateness)
        self.forecaster = OnlineDemandForecaster()
        self.policy = policy
        self.sigma = sigma
        self.window = window
        self.horizon = horizon
        self.monitors: dict[str, DriftMonitor] = {}
        self.errors: deque[float] = deque(maxlen=window)
        self.baseline: float | None = None
        self.history: dict[str, deque[float]] = {}
        self.changes: dict[str, SegmentChanges] = {}
        #: when the live version went live (its age is counted from there)
        self.live_since: datetime | None = None

    @classmethod
    def from_settings(
        cls, settings: Any, clock: Callable[[], datetime] | None = None
    ) -> DemandProcessor:
        """``clock``: the wall clock of catch-up mode (default :func:`ml.triggers.utc_now`)."""
        return cls(
            allowed_lateness=timedelta(days=settings.demand_allowed_lateness_days),
            policy=TriggerPolicy.from_settings(settings, clock=clock),
            sigma=settings.drift_threshold_sigma,
            window=settings.drift_window,
            horizon=settings.forecast_horizon_months,
        )

    # --- stream ------------------------------------------------------------------------------
    def process(self, events: Sequence[BaseEvent]) -> ProcessorOutput:
        out = ProcessorOutput()
        for event in events:
            assert isinstance(event, SaleContractEvent)
            if not self.book.add(event):
                out.corrections.append((DOMAIN, event.segment_key, month_start(event.occurred_at)))
        closed = self.book.close_ready()
        for month in closed:
            self._close(month, out)
        if closed:
            self._forecast(closed[-1], out)
        out.retrain_requests.extend(self.policy.release_caught_up(e.occurred_at for e in events))
        return out

    def use_model(self, version: str | None, at: datetime) -> None:
        """A new version is live: new reference windows and baselines; pending requests end."""
        super().use_model(version, at)
        self.live_since = at
        for key, monitor in self.monitors.items():
            monitor.set_reference(None)
            self.policy.job_finished(DOMAIN, key, at)
        self.errors.clear()
        self.baseline = None
        self.policy.job_finished(DOMAIN, "global", at)

    def statistics(self) -> dict[str, Any]:
        """Per segment: the drift monitor's statistics; ``global``: the degradation window."""
        out: dict[str, Any] = {key: m.stats() for key, m in sorted(self.monitors.items())}
        for key, changes in self.changes.items():
            out.setdefault(key, {})["changes"] = changes.stats()
        recent = sum(self.errors) / len(self.errors) if self.errors else None
        out["global"] = {
            "recent_mae": recent,
            "baseline_mae": self.baseline,
            "window": self.window,
            "n": len(self.errors),
            "degradation_factor": self.policy.degradation_factor,
            "model_version": self.model_version,
        }
        return out

    def statistics_stamp(self) -> Any:
        """The statistics change only when a month closes or a new model goes live."""
        return (self.book.closed_through, self.model_version)

    # --- month close -------------------------------------------------------------------------
    def _close(self, closed: ClosedMonth, out: ProcessorOutput) -> None:
        day = closed.month.date()
        at = next_month(closed.month)  # event time of the close
        month_errors: list[float] = []
        for segment, counts in closed.counts.items():
            if self.forecaster.last_month(segment) is not None:
                self.forecaster.fill_gaps(segment, day)
            result = self.forecaster.observe_month(
                segment,
                day,
                counts.sales,
                purchases=counts.purchases,
                sale_price=counts.avg_sale_price,
                purchase_price=counts.avg_purchase_price,
            )
            key = "|".join(segment)
            error = abs(result.actual - result.predicted)
            monitor = self.monitors.setdefault(
                key, DriftMonitor(sigma=self.sigma, window=self.window)
            )
            history = self.history.setdefault(key, deque(maxlen=13))
            history.append(float(counts.sales))
            yoy = yoy_log_ratio(history)
            inputs = {} if yoy is None else {"yoy_log_ratio": yoy}
            detections = monitor.update(
                inputs, abs_error=error, latency_seconds=result.latency_seconds
            )
            changes = self.changes.setdefault(key, SegmentChanges())
            detections.extend(changes.update(yoy, error))
            for d in detections:
                drift = DriftEvent(
                    event_id=deterministic_id("drift", key, day, d.detector, d.statistic),
                    occurred_at=at,
                    domain=DOMAIN,
                    scope=key,
                    detector=d.detector,
                    statistic=d.statistic,
                    value=d.value,
                    threshold=d.threshold,
                    model_version=ONLINE_MODEL,
                    evidence={**d.evidence, "month": day.isoformat()},
                )
                out.drift_events.append(drift)
                self._trigger(key, reason_for(d), drift.evidence, at, f"{day}/{d.detector}", out)
            month_errors.append(error)
        self._check_degradation(sum(month_errors) / len(month_errors), day, at, out)
        self._check_staleness(at, out)
        metrics = self.forecaster.metrics()
        out.scores.extend(
            {
                "domain": DOMAIN,
                "scope": "global",
                "model_id": ONLINE_MODEL,
                "metric": name,
                "score": value,
                "trigger": "online",
                "recorded_at": at,
            }  # fmt: skip
            for name in ("mae", "rmse", "mape", "r2")
            if (value := metrics.get(name)) is not None
        )

    def _check_degradation(
        self, month_mae: float, day: Any, at: datetime, out: ProcessorOutput
    ) -> None:
        """Error degradation of the partition's segments together (scope ``global``): the mean
        of the last ``window`` monthly MAEs against its value when the window first filled."""
        self.errors.append(month_mae)
        if len(self.errors) < self.window:
            return
        recent = sum(self.errors) / len(self.errors)
        if self.baseline is None:
            self.baseline = recent
        if self.policy.degraded(recent, self.baseline, "mae"):
            evidence = {"mae": recent, "baseline_mae": self.baseline, "month": day.isoformat(),
                        "factor": self.policy.degradation_factor}  # fmt: skip
            self._trigger("global", RetrainReason.DEGRADATION, evidence, at, f"{day}/mae", out)

    def _check_staleness(self, at: datetime, out: ProcessorOutput) -> None:
        """One staleness request per live version older than the policy's max age at ``at``."""
        if self.model_version is None or self.live_since is None:
            return
        request = self.policy.check_staleness(
            DOMAIN, "global", self.live_since, at, version=self.model_version
        )
        if request is not None:
            out.retrain_requests.append(request)

    def _trigger(
        self, key: str, reason: RetrainReason, evidence: dict, at: datetime, tag: str,
        out: ProcessorOutput,
    ) -> None:  # fmt: skip
        request = self.policy.consider(
            domain=DOMAIN, scope=key, reason=reason, evidence=evidence, at=at, key=tag
        )
        if request is not None:
            out.retrain_requests.append(request)

    def _forecast(self, closed: ClosedMonth, out: ProcessorOutput) -> None:
        for segment in closed.counts:
            forecast = self.forecaster.forecast(segment, horizon=self.horizon)
            key = "|".join(segment)
            out.forecasts.extend(
                ForecastRow(
                    DOMAIN,
                    key,
                    ONLINE_MODEL,
                    month_start(_at(p.month)),
                    p.value,
                    p.lower,
                    p.upper,
                    forecast.fallback_level,
                )  # fmt: skip
                for p in forecast.points
            )
            metrics = self.forecaster.metrics(segment)
            if metrics.get("mae") is not None:
                out.scores.append(
                    {
                        "domain": DOMAIN,
                        "scope": key,
                        "model_id": ONLINE_MODEL,
                        "metric": "mae",
                        "score": metrics["mae"],
                        "trigger": "online",
                        "recorded_at": next_month(closed.month),
                    }  # fmt: skip
                )


def _at(day: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
