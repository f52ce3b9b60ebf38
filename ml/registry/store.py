"""The registry store: one interface over SQLite and PostgreSQL (SQLAlchemy 2), split by
aggregate like MLflow's stores (``ml.registry.stores``), over one shared
:class:`~ml.registry.db.Database`.

Every method is one short transaction and returns plain entities (``ml.registry.entities``).
"""

from __future__ import annotations

from sqlalchemy import Engine

from ml.registry.db import Database, make_engine
from ml.registry.db import upgrade as migrate
from ml.registry.stores.dead_letters import DeadLetterStore
from ml.registry.stores.jobs import JobStore
from ml.registry.stores.models import ModelStore
from ml.registry.stores.monitoring import MonitoringStore
from ml.registry.stores.network import NetworkStore
from ml.registry.stores.predictions import PredictionLogStore
from ml.registry.stores.series import SeriesStore
from ml.registry.stores.stream import StreamStore

__all__ = ["Store"]


class Store:
    """The registry over one database: one attribute per aggregate store.

    * ``stream``: the stream batch commit, positions, checkpoints, faults, statistics
    * ``series``: observations and forecasts read back per series
    * ``models``: model versions, artifacts, activations
    * ``jobs``: training jobs
    * ``monitoring``: drift events and score history
    * ``network``: the network domain's configs, field states and command results
    * ``dead_letters``: the stream's refused messages (written with its batches)
    * ``predictions``: the prediction log (what the API served, written in batches)
    """

    def __init__(self, engine: Engine) -> None:
        self.db = Database(engine)
        self.engine = engine
        self.stream = StreamStore(self.db)
        self.series = SeriesStore(self.db)
        self.models = ModelStore(self.db)
        self.jobs = JobStore(self.db)
        self.monitoring = MonitoringStore(self.db)
        self.network = NetworkStore(self.db)
        self.dead_letters = DeadLetterStore(self.db)
        self.predictions = PredictionLogStore(self.db)

    @classmethod
    def from_url(cls, url: str, upgrade: bool = True) -> Store:
        """Open the database at ``url``, migrating it to the latest schema first by default."""
        if upgrade:
            migrate(url)
        return cls(make_engine(url))

    def ping(self) -> None:
        self.db.ping()

    def shareable_url(self) -> str | None:
        """The URL when another process can open the same database (not in-memory SQLite)."""
        return self.db.shareable_url()

    def close(self) -> None:
        self.db.close()
