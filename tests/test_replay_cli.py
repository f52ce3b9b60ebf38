"""``millrace replay`` on each shared data set against the real broker: the topic receives
exactly the number of events the summary reports, and rejected rows are reported."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.broker import drain_topic, settings_from, wait_for_exit

pytestmark = pytest.mark.integration


def topic_size(bootstrap: str, topic: str, partitions: int, expect: int) -> int:
    """Messages in the topic, counted by reading it (Tansu's high watermarks are not counts):
    until 2 s of silence once the expected count is reached, so extra ones are counted too."""
    return drain_topic(bootstrap, topic, partitions, expect, timeout=10.0, settle=2.0)


def summary_number(output: str, label: str) -> int:
    match = re.search(rf"{label}\s*│\s*([\d,]+)", output)
    assert match, output[-2000:]
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize(
    ("relative", "limit", "topic_key", "published", "rejected"),
    [
        ("vehicle/sgivu_contracts/contracts_36m.csv", None, "topic_sales", 11_756, 0),
        ("vehicle/sgivu_contracts/report_export_sample.csv", None, "topic_sales", 10, 0),
        # 4,377 rows for 1,347,250 cars: one count event per make-month, the 10 'NA' makes
        # rejected
        (
            "vehicle/norway_ofv/norway_new_car_sales_by_make.csv",
            None,
            "topic_sales",
            4_367,
            10,
        ),
        # 188,711 rows, none rejected: the first 20,000 here, the whole file in `make acceptance`
        (
            "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz",
            20_000,
            "topic_network",
            20_000,
            0,
        ),
        pytest.param(
            "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz",
            None,
            "topic_network",
            188_711,
            0,
            marks=pytest.mark.acceptance,
        ),
    ],
)
def test_replay_publishes_expected_events(
    make_env, spawn, shared_data, relative, limit, topic_key, published, rejected
) -> None:
    env = make_env()
    settings = settings_from(env)
    args = ["replay", str(shared_data / relative), "--no-progress"]
    if limit:
        args += ["--limit", str(limit)]
    proc = spawn(args, env)
    assert wait_for_exit(proc) == 0, proc.output()[-3000:]
    out = proc.output()
    assert summary_number(out, "published") == published
    if rejected is not None:
        assert summary_number(out, "rejected") == rejected
    topic = getattr(settings, topic_key)
    assert (
        topic_size(settings.bootstrap_servers, topic, settings.topic_partitions, published)
        == published
    )


def test_replay_reports_bad_rows_and_keeps_going(make_env, spawn, tmp_path) -> None:
    src = tmp_path / "bad_by_make.csv"
    src.write_text(
        '"Year","Month","Make","Quantity","Pct"\n2007,1,"Toyota",3,1\n'
        '2007,1,"NA",5,1\n2007,13,"Audi",2,1\n2007,2,"Volvo",-4,1\n'
        '2007,2,"Kia",2,1\n'
    )
    env = make_env()
    proc = spawn(["replay", str(src), "--no-progress", "--market", "NO"], env)
    assert wait_for_exit(proc) == 0, proc.output()
    out = proc.output()
    assert summary_number(out, "published") == 2  # Toyota x3 and Kia x2: two count events
    assert summary_number(out, "rejected") == 3
    assert "missing make" in out


def test_replay_unknown_file_is_a_clear_error(make_env, spawn, tmp_path) -> None:
    src = tmp_path / "other.csv"
    src.write_text("a,b\n1,2\n")
    proc = spawn(["replay", str(src)], make_env())
    assert wait_for_exit(proc) == 2
    assert "other.csv" in proc.output()


def test_replay_market_is_for_count_feeds_only(make_env, spawn, shared_data) -> None:
    src = shared_data / "vehicle/sgivu_contracts/report_export_sample.csv"
    proc = spawn(["replay", str(src), "--market", "NO"], make_env())
    assert wait_for_exit(proc) == 2
    assert "--market applies to count feeds" in proc.output()
