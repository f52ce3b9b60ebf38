"""The Domain ABC: the one interface the stream, trainer and API use for every domain.

Process hooks (all optional, no-ops by default), called by the processes for every registered
domain without naming any:

* :meth:`Domain.configure` - the domain as the process settings configure it (stream, trainer);
* :meth:`Domain.topic` - its input topic in those settings;
* :meth:`Domain.seed` - start-up seeding of the store (trainer, before consuming);
* :meth:`Domain.forecast_book` - how the API builds the forecasts it serves of a version;
* :meth:`Domain.check_scope` - whether a retrain of a scope can run here (API, before publishing:
  unknown scope, missing optional extra);
* :meth:`Domain.trainer_hooks` - its share of the trainer: the model commands it handles, the
  periodic tick and leadership start (run by the trainer owning commands partition 0), and
  what to do when one of its jobs ends. See :class:`TrainerHooks`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ml.observations import ObservationDelta

if TYPE_CHECKING:  # the training stack (pandas, lightgbm) is imported only by the trainer
    from ml.streaming import PartitionProcessor
    from ml.training.base import DomainTrainer
from schemas.events import BaseEvent, ModelCommand, RetrainRequest

__all__ = ["Domain", "RetrainGateway", "TrainerContext", "TrainerHooks"]


class RetrainGateway(ABC):
    """How a domain's trainer hooks ask for retraining: a request goes to the retrain topic
    (the trainer's intake makes it a job, or coalesces it), its job is read back by id."""

    @abstractmethod
    def submit(self, request: RetrainRequest) -> str:
        """Publish ``request`` (raises when not delivered); returns its id (the job id)."""

    @abstractmethod
    def status(self, request_id: str) -> str:
        """``queued`` | ``running`` | ``completed`` | ``failed`` | ``cancelled`` | ``unknown``."""


@dataclass(frozen=True, slots=True)
class TrainerContext:
    """What the trainer process lends a domain's hooks."""

    settings: object
    store: object
    retrain: RetrainGateway
    #: a stable name of this trainer process (e.g. for locks)
    owner: str


class TrainerHooks:
    """A domain's share of the trainer process; every method is a no-op by default.

    ``handles``/``apply``: model commands of ``ml.model-commands`` beyond activate/rollback
    (``apply`` raises ``ValueError`` for an invalid command: it is dead-lettered). ``start`` and
    ``tick``: only in the trainer owning partition 0 of the commands topic (one per consumer
    group), ``start`` once per leadership, ``tick`` at every poll (short, never raising).
    ``job_finished``: one of the domain's jobs ended (leader only), by its request ids.
    ``take``: a retrain request the domain handles itself instead of the trainer making it a
    job (e.g. a network field's drift: retrain every model of the field); True when taken
    (idempotent by request id: a replayed request does nothing)."""

    def handles(self, cmd: ModelCommand) -> bool:
        return False

    def apply(self, cmd: ModelCommand) -> None:
        raise ValueError(f"command {cmd.command} is not handled by the {cmd.domain} domain")

    def start(self) -> None:
        return None

    def tick(self) -> None:
        return None

    def job_finished(self, request_ids: list[str]) -> None:
        return None

    def take(self, request: RetrainRequest) -> bool:
        return False


class Domain(ABC):
    """A family of events and the models learnt from them."""

    #: Short stable name (``demand``, ``network``); also the ``domain`` of retrain requests.
    name: ClassVar[str]
    #: Name of the :class:`millrace.settings.Settings` attribute holding the input topic.
    topic_setting: ClassVar[str]
    #: The pydantic model of the input event.
    event_model: ClassVar[type[BaseEvent]]
    #: Major version of the domain's schema (the ``major`` in model versions).
    schema_major: ClassVar[int] = 1

    @abstractmethod
    def key(self, event: BaseEvent) -> str:
        """The Kafka message key (routes all events of one series to one partition)."""

    @abstractmethod
    def observe(self, event: BaseEvent) -> list[ObservationDelta]:
        """What this event adds to the stored observations."""

    def partition_processor(self, settings: object) -> PartitionProcessor | None:
        """A fresh processor for one partition (None: the domain only stores observations).

        ``settings`` is the process configuration (read by attribute, e.g. thresholds)."""
        return None

    def model_scope(self, scope: str) -> str:
        """The model scope a retrain request for ``scope`` trains (identity by default)."""
        return scope

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer | None:
        """The batch trainer of ``scope`` (None: no batch training). ``store`` is the registry
        the job runs against (a domain may read its model configs there)."""
        return None

    def check_scope(self, scope: str, store: object | None = None) -> None:
        """Raise :class:`~ml.training.errors.UnknownScope` when no model of the domain has
        ``scope``, :class:`~ml.training.errors.ExtraNotInstalled` when its models need an
        optional extra that is missing; before a retrain is asked for, so a client hears it
        at once. Default: builds the scope's trainer and its candidates (nothing is fitted)."""
        trainer = self.trainer(scope, store)
        if trainer is not None:
            trainer.candidates()

    def model_configs(self, store: object) -> list | None:
        """The domain's stored model configs for the stream (None: it has none to follow)."""
        return None

    # --- process hooks (optional) ------------------------------------------------------------
    def configure(self, settings: object) -> Domain:
        """The domain as the process ``settings`` configure it (default: itself)."""
        return self

    def topic(self, settings: object) -> str:
        """The input topic (default: the settings attribute named by ``topic_setting``)."""
        return str(getattr(settings, self.topic_setting))

    def seed(self, store: object) -> int:
        """Start-up seeding of the store by the trainer (e.g. default configs); how many rows
        were added. Idempotent: called at every trainer start."""
        return 0

    def trainer_hooks(self, context: TrainerContext) -> TrainerHooks | None:
        """The domain's share of the trainer process (None: nothing beyond batch jobs)."""
        return None

    def forecast_book(self) -> Callable[[object, object, str], object] | None:
        """How the API builds the forecasts of a live version it serves:
        ``builder(store, model, version) -> book``, a module-level function (a worker process
        imports it by name); the book answers ``predict(parts, horizon, confidence)``,
        ``history(key)`` and holds ``segments``. None: the domain serves no forecast book."""
        return None

    def parse(self, payload: bytes | str | dict) -> BaseEvent:
        """Validate a payload into the domain's event (raises pydantic ``ValidationError``)."""
        if isinstance(payload, dict):
            return self.event_model.model_validate(payload)
        return self.event_model.model_validate_json(payload)
