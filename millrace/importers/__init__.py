"""Importers: turn data files and simulations into events and replay them to Kafka.

* :mod:`~millrace.importers.dealership` - dealership contract report CSV -> sale contract events
* :mod:`~millrace.importers.norway` - Norway OFV monthly counts -> SALE count events
  (one per make/model-month, with ``quantity``)
* :mod:`~millrace.importers.irish5g` - Irish 5G traces -> network measurement events
* :mod:`~millrace.importers.simulate` - seeded demand and network simulators with drift
* :mod:`~millrace.importers.replay` - :func:`open_source` and :func:`replay` (paced publishing)
"""

from millrace.importers.base import Record, Rejected, Source
from millrace.importers.dealership import DealershipSource
from millrace.importers.irish5g import Irish5GSource
from millrace.importers.norway import NorwaySource, expected_events
from millrace.importers.replay import ReplaySummary, open_source, replay
from millrace.importers.simulate import simulate_demand, simulate_network

__all__ = [
    "DealershipSource",
    "Irish5GSource",
    "NorwaySource",
    "Record",
    "Rejected",
    "ReplaySummary",
    "Source",
    "expected_events",
    "open_source",
    "replay",
    "simulate_demand",
    "simulate_network",
]
