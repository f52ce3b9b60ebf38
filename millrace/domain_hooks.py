"""The trainer's glue to the domains' process hooks (domain-free: it never names a domain).

* :class:`RequestGateway` is the :class:`~ml.domains.base.RetrainGateway` a domain's hooks
  retrain through: it publishes the request on the retrain topic (the trainer's intake makes it a
  job, or coalesces it into the scope's job) and reads the job back by request id.
* :class:`DomainHooks` holds the :class:`~ml.domains.base.TrainerHooks` of every registered
  domain and calls them: start-up seeding, model commands, the leader's start and tick, the end
  of a domain's job. A domain's failure in a tick is logged and never stops the trainer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from millrace.kafka import EventProducer
from millrace.settings import Settings
from ml.domains import Domain, all_domains
from ml.domains.base import RetrainGateway, TrainerContext, TrainerHooks
from ml.registry.store import Store
from schemas.events import ModelCommand, RetrainRequest

__all__ = ["DomainHooks", "RequestGateway"]

log = logging.getLogger("millrace.trainer")


class RequestGateway(RetrainGateway):
    """Retraining through retrain requests on the retrain topic; job ids are request ids."""

    def __init__(
        self,
        store: Store,
        producer: EventProducer,
        settings: Settings,
        *,
        lost_after_seconds: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.producer = producer
        self.topic = settings.topic_retrain_requests
        self.lost_after = lost_after_seconds
        self.monotonic = monotonic
        self._waiting: dict[str, float] = {}

    def submit(self, request: RetrainRequest) -> str:
        failed = self.producer.failed
        self.producer.publish(self.topic, f"{request.domain}/{request.scope}", request)
        if self.producer.flush(10) or self.producer.failed != failed:
            raise RuntimeError(
                f"retrain request for {request.domain}/{request.scope} not delivered"
            )
        self._waiting[request.event_id] = self.monotonic()
        return request.event_id

    def status(self, request_id: str) -> str:
        job = self.store.jobs.job_for_request(request_id)
        if job is not None:
            self._waiting.pop(request_id, None)
            return job.status
        since = self._waiting.setdefault(request_id, self.monotonic())
        return "unknown" if self.monotonic() - since > self.lost_after else "queued"


class DomainHooks:
    """The trainer hooks of every registered domain, by domain name."""

    def __init__(self, context: TrainerContext, domains: list[Domain] | None = None) -> None:
        self.domains = domains if domains is not None else all_domains()
        self.hooks: dict[str, TrainerHooks] = {}
        for domain in self.domains:
            hooks = domain.trainer_hooks(context)
            if hooks is not None:
                self.hooks[domain.name] = hooks

    def seed(self, store: Store) -> None:
        """Every domain's start-up seeding (a failure is logged: another trainer may be seeding
        at the same moment)."""
        for domain in self.domains:
            try:
                seeded = domain.seed(store)
            except Exception:  # noqa: BLE001
                log.exception("seeding the %s domain failed", domain.name)
                continue
            if seeded:
                log.info("seeded %d rows of the %s domain", seeded, domain.name)

    def command(self, cmd: ModelCommand) -> bool:
        """Apply ``cmd`` with the hooks of the first domain handling it; False if none does."""
        for hooks in self.hooks.values():
            if hooks.handles(cmd):
                hooks.apply(cmd)
                return True
        return False

    def start(self) -> None:
        """Leadership taken: every domain's start (a failure is logged; retried at the next
        leadership)."""
        for name, hooks in self.hooks.items():
            try:
                hooks.start()
            except Exception:  # noqa: BLE001
                log.exception("%s domain start failed", name)

    def tick(self) -> None:
        """The leader's turn at every poll: every domain's tick."""
        for name, hooks in self.hooks.items():
            try:
                hooks.tick()
            except Exception:  # noqa: BLE001 - a domain must never stop the trainer
                log.exception("%s domain tick failed", name)

    def take(self, request: RetrainRequest) -> bool:
        """Whether the request's domain handles it itself (no job is made)."""
        hooks = self.hooks.get(request.domain)
        return hooks is not None and hooks.take(request)

    def job_finished(self, domain: str, request_ids: list[str]) -> None:
        """One of ``domain``'s jobs ended."""
        hooks = self.hooks.get(domain)
        if hooks is not None:
            hooks.job_finished(request_ids)
