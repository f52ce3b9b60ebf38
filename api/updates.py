"""Keep the served versions fresh: a model-updated subscriber and a periodic store check.

The subscriber reads ``ml.model-updated`` without a consumer group (every API process sees
every event) from the end of the topic, and rebuilds the domain's snapshot at once. The periodic
check (``API_MODEL_REFRESH_SECONDS``) catches events missed while the broker was away, and new
stored months. Neither ever stops the API: errors are logged and retried with a back-off.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.live import LiveModels
from millrace.settings import Settings
from schemas.events import ModelUpdatedEvent

__all__ = ["follow_model_updates", "refresh_periodically"]

log = logging.getLogger(__name__)


async def follow_model_updates(settings: Settings, live: LiveModels) -> None:
    """Rebuild a domain's snapshot for every model-updated event; runs until cancelled."""
    backoff = 1.0
    while True:
        consumer = AIOKafkaConsumer(
            settings.topic_model_updated,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        try:
            await consumer.start()
            backoff = 1.0
            async for message in consumer:
                try:
                    event = ModelUpdatedEvent.model_validate_json(message.value or b"")
                except ValidationError:
                    log.warning("ignored an invalid model-updated message at %s", message.offset)
                    continue
                if event.domain in live.domains:
                    await run_in_threadpool(live.refresh, event.domain, True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the API keeps serving; retry later
            log.warning("model-updated subscriber: %s; retrying in %.0f s", exc, backoff)
        finally:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001
                pass
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)


async def refresh_periodically(settings: Settings, live: LiveModels) -> None:
    """Check the store for a new live version or new months; runs until cancelled."""
    while True:
        await asyncio.sleep(settings.api_model_refresh_seconds)
        await run_in_threadpool(live.refresh_all)
