"""The embedded broker: starts, creates topics, refuses a taken port clearly, stops on SIGTERM."""

from __future__ import annotations

import signal
import socket

import pytest
from confluent_kafka.admin import AdminClient

from millrace.broker import BrokerError, EmbeddedBroker
from tests.fixtures.broker import free_port, wait_for_exit, wait_for_start

pytestmark = pytest.mark.integration


def test_taken_port_gives_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"Port {port} .* already in use"):
            EmbeddedBroker("127.0.0.1", port).start()


def test_missing_binary_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerError, match="binary is missing"):
        EmbeddedBroker("127.0.0.1", free_port()).start()


def test_cli_broker_creates_topics_and_stops_on_sigterm(make_env, spawn) -> None:
    port = free_port()
    env = make_env(TOPIC_PARTITIONS="3")
    env.pop("KAFKA_BOOTSTRAP_SERVERS")
    env["EMBEDDED_BROKER_PORT"] = str(port)
    proc = spawn(["broker"], env)
    wait_for_start(proc, lambda: "embedded broker ready" in proc.output())
    topics = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=5).topics
    assert len(topics[env["TOPIC_SALES"]].partitions) == 3
    assert env["TOPIC_DEAD_LETTER"] in topics
    assert proc.stop(signal.SIGTERM) == 0
    assert "embedded broker stopped" in proc.output()
    with socket.socket() as sock:  # the port is free again: the broker process is gone
        sock.bind(("127.0.0.1", port))


def test_cli_broker_with_external_kafka_starts_nothing(make_env, spawn) -> None:
    proc = spawn(["broker"], make_env())
    assert wait_for_exit(proc) == 0
    assert "nothing embedded to start" in proc.output()
