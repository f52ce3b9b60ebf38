"""Runtime configuration from environment variables (pydantic-settings).

Every knob has a documented default; ``.env.example`` and the README list them all. Invalid values
fail at start with a message naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "load_settings", "get_settings", "TOPIC_KEYS"]

#: Attribute names of the topic settings, in the order topics are created.
TOPIC_KEYS = (
    "topic_sales",
    "topic_network",
    "topic_retrain_requests",
    "topic_model_commands",
    "topic_model_updated",
    "topic_drift_events",
    "topic_dead_letter",
)


class SettingsError(RuntimeError):
    """A setting has an invalid value; the message names the environment variable."""


class Settings(BaseSettings):
    """All configuration; the environment variable is the field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "",
        description="Kafka bootstrap servers (host:port,...). Empty: use the embedded broker.",
    )
    embedded_broker_host: str = Field("127.0.0.1", description="Embedded broker listen address.")
    embedded_broker_port: int = Field(9092, ge=1, le=65535, description="Embedded broker port.")
    topic_sales: str = Field("sales.transactions", description="Sale/purchase contract events.")
    topic_network: str = Field("network.measurements", description="5G/LTE cell measurements.")
    topic_retrain_requests: str = Field("ml.retrain-requests", description="Retrain requests.")
    extra_domains: str = Field(
        "",
        description="Domains to register besides the shipped ones: comma-separated module:Class.",
    )
    default_domain: str = Field(
        "demand",
        min_length=1,
        description="Domain of the prediction routes and of --domain / ?domain= when omitted.",
    )
    topic_model_commands: str = Field("ml.model-commands", description="Activate / roll back.")
    topic_model_updated: str = Field("ml.model-updated", description="New active versions.")
    topic_drift_events: str = Field("ml.drift-events", description="Drift detections.")
    topic_dead_letter: str = Field("ml.dead-letter", description="Rejected input with reason.")
    topic_partitions: int = Field(4, ge=1, le=1024, description="Partitions of each topic created.")
    topic_replication_factor: int = Field(1, ge=1, description="Replication of created topics.")

    # --- Store and artifacts -----------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///var/millrace.db",
        description="SQLAlchemy URL. sqlite:///var/millrace.db or postgresql+psycopg://...",
    )
    model_dir: Path = Field(Path("var/models"), description="Directory of model artifacts.")
    artifacts_in_database: bool = Field(
        False, description="Keep model artifacts in the database instead of MODEL_DIR."
    )

    # --- Streams worker ----------------------------------------------------------------------
    streams_app_id: str = Field("millrace-streams", description="Faust app id / consumer group.")
    streams_batch_size: int = Field(500, ge=1, description="Events per store transaction.")
    streams_batch_timeout_seconds: float = Field(
        0.5, gt=0, description="Max wait to fill a batch before it is written."
    )
    broker_session_timeout_seconds: float = Field(
        10.0, gt=0, description="Consumer session timeout (group join takes about half)."
    )
    broker_rebalance_timeout_seconds: float = Field(
        10.0, gt=0, description="Consumer rebalance timeout."
    )
    max_event_bytes: int = Field(65536, ge=256, description="Larger payloads are dead-lettered.")
    max_future_seconds: float = Field(
        86400.0, ge=0, description="Events with occurred_at further in the future are rejected."
    )
    min_event_time: date = Field(
        date(2000, 1, 1), description="Events with occurred_at before this day are too_old."
    )
    dead_letter_payload_chars: int = Field(
        500,
        ge=16,
        le=65536,
        description="Characters of a refused payload kept in the store's dead letters.",
    )
    store_retry_initial_seconds: float = Field(
        0.5, gt=0, description="First wait before a failed store commit is retried."
    )
    store_retry_max_seconds: float = Field(
        10.0, gt=0, description="Longest wait between store commit retries (doubling)."
    )
    shutdown_timeout_seconds: float = Field(
        10.0, gt=0, description="SIGTERM ends every process within this bound."
    )
    demand_allowed_lateness_days: float = Field(
        3.0, ge=0, description="A month closes this long after its end (event time)."
    )
    forecast_horizon_months: int = Field(
        6, ge=1, le=24, description="Months ahead the online model forecasts per segment."
    )
    drift_window: int = Field(
        12, ge=5, description="Observations in the rolling drift window (months for demand)."
    )
    network_window_seconds: int = Field(
        60, ge=1, description="Default window of per-cell network aggregates (seconds)."
    )
    network_allowed_lateness_seconds: float = Field(
        30.0, ge=0, description="A cell window closes this long after its end (event time)."
    )
    network_score_every_seconds: float = Field(
        300.0, gt=0, description="Event time between running scores of one online model."
    )
    network_score_window_seconds: float = Field(
        3600.0,
        gt=0,
        description="Event time behind a network running score (sliding window, at least one "
        "window of the model); the field monitor and evaluate merge the partitions' latest "
        "scores within it.",
    )
    network_tree_min_measurements: int = Field(
        2,
        ge=1,
        description="Tree-based online network models (river_forest, river_tree) learn, score "
        "and forecast a cell's window only when its output field was measured at least this "
        "often in it; sparser windows are left to the linear models (1: every window).",
    )
    network_drift_cell_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A network field drifts (one retrain request) when this share of its active "
        "cells had a change detection within NETWORK_DRIFT_RECENT_WINDOWS windows.",
    )
    network_drift_recent_windows: int = Field(
        10, ge=1, le=1440, description="Windows of event time a cell's detection counts as recent."
    )

    # --- Trainer -------------------------------------------------------------------------------
    trainer_group_id: str = Field("millrace-trainer", description="Trainer consumer group.")
    monitoring_interval_seconds: float = Field(
        300.0, gt=0, description="How often the trainer re-scores each field's best model."
    )

    # --- Metrics and probes (streams, trainer) -----------------------------------------------
    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the streams' and trainer's metrics/probe port."
    )
    streams_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Streams worker: /metrics, /livez, /readyz (0: off)."
    )
    trainer_metrics_port: int = Field(
        9102, ge=0, le=65535, description="Trainer: /metrics, /livez, /readyz (0: off)."
    )
    probe_heartbeat_seconds: float = Field(
        30.0,
        gt=0,
        description="A consumer is ready while it has partitions and polled within this long;"
        " live while its loop ran within this long.",
    )

    # --- API ---------------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    jwt_secret: str = Field("", description="HS256 secret for Bearer tokens (empty: disabled).")
    jwt_public_key: str = Field("", description="RS256 public key PEM (empty: disabled).")
    jwt_issuer: str = Field("", description="Required `iss` claim (empty: not checked).")
    jwt_audience: str = Field("", description="Required `aud` claim (empty: not checked).")
    internal_service_key: str = Field("", description="X-Internal-Service-Key (empty: disabled).")
    auth_permission_claims: str = Field(
        "rolesAndPermissions,permissions,scope",
        description="JWT claims read for permissions, first present wins (list or spaced string).",
    )
    api_retrain_wait_seconds: float = Field(
        120.0, ge=0, description="How long POST /retrain waits for its job before answering 202."
    )
    api_command_wait_seconds: float = Field(
        30.0, gt=0, description="How long a command route waits for the trainer's result."
    )
    api_model_refresh_seconds: float = Field(
        5.0, gt=0, description="Fallback check of the store for a new active version / new data."
    )
    api_access_log: bool = Field(
        False, description="Log every request (uvicorn access log); metrics count them anyway."
    )
    service_name: str = Field(
        "sgivu-ml", min_length=1, max_length=120,
        description="The service name /health answers (the dealership clients' name).",
    )  # fmt: skip
    prediction_log_max_rows: int = Field(
        100000, ge=1, description="Prediction log retention: rows kept (the newest)."
    )
    prediction_log_retention_days: float = Field(
        30.0, gt=0, description="Prediction log retention: rows older than this are deleted."
    )
    prediction_log_flush_seconds: float = Field(
        1.0, gt=0, description="How often the API writes its buffered predictions to the log."
    )
    prediction_log_buffer: int = Field(
        50000, ge=100,
        description="Predictions buffered while the store is unreachable (oldest dropped past it).",
    )  # fmt: skip
    api_max_body_bytes: int = Field(
        1048576, ge=1024, description="Larger request bodies answer 413 before they are read."
    )
    api_max_header_bytes: int = Field(
        65536, ge=1024, description="Larger request heads (line + headers) are refused."
    )
    api_max_url_bytes: int = Field(8192, ge=256, description="Longer request URLs answer 414.")
    auth_failure_limit: int = Field(
        20, ge=1, description="Failed authentications per client address per window before 429."
    )
    auth_failure_window_seconds: float = Field(
        60.0, gt=0, description="Window of the failed-authentication throttle (seconds)."
    )

    # --- Triggers and training thresholds ----------------------------------------------------
    drift_threshold_sigma: float = Field(
        3.0, gt=0, description="Input drift when |mean - ref mean| > sigma x ref std."
    )
    degradation_factor: float = Field(
        1.5,
        gt=1.0,
        description="Degraded when score > baseline x factor (r2: < baseline / factor; for an"
        " r2 baseline <= 0: < baseline x factor); equality is not. Stream triggers and the"
        " trainer's field monitor.",
    )
    max_latency_seconds: float = Field(1.0, gt=0, description="Avg prediction latency trigger.")
    max_model_age_days: float = Field(90.0, gt=0, description="Staleness trigger (days).")
    retrain_cooldown_seconds: float = Field(3600.0, ge=0, description="Cooldown per scope.")
    catch_up_lag_seconds: float = Field(
        172800.0,
        ge=0,
        description="Catch-up mode: triggers whose event time is this far behind the wall clock"
        " are held (one per scope) and released when the stream has caught up (0: off).",
    )
    min_training_months: int = Field(12, ge=1, description="Minimum months of history to train.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        value = value.strip()
        for server in filter(None, (s.strip() for s in value.split(","))):
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql (+psycopg)://")
        return value

    @field_validator("extra_domains")
    @classmethod
    def _register_domains(cls, value: str) -> str:
        """Import and register the named domains (every process loading settings sees them)."""
        if value.strip():
            from ml.domains.registry import load_domains

            load_domains(value)
        return value.strip()

    @model_validator(mode="after")
    def _check_topics(self) -> Settings:
        names = [getattr(self, key) for key in TOPIC_KEYS]
        if len(set(names)) != len(names):
            raise ValueError("TOPIC_* settings must name distinct topics")
        return self

    # --- derived -----------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when no external Kafka is configured and the bundled broker is used."""
        return not self.kafka_bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        """The servers clients connect to (external, or the embedded broker's address)."""
        if self.kafka_bootstrap_servers:
            return self.kafka_bootstrap_servers
        return f"{self.embedded_broker_host}:{self.embedded_broker_port}"

    def topics(self) -> dict[str, str]:
        """Topic setting name -> topic name."""
        return {key: getattr(self, key) for key in TOPIC_KEYS}


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; raise :class:`SettingsError` naming bad variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{loc}: {error['msg']}")
        raise SettingsError("Invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached)."""
    return load_settings()
