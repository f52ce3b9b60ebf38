"""Request and prediction telemetry: Prometheus metrics, and the latency figures of served
predictions (:func:`latency_summary`, computed from the prediction log).

Each app has its own ``CollectorRegistry`` (several apps in one process never collide).
``GET /metrics`` exposes: ``millrace_http_requests_total{method,route,status}``,
``millrace_http_request_duration_seconds{method,route}``,
``millrace_predictions_total{domain,model_version,fallback}``,
``millrace_prediction_duration_seconds{domain}``,
``millrace_model_version_info{domain,version,algorithm}`` (1 for the served version),
``millrace_model_refresh_checks_total{domain}`` (checks of the store for a new version or
data), ``millrace_forecast_book_builds_total{domain}`` and
``millrace_forecast_book_build_seconds{domain}`` (books built, in the builder's process),
``millrace_build_info{process="api",version,python}`` (1),
``millrace_prediction_log_dropped_total`` (predictions the log could not keep).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from millrace.metrics import build_info

__all__ = ["LatencySummary", "Telemetry", "TelemetryMiddleware", "latency_summary"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    count: int
    avg_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    rate_per_s: float | None


def latency_summary(
    items: Sequence[tuple[float, float, str]],
) -> tuple[LatencySummary, dict[str, LatencySummary]]:
    """Overall and per model version, of ``(served at (epoch seconds), latency ms, version)``
    items in the order they were served (the prediction log's rows)."""
    by_version: dict[str, list[tuple[float, float]]] = {}
    for at, ms, version in items:
        by_version.setdefault(version, []).append((at, ms))
    overall = _summarise([(at, ms) for at, ms, _ in items])
    return overall, {v: _summarise(rows) for v, rows in sorted(by_version.items())}


def _summarise(items: list[tuple[float, float]]) -> LatencySummary:
    if not items:
        return LatencySummary(0, None, None, None, None)
    ms = np.array([m for _, m in items], dtype=float)
    span = max(at for at, _ in items) - min(at for at, _ in items)
    rate = (len(items) - 1) / span if len(items) > 1 and span > 0 else None
    return LatencySummary(
        count=len(items),
        avg_ms=float(ms.mean()),
        p95_ms=float(np.percentile(ms, 95)),
        p99_ms=float(np.percentile(ms, 99)),
        rate_per_s=rate,
    )


class Telemetry:
    """The app's Prometheus metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = build_info(self.registry, "api")
        self.requests = Counter(
            "millrace_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "millrace_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "millrace_predictions",
            "Predictions served",
            ["domain", "model_version", "fallback"],
            registry=self.registry,
        )
        self.prediction_seconds = Histogram(
            "millrace_prediction_duration_seconds",
            "Time to compute one prediction response",
            ["domain"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "millrace_model_version_info",
            "The model version served (1) per domain",
            ["domain", "version", "algorithm"],
            registry=self.registry,
        )
        self.refresh_checks = Counter(
            "millrace_model_refresh_checks",
            "Checks of the store for a new live version or changed data",
            ["domain"],
            registry=self.registry,
        )
        self.book_builds = Counter(
            "millrace_forecast_book_builds",
            "Forecast books built (off the serving process)",
            ["domain"],
            registry=self.registry,
        )
        self.book_build_seconds = Histogram(
            "millrace_forecast_book_build_seconds",
            "Time to build one forecast book, in the builder's process",
            ["domain"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "millrace_prediction_log_dropped",
            "Predictions dropped from the prediction log (buffer full: store unreachable)",
            registry=self.registry,
        )
        self._served: dict[str, tuple[str, str]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set (the hot path calls it on
        every request; only ``model_info``, whose series are removed, never comes through)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def prediction(self, domain: str, version: str, fallback: str | None, seconds: float) -> None:
        self.child(self.predictions, domain, version, fallback or "none").inc()
        self.child(self.prediction_seconds, domain).observe(seconds)

    def refresh_check(self, domain: str) -> None:
        self.refresh_checks.labels(domain).inc()

    def book_built(self, domain: str, seconds: float) -> None:
        self.book_builds.labels(domain).inc()
        self.book_build_seconds.labels(domain).observe(seconds)

    def serving(self, domain: str, version: str | None, algorithm: str | None) -> None:
        """Record which version a domain serves now (the previous one's series is removed)."""
        old = self._served.pop(domain, None)
        if old is not None:
            self.model_info.remove(domain, *old)
        if version is not None:
            labels = (version, algorithm or "")
            self.model_info.labels(domain, *labels).set(1)
            self._served[domain] = labels


class TelemetryMiddleware:
    """Pure ASGI middleware counting and timing every HTTP request by route template."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_see(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            telemetry = self.telemetry
            telemetry.child(telemetry.requests, method, route, str(status)).inc()
            telemetry.child(telemetry.request_seconds, method, route).observe(
                time.perf_counter() - started
            )
