"""Stream processor states carry a format version (an unknown one is never unpickled) and the
processors' statistics are plain data, stored as rows of the changed values only."""

from __future__ import annotations

import json
import logging
import pickle
from datetime import UTC, date, datetime

import pytest

from millrace.importers.simulate import simulate_demand, simulate_network
from millrace.settings import load_settings
from ml.demand.processor import DemandProcessor
from ml.network.processor import NetworkProcessor
from ml.registry.entities import ProcessorState
from ml.streaming import (
    PartitionProcessor,
    UnknownStateVersion,
    statistics_change,
    statistics_rows,
)
from streams.app import _restore

SETTINGS = load_settings(_env_file=None)


def demand_processor() -> DemandProcessor:
    source = simulate_demand(seed=1, start=date(2023, 1, 1), months=18, segments=4)
    processor = DemandProcessor.from_settings(SETTINGS)
    processor.process([record.event for record in source.records()])
    return processor


def test_a_state_of_its_version_restores() -> None:
    processor = demand_processor()
    state = processor.state()
    assert state.version == DemandProcessor.STATE_VERSION
    restored = DemandProcessor.restore(state)
    assert restored.forecaster.metrics() == processor.forecaster.metrics()


def test_a_state_of_another_version_is_not_unpickled() -> None:
    # not a pickle at all: unpickling it would fail differently
    state = ProcessorState(DemandProcessor.STATE_VERSION + 1, b"not a pickle")
    with pytest.raises(UnknownStateVersion, match="version 2"):
        DemandProcessor.restore(state)
    with pytest.raises(UnknownStateVersion, match="version None"):
        DemandProcessor.restore(ProcessorState(None, b"not a pickle"))


def test_a_state_of_another_class_is_refused() -> None:
    blob = pickle.dumps(NetworkProcessor())
    with pytest.raises(TypeError, match="NetworkProcessor"):
        DemandProcessor.restore(ProcessorState(DemandProcessor.STATE_VERSION, blob))


def test_the_worker_says_loudly_it_rebuilds_an_unknown_state(caplog) -> None:
    state = ProcessorState(99, b"not a pickle")
    with caplog.at_level(logging.ERROR, logger="millrace.streams"):
        assert _restore(DemandProcessor, ("sales.transactions", 2), state) is None
    [record] = caplog.records
    assert "sales.transactions[2]" in record.message and "version 99" in record.message
    assert "NOT restored" in record.message
    good = demand_processor().state()
    assert isinstance(_restore(DemandProcessor, ("sales.transactions", 2), good), DemandProcessor)
    assert _restore(None, ("other", 0), good) is None  # no processor for that topic


@pytest.mark.parametrize("processor", ["demand", "network"])
def test_statistics_are_plain_json(processor: str) -> None:
    if processor == "demand":
        p: PartitionProcessor = demand_processor()
    else:
        p = NetworkProcessor()
        source = simulate_network(seed=3, start=datetime(2026, 1, 1, tzinfo=UTC), n=3000, cells=3)
        p.process([record.event for record in source.records()])
    rows = statistics_rows(p)
    assert rows, "a processor that saw events has statistics"
    assert all(isinstance(scope, str) and isinstance(name, str) for scope, name in rows)
    # JSON round trip is the identity (what the JSON column stores is what is read back)
    assert json.loads(json.dumps(list(rows.values()), allow_nan=False)) == list(rows.values())


def test_statistics_change_writes_what_changed() -> None:
    before = {("a", "n"): 1, ("a", "mean"): None, ("b", "n"): 2}
    now = {("a", "n"): 1, ("a", "mean"): 0.5, ("c", "n"): 3}
    change = statistics_change("demand", before, now)
    assert change is not None and not change.replace
    assert change.values == {("a", "mean"): 0.5, ("c", "n"): 3}
    assert change.removed == {("b", "n")}
    assert statistics_change("demand", now, dict(now)) is None
    first = statistics_change("demand", None, now)
    assert first is not None and first.replace and first.values == now
    # a statistic that appears with the value None is still written
    added = statistics_change("demand", {}, {("a", "mean"): None})
    assert added is not None and added.values == {("a", "mean"): None}


def test_demand_statistics_stamp_moves_with_its_statistics() -> None:
    source = simulate_demand(seed=2, start=date(2023, 1, 1), months=6, segments=3)
    events = [record.event for record in source.records()]
    processor = DemandProcessor.from_settings(SETTINGS)
    stamps, rows = [], []
    for i in range(0, len(events), 50):
        processor.process(events[i : i + 50])
        stamps.append(processor.statistics_stamp())
        rows.append(statistics_rows(processor))
    for a in range(1, len(stamps)):
        if stamps[a] == stamps[a - 1]:
            assert rows[a] == rows[a - 1]  # an unchanged stamp means unchanged statistics
    assert len(set(stamps)) > 3  # months closed along the way
    before = processor.statistics_stamp()
    processor.use_model("v1.0.1-20240101", datetime(2024, 1, 1, tzinfo=UTC))
    assert processor.statistics_stamp() != before
