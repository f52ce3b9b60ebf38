"""Prometheus metrics of the consumer processes (streams worker, trainer); domain-free: label
values are domain names, scopes, topics, detector names, reasons and statuses as the events
carry them.

Every process has its own ``CollectorRegistry`` (several in one test process never collide),
served by :mod:`millrace.probes`. Names and units follow the Prometheus conventions (counters
end in ``_total``, durations are ``_seconds``; ``README.md`` lists them all):

every process (the api too): ``millrace_build_info{process,version,python}`` (1);
both: ``millrace_dead_letters_total{topic,
error_type}``, ``millrace_consumer_lag_messages{topic,partition}``;
streams: ``millrace_events_consumed_total{domain}``,
``millrace_batch_commit_duration_seconds{domain}``, ``millrace_drift_detections_total{domain,
detector}``, ``millrace_retrain_requests_published_total{domain,reason}``;
trainer: ``millrace_retrain_requests_total{domain,reason}`` (received),
``millrace_training_jobs_total{domain,status}`` and
``millrace_training_job_duration_seconds{domain,status}`` (finished jobs),
``millrace_training_jobs_running{domain}``,
``millrace_live_model_age_seconds{domain,scope}`` (since the live version was trained,
computed at each scrape).
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import millrace

__all__ = [
    "ConsumerMetrics",
    "LiveAges",
    "StreamsMetrics",
    "TrainerMetrics",
    "build_info",
    "consumer_lag",
]

_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def build_info(registry: CollectorRegistry, process: str) -> Gauge:
    """``millrace_build_info{process,version,python}`` = 1 in ``registry`` (every process)."""
    gauge = Gauge(
        "millrace_build_info",
        "Millrace build running in this process (always 1)",
        ["process", "version", "python"],
        registry=registry,
    )
    gauge.labels(process, millrace.__version__, platform.python_version()).set(1)
    return gauge


def consumer_lag(
    end_offsets: Mapping[tuple[str, int], int | None],
    positions: Mapping[tuple[str, int], int | None],
) -> dict[tuple[str, int], int]:
    """Messages not yet processed per partition: the log end offset (next offset to be
    written) minus the next offset to process (``positions``: the last processed offset; a
    partition with none counts from offset 0). Partitions whose end is unknown are left out."""
    lags = {}
    for tp, end in end_offsets.items():
        if end is None or end < 0:
            continue
        last = positions.get(tp)
        lags[tp] = max(0, end - (last + 1 if last is not None else 0))
    return lags


class ConsumerMetrics:
    """What both consumer processes export."""

    def __init__(self, process: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = build_info(self.registry, process)
        self.dead_letters = Counter(
            "millrace_dead_letters",
            "Messages refused to the dead-letter topic, by source topic and error type",
            ["topic", "error_type"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "millrace_consumer_lag_messages",
            "Messages of an assigned partition not processed yet",
            ["topic", "partition"],
            registry=self.registry,
        )
        self._lagging: set[tuple[str, int]] = set()

    def dead_letter(self, topic: str, error_type: str) -> None:
        self.dead_letters.labels(topic, error_type).inc()

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The lag of every partition this process has now; others' series are removed."""
        for topic, partition in self._lagging - set(lags):
            self.lag.remove(topic, str(partition))
        for (topic, partition), value in lags.items():
            self.lag.labels(topic, str(partition)).set(value)
        self._lagging = set(lags)


class StreamsMetrics(ConsumerMetrics):
    """The stream worker's metrics; :meth:`batch` once per committed batch."""

    def __init__(self) -> None:
        super().__init__("streams")
        self.events = Counter(
            "millrace_events_consumed",
            "Messages consumed and stored (accepted or dead-lettered), by domain",
            ["domain"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "millrace_batch_commit_duration_seconds",
            "Time of one batch's store transaction",
            ["domain"],
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.drift = Counter(
            "millrace_drift_detections",
            "Drift events published, by detector",
            ["domain", "detector"],
            registry=self.registry,
        )
        self.retrain_requests = Counter(
            "millrace_retrain_requests_published",
            "Retrain requests the stream triggers published, by reason",
            ["domain", "reason"],
            registry=self.registry,
        )

    def batch(
        self,
        domain: str,
        consumed: int,
        commit_seconds: float,
        dead_letters: Iterable[tuple[str, str]] = (),
        detectors: Iterable[str] = (),
        reasons: Iterable[str] = (),
    ) -> None:
        """A committed batch: messages consumed, commit time, its dead letters (topic, error
        type), drift detectors that fired and retrain reasons published."""
        self.events.labels(domain).inc(consumed)
        self.commit_seconds.labels(domain).observe(commit_seconds)
        for topic, error_type in dead_letters:
            self.dead_letter(topic, error_type)
        for detector in detectors:
            self.drift.labels(domain, detector).inc()
        for reason in reasons:
            self.retrain_requests.labels(domain, reason).inc()


class TrainerMetrics(ConsumerMetrics):
    """The trainer's metrics."""

    def __init__(self) -> None:
        super().__init__("trainer")
        self.retrain_requests = Counter(
            "millrace_retrain_requests",
            "Retrain requests received by the trainer (any publisher), by reason",
            ["domain", "reason"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "millrace_training_jobs",
            "Training jobs finished, by status (completed, failed)",
            ["domain", "status"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "millrace_training_job_duration_seconds",
            "Wall time of one training job, by status",
            ["domain", "status"],
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self.running = Gauge(
            "millrace_training_jobs_running",
            "Training jobs running in this trainer",
            ["domain"],
            registry=self.registry,
        )
        self.live_ages = LiveAges()
        self.registry.register(self.live_ages)

    def job(self, domain: str, status: str, seconds: float) -> None:
        self.jobs.labels(domain, status).inc()
        self.job_seconds.labels(domain, status).observe(seconds)


class LiveAges(Collector):
    """``millrace_live_model_age_seconds{domain,scope}``: seconds since each live version was
    trained, computed at each scrape from the training times last read from the store."""

    def __init__(self) -> None:
        self._trained: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def update(self, trained_at: Mapping[tuple[str, str], datetime]) -> None:
        """The live versions' training times by (domain, scope), all of them."""
        with self._lock:
            self._trained = {key: at.timestamp() for key, at in trained_at.items()}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "millrace_live_model_age_seconds",
            "Seconds since the live version of a scope was trained",
            labels=["domain", "scope"],
        )
        now = time.time()
        with self._lock:
            trained = dict(self._trained)
        for (domain, scope), at in sorted(trained.items()):
            family.add_metric([domain, scope], max(0.0, now - at))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "millrace_live_model_age_seconds",
            "Seconds since the live version of a scope was trained",
            labels=["domain", "scope"],
        )
