"""Tests for ml.triggers: degradation boundaries, coalescing, deterministic ids, staleness."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from ml.drift import Detection
from ml.triggers import MAX_COALESCED_REASONS, TriggerPolicy, is_degraded, reason_for
from schemas.events import RetrainReason, deterministic_id

T0 = datetime(2024, 5, 31, tzinfo=UTC)


@pytest.mark.parametrize("metric", ["rmse", "mae", "mape", "wape", "mase", "RMSE"])
@pytest.mark.parametrize("baseline", [2.0, 0.1, 7.3, 123.456])
def test_error_metric_boundaries(metric: str, baseline: float) -> None:
    assert not is_degraded(baseline * 1.5, baseline, metric, 1.5)  # equality is never degraded
    assert is_degraded(baseline * 1.51, baseline, metric, 1.5)
    assert not is_degraded(baseline * 1.49, baseline, metric, 1.5)
    assert not is_degraded(baseline * 0.5, baseline, metric, 1.5)


def test_error_metric_perfect_baseline() -> None:
    assert not is_degraded(0.0, 0.0, "mae", 1.5)
    assert is_degraded(0.01, 0.0, "mae", 1.5)
    assert is_degraded(float("inf"), 1.0, "rmse", 1.5)


@pytest.mark.parametrize("baseline", [0.8, 0.5, 0.0, -0.4, 0.95])
def test_r2_boundaries(baseline: float) -> None:
    # r2 mirrors the error rule: the limit is baseline / factor (baseline x factor when <= 0).
    limit = baseline / 1.5 if baseline > 0 else baseline * 1.5
    assert not is_degraded(limit, baseline, "r2", 1.5)
    assert is_degraded(limit - 0.01, baseline, "r2", 1.5)
    assert not is_degraded(limit + 0.01, baseline, "r2", 1.5)
    assert not is_degraded(baseline, baseline, "r2", 1.5)
    assert not is_degraded(min(1.0, baseline + 0.1), baseline, "r2", 1.5)


def test_r2_examples() -> None:
    assert not is_degraded(0.7, 0.8, "r2", 1.5)
    assert not is_degraded(0.8 / 1.5, 0.8, "r2", 1.5)  # equality
    assert is_degraded(0.53, 0.8, "r2", 1.5)
    assert not is_degraded(0.0, 0.0, "r2", 1.5)  # baseline 0: any negative r2 is degraded
    assert is_degraded(-0.01, 0.0, "r2", 1.5)
    assert not is_degraded(-0.6, -0.4, "r2", 1.5) and is_degraded(-0.61, -0.4, "r2", 1.5)
    assert is_degraded(0.66, 1.0, "r2", 1.5) and not is_degraded(0.99, 1.0, "r2", 1.5)


def test_is_degraded_validation() -> None:
    with pytest.raises(ValueError):
        is_degraded(1.0, 1.0, "accuracy", 1.5)
    with pytest.raises(ValueError):
        is_degraded(float("nan"), 1.0, "mae", 1.5)
    with pytest.raises(ValueError):
        is_degraded(1.0, 1.0, "mae", 0.9)


def _policy() -> TriggerPolicy:
    return TriggerPolicy(cooldown=timedelta(hours=1), max_model_age=timedelta(days=90))


def test_coalescing_one_request_until_finished_and_cooldown() -> None:
    policy = _policy()
    reasons = [RetrainReason.DRIFT, RetrainReason.DEGRADATION, RetrainReason.LATENCY]
    issued = []
    for i in range(100):
        req = policy.consider(
            domain="demand",
            scope="CAR|A|B|",
            reason=reasons[i % 3],
            evidence={"i": i},
            at=T0 + timedelta(minutes=i),
            key=f"2024-05/{i}",
        )
        if req is not None:
            issued.append(req)
    assert len(issued) == 1
    first = issued[0]
    assert policy.pending("demand", "CAR|A|B|") == first
    assert first.reason == "drift" and first.evidence["i"] == 0
    assert first.occurred_at == T0
    merged = policy.coalesced[("demand", "CAR|A|B|")]
    assert merged.count == 99 and len(merged.reasons) == MAX_COALESCED_REASONS
    # Another scope is independent.
    other = policy.consider(
        domain="demand", scope="other", reason="drift", evidence={}, at=T0, key="k"
    )
    assert other is not None

    done = T0 + timedelta(hours=3)
    policy.job_finished("demand", "CAR|A|B|", done)
    assert policy.pending("demand", "CAR|A|B|") is None
    kwargs = {"domain": "demand", "scope": "CAR|A|B|", "reason": "drift", "evidence": {}}
    assert policy.consider(**kwargs, at=done + timedelta(minutes=59), key="x") is None
    again = policy.consider(**kwargs, at=done + timedelta(hours=1), key="y")
    assert again is not None  # cooldown boundary: at == finish + cooldown is allowed
    assert policy.coalesced[("demand", "CAR|A|B|")].count == 0


def test_cooldown_after_request_even_if_finished_quickly() -> None:
    policy = _policy()
    kwargs = {"domain": "d", "scope": "s", "reason": "manual", "evidence": {}}
    assert policy.consider(**kwargs, at=T0, key="a") is not None
    policy.job_finished("d", "s", T0 - timedelta(minutes=5))  # out-of-order finish time
    assert policy.consider(**kwargs, at=T0 + timedelta(minutes=30), key="b") is None
    assert policy.consider(**kwargs, at=T0 + timedelta(hours=1), key="c") is not None


def _feed(policy: TriggerPolicy) -> list[str]:
    ids = []
    for i in range(50):
        month = f"2024-{i % 12 + 1:02d}"
        req = policy.consider(
            domain="network",
            scope=f"cell-{i % 4}",
            reason="drift",
            evidence={"i": i},
            at=T0 + timedelta(hours=i),
            key=f"{month}/adwin",
        )
        if i % 7 == 6:
            policy.job_finished("network", f"cell-{i % 4}", T0 + timedelta(hours=i))
        if req is not None:
            ids.append(req.event_id)
    return ids


def test_deterministic_ids_across_fresh_policies() -> None:
    a, b = _feed(_policy()), _feed(_policy())
    assert a == b and len(a) >= 4
    first = _policy().consider(
        domain="network", scope="cell-0", reason="drift", evidence={}, at=T0, key="2024-01/adwin"
    )
    assert first is not None
    assert first.event_id == deterministic_id("network", "cell-0", "drift", "2024-01/adwin")


def test_pickle_round_trip() -> None:
    policy = _policy()
    _feed(policy)
    clone = pickle.loads(pickle.dumps(policy))
    assert _feed(clone) == _feed(policy)
    assert clone.coalesced == policy.coalesced


def test_staleness() -> None:
    policy = _policy()
    trained = datetime(2024, 1, 1, tzinfo=UTC)
    assert policy.check_staleness("d", "s", trained, trained + timedelta(days=90)) is None
    at = trained + timedelta(days=91)
    req = policy.check_staleness("d", "s", trained, at)
    assert req is not None and req.reason == "staleness"
    assert req.evidence["age_days"] == pytest.approx(91.0)
    assert policy.check_staleness("d", "s", trained, at + timedelta(days=1)) is None  # pending
    assert _policy().check_staleness("d", "s", trained, at).event_id == req.event_id


def test_naive_datetimes_rejected() -> None:
    with pytest.raises(ValueError):
        _policy().consider(
            domain="d", scope="s", reason="drift", evidence={}, at=datetime(2024, 1, 1), key="k"
        )


def test_reason_for_and_helpers() -> None:
    assert reason_for(Detection("latency", "avg_latency_s", 1.2, 1.0)) == RetrainReason.LATENCY
    assert reason_for(Detection("adwin", "abs_error", 3.0, None)) == RetrainReason.DRIFT
    policy = TriggerPolicy(max_latency_seconds=1.0)
    assert not policy.latency_exceeded(1.0) and policy.latency_exceeded(1.0001)
    assert policy.degraded(1.51, 1.0, "mae") and not policy.degraded(1.5, 1.0, "mae")


def test_from_settings() -> None:
    from millrace.settings import Settings

    policy = TriggerPolicy.from_settings(Settings())
    assert policy.degradation_factor == 1.5
    assert policy.cooldown == timedelta(hours=1)
    assert policy.max_model_age == timedelta(days=90)


# --- catch-up mode and staleness per version -----------------------------------------------------
def _catch_up_policy(now: datetime) -> TriggerPolicy:
    from ml.triggers import FixedClock

    return TriggerPolicy(
        cooldown=timedelta(hours=1), catch_up_lag=timedelta(days=2), clock=FixedClock(now)
    )


def _drift(policy: TriggerPolicy, scope: str, at: datetime, key: str):
    return policy.consider(
        domain="demand", scope=scope, reason="drift", evidence={"k": key}, at=at, key=key
    )


def test_catch_up_holds_then_releases_one_request_per_scope() -> None:
    now = T0 + timedelta(days=400)
    policy = _catch_up_policy(now)
    for i in range(30):  # a replay of the past: every trigger is held
        at = T0 + timedelta(days=10 * i)
        assert _drift(policy, "a", at, f"a{i}") is None
        if i % 3 == 0:
            assert _drift(policy, "b", at, f"b{i}") is None
    assert policy.held("demand", "a").count == 30 and policy.held("demand", "b").count == 10
    assert policy.release(now - timedelta(days=3)) == []  # still behind: nothing
    released = policy.release(now - timedelta(days=1))
    assert [r.scope for r in released] == ["a", "b"]
    a = released[0]
    assert a.occurred_at == now - timedelta(days=1)
    assert a.evidence["k"] == "a29" and a.evidence["held"]["count"] == 30
    assert a.evidence["held"]["first_key"] == "a0"
    assert policy.release(now) == [] and policy.held("demand", "a") is None
    # the released request is pending: a trigger after catch-up is coalesced into it
    assert _drift(policy, "a", now, "live") is None
    # deterministic ids: the same replay on a fresh policy releases the same ids
    again = _catch_up_policy(now)
    for i in range(30):
        _drift(again, "a", T0 + timedelta(days=10 * i), f"a{i}")
    assert again.release(now).pop().event_id == a.event_id


def test_catch_up_off_and_pickle() -> None:
    now = T0 + timedelta(days=400)
    assert _drift(_policy(), "a", T0, "k") is not None  # no lag: never held
    policy = _catch_up_policy(now)
    _drift(policy, "a", T0, "k")
    clone = pickle.loads(pickle.dumps(policy))
    assert [r.event_id for r in clone.release(now)] == [r.event_id for r in policy.release(now)]
    assert policy.first_caught_up([T0, now - timedelta(days=1), now]) == now - timedelta(days=1)
    assert _policy().first_caught_up([now]) is None


def test_release_caught_up_after_a_batch() -> None:
    now = T0 + timedelta(days=400)
    policy = _catch_up_policy(now)

    def unread():  # nothing held: the batch's times are not even read
        raise AssertionError("scanned")
        yield now

    assert policy.release_caught_up(unread()) == []
    _drift(policy, "a", T0, "k")
    assert policy.release_caught_up([T0, T0 + timedelta(days=1)]) == []  # still behind
    caught_up = now - timedelta(days=1)
    [request] = policy.release_caught_up([T0, caught_up, now])
    assert request.scope == "a" and request.occurred_at == caught_up


def test_staleness_once_per_version() -> None:
    policy = _policy()
    trained = datetime(2024, 1, 1, tzinfo=UTC)
    ids = []
    for day in range(91, 200, 7):  # every check after the max age: one request for v1
        req = policy.check_staleness("d", "s", trained, trained + timedelta(days=day), version="v1")
        if req is not None:
            ids.append(req.event_id)
            policy.job_finished("d", "s", trained + timedelta(days=day))
    assert ids == [deterministic_id("d", "s", RetrainReason.STALENESS, "version:v1")]
    # coalesced (a drift request pending) is not "requested": checked again later
    policy = _policy()
    at = trained + timedelta(days=100)
    _drift(policy, "s", at, "x")
    assert policy.check_staleness("demand", "s", trained, at, version="v1") is None
    policy.job_finished("demand", "s", at)
    later = at + timedelta(days=1)
    assert policy.check_staleness("demand", "s", trained, later, version="v1") is not None


def test_degradation_limit_is_the_boundary_of_is_degraded() -> None:
    from ml.triggers import degradation_limit, is_degraded

    for baseline, metric in [(4.0, "rmse"), (0.8, "r2"), (-0.5, "r2"), (0.0, "mae")]:
        limit = degradation_limit(baseline, metric, 1.5)
        assert not is_degraded(limit, baseline, metric, 1.5)  # the limit itself is not
        worse = limit + 0.01 if metric != "r2" else limit - 0.01
        assert is_degraded(worse, baseline, metric, 1.5)
    assert degradation_limit(4.0, "rmse", 1.5) == 6.0
    assert degradation_limit(0.8, "r2", 2.0) == 0.4
