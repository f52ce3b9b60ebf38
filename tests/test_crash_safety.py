"""Exactly-once effect: SIGKILL the streams worker at three random points of a replay (20k
events of 3 segments, one of them drifting, in the suite; 135k of 20 in ``make acceptance``),
restart it each time; the final observations, model state and drift statistics equal those of a
run without kills."""

from __future__ import annotations

import os
import random

import pytest

from tests.fixtures.broker import wait_for_events
from tests.stream_checks import events, final_state, publish

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param(3, id="20k-events"),
        pytest.param(20, id="135k-events", marks=pytest.mark.acceptance),
    ],
)
def test_three_sigkills_leave_the_same_state_as_no_kill(
    make_env, spawn, tmp_path, segments: int
) -> None:
    records = events(segments=segments)
    total = len(records)
    assert total >= 19_000

    clean_env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'clean.db'}")
    clean = publish(clean_env, records)
    worker = spawn(["streams", "--loglevel", "warning"], clean_env)
    wait_for_events(clean, "demand", total, exact=True, interval=0.5, worker=worker)
    worker.stop()

    env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'killed.db'}")
    store = publish(env, records)
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    points = sorted(random.Random(seed).sample(range(total // 10, total * 9 // 10), 3))
    print(f"CRASH_SEED={seed} kill points {points}")
    worker = spawn(["streams", "--loglevel", "warning"], env)
    for point in points:
        wait_for_events(store, "demand", point, interval=0.05, worker=worker)
        worker.kill()
        worker = spawn(["streams", "--loglevel", "warning"], env)
    wait_for_events(store, "demand", total, exact=True, interval=0.5, worker=worker)
    worker.stop()

    expected = final_state(clean, clean_env["STREAMS_APP_ID"])
    actual = final_state(store, env["STREAMS_APP_ID"])
    assert expected["drift_events"], "the replay's drift must raise drift events to compare"
    assert actual["observations"] == expected["observations"]
    assert actual["sums"] == pytest.approx(expected["sums"], rel=1e-12)
    assert actual["metrics"] == expected["metrics"]
    assert actual["drift_stats"] == expected["drift_stats"]
    assert actual["stored_stats"] == expected["stored_stats"]
    assert actual["drift_events"] == expected["drift_events"]
    assert actual["forecasts"] == expected["forecasts"]
