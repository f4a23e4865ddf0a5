"""/metrics, /healthz and /readyz of a running service, on the real servers."""

from __future__ import annotations

import collections
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.proxy import TcpProxy
from tests.integration.stack import (
    Stack,
    consume,
    kafka_pid,
    start_kafka,
    topic_sizes,
    unique_name,
    wait_until,
)
from tests.integration.tailer import Tailer, master_position

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("BT_STACK_DIR", ROOT / ".stack"))
OPS = {"c": "insert", "u": "update", "d": "delete"}


def _observed(tailer: Tailer, **env: str) -> Tailer:
    """The tailer with its endpoint on a free port and a fast side sampler."""
    tailer.env.update(
        {
            "BINLOG_TAILER_HTTP__PORT": "0",
            "BINLOG_TAILER_HTTP__SAMPLE_INTERVAL_SECONDS": "0.5",
            **env,
        }
    )
    return tailer


def _port(tailer: Tailer) -> int:
    return tailer.http_port()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = _get(port, "/metrics")
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def _caught_up(tailer: Tailer, port: int, stack: Stack) -> dict:
    """Wait until the service has read, published and checkpointed the whole binlog."""
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    latest: dict = {}

    def idle() -> bool:
        latest.update(_metrics(port))
        return (
            _value(latest, "binlog_tailer_binlog_bytes_behind") == 0
            and _value(latest, "binlog_tailer_records_in_flight") == 0
            and _value(latest, "binlog_tailer_checkpoint_age_seconds") == 0
        )

    wait_until(idle, 60, "the metrics to show the service caught up")
    return latest


def test_metrics_count_what_was_published_and_show_no_lag_when_idle(
    stack: Stack, database: str, tailer: Tailer
):
    _observed(tailer, BINLOG_TAILER_PROGRESS_LOG_SECONDS="1").start()
    port = _port(tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        for table in ("a", "b"):
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
        for i in range(40):
            cur.execute("INSERT INTO a VALUES (%s, %s)", (i, i))
        cur.executemany("INSERT INTO b VALUES (%s, %s)", [(i, i) for i in range(25)])
        cur.execute("UPDATE a SET v = v + 1 WHERE id < 10")
        cur.execute("DELETE FROM b WHERE id < 5")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO a VALUES (100, 0)")
        cur.execute("UPDATE b SET v = 0 WHERE id = 20")
        cur.execute("COMMIT")
    end = master_position(stack)[:2]
    m = _caught_up(tailer, port, stack)

    published: collections.Counter[tuple[str, str]] = collections.Counter()
    for table in ("a", "b"):
        topic = tailer.topic(database, table)
        size = topic_sizes(stack.kafka_bootstrap, [topic])[topic]
        for msg in consume(stack.kafka_bootstrap, [topic], expect=size, timeout=60):
            published[(table, OPS[json.loads(msg.value())["op"]])] += 1
    assert published == {
        ("a", "insert"): 41,
        ("a", "update"): 10,
        ("b", "insert"): 25,
        ("b", "delete"): 5,
        ("b", "update"): 1,
    }
    for table in ("a", "b"):
        for op in OPS.values():
            labels = {"database": database, "table": table, "operation": op}
            assert _value(m, "binlog_tailer_rows_total", **labels) == published[(table, op)]
            assert _value(m, "binlog_tailer_records_total", **labels) == published[(table, op)]
    assert _value(m, "binlog_tailer_records_produced_total") == sum(published.values())
    assert _value(m, "binlog_tailer_lag_seconds") == 0  # idle: everything acknowledged
    assert _value(m, "binlog_tailer_up") == 1
    assert _value(m, "binlog_tailer_ready") == 1
    assert _value(m, "binlog_tailer_kafka_reachable") == 1
    assert _value(m, "binlog_tailer_reconnects_total") == 0
    assert not any(name == "binlog_tailer_dead_letters_total" for name, _ in m)
    # a few deliveries were timed (one in 64: the records of sequence 0 and 64)
    assert _value(m, "binlog_tailer_kafka_delivery_latency_seconds_count") == 2
    assert _value(m, "binlog_tailer_kafka_delivery_latency_seconds_sum") > 0
    # the checkpoint reached the end of the binlog as it was (other tests write on)
    cp = (
        _value(m, "binlog_tailer_checkpoint_binlog_file"),
        _value(m, "binlog_tailer_checkpoint_binlog_offset_bytes"),
    )
    assert cp >= (int(end[0].rsplit(".", 1)[1]), end[1]), (cp, end)
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        logs = [(row[0], int(row[1])) for row in cur.fetchall()]
    files = _value(m, "binlog_tailer_binlog_retention_headroom_files")
    assert logs[int(files)][0] == end[0] or end[0] < logs[int(files)][0], (files, logs, end)
    older = sum(size for _, size in logs[: int(files)])
    assert (
        older
        < _value(m, "binlog_tailer_binlog_retention_headroom_bytes")
        <= older + logs[int(files)][1]
    )
    assert _value(m, "process_resident_memory_bytes") > 0
    assert _get(port, "/healthz") == (200, "alive\n")
    assert _get(port, "/readyz") == (200, "ready\n")
    wait_until(lambda: "progress: 82 rows" in tailer.log(), 10, "a progress log line")
    assert tailer.stop() == 0, tailer.log()


def test_exactly_once_exposes_its_kafka_transactions_and_checkpoints_the_last_commit(
    stack: Stack, database: str, tailer: Tailer
):
    tailer.use_kafka_store(unique_name("offsets"))
    _observed(tailer, BINLOG_TAILER_DELIVERY="exactly_once").start()
    port = _port(tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY)")
        cur.executemany("INSERT INTO a VALUES (%s)", [(i,) for i in range(30)])
    end = master_position(stack)[:2]
    m = _caught_up(tailer, port, stack)
    labels = {"database": database, "table": "a", "operation": "insert"}
    assert _value(m, "binlog_tailer_rows_total", **labels) == 30
    assert _value(m, "binlog_tailer_kafka_transactions_total") >= 1
    assert _value(m, "binlog_tailer_kafka_transaction_commit_seconds_total") > 0
    assert _value(m, "binlog_tailer_kafka_transaction_splits_total") == 0
    # the checkpoint is the last Kafka transaction committed: past the end as it was
    cp = (
        _value(m, "binlog_tailer_checkpoint_binlog_file"),
        _value(m, "binlog_tailer_checkpoint_binlog_offset_bytes"),
    )
    assert cp >= (int(end[0].rsplit(".", 1)[1]), end[1]), (cp, end)
    assert tailer.stop() == 0, tailer.log()


def test_heartbeat_records_add_no_lag_while_idle(stack: Stack, database: str, tailer: Tailer):
    _observed(tailer, BINLOG_TAILER_HEARTBEAT__INTERVAL_SECONDS="0.5").start()
    port = _port(tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO a VALUES (1)")
    _caught_up(tailer, port, stack)
    produced = _value(_metrics(port), "binlog_tailer_records_produced_total")
    # idle, heartbeat records flowing: no change waits, the lag stays near zero
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert _value(_metrics(port), "binlog_tailer_lag_seconds") < 1
        time.sleep(0.05)  # sampling the gauge over time, not waiting for a condition
    assert _value(_metrics(port), "binlog_tailer_records_produced_total") >= produced + 2
    assert tailer.stop() == 0, tailer.log()


def test_readyz_turns_unready_while_mysql_is_unreachable_and_ready_when_it_returns(
    stack: Stack, database: str, tailer: Tailer
):
    with TcpProxy(stack.mysql_port) as proxy:
        env = {"BINLOG_TAILER_MYSQL__PORT": str(proxy.port), "BINLOG_TAILER_LOG_FORMAT": "json"}
        _observed(tailer, **env).start()
        port = _port(tailer)
        wait_until(lambda: _get(port, "/readyz")[0] == 200, 20, "ready")
        proxy.cut()
        cut_at = time.monotonic()
        wait_until(lambda: _get(port, "/readyz")[0] == 503, 10, "unready after the cut")
        status, why = _get(port, "/readyz")
        assert status == 503 and "MySQL: not streaming" in why, why
        assert _get(port, "/healthz")[0] == 200  # waiting for the server is alive
        assert time.monotonic() - cut_at < 10
        # a reconnect attempt failed: the server was unreachable, not just reconnected to
        wait_until(lambda: "MySQL unavailable" in tailer.log(), 10, "a failed reconnect")
        assert _get(port, "/readyz")[0] == 503
        proxy.restore()
        wait_until(lambda: _get(port, "/readyz")[0] == 200, 30, "ready after the server returned")
    assert _value(_metrics(port), "binlog_tailer_reconnects_total") >= 1
    assert tailer.stop() == 0, tailer.log()
    lines = [json.loads(line) for line in tailer.log().splitlines()]  # JSON, every one
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(x["level"] == "WARNING" and "MySQL" in x["message"] for x in lines), lines


@pytest.mark.stops_kafka
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stack", ["mariadb"], indirect=True)  # Kafka's side: one server
def test_readyz_turns_unready_while_kafka_is_down_and_ready_when_it_returns(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE b (id INT PRIMARY KEY)")  # its topic: created with Kafka away
    # the record written while Kafka is away must outlive the broker's restart
    _observed(tailer, BINLOG_TAILER_KAFKA__DELIVERY_TIMEOUT_MS="300000").start()
    port = _port(tailer)
    wait_until(lambda: _get(port, "/readyz")[0] == 200, 20, "ready")
    # the topic exists before Kafka goes away (a record for a topic Kafka could not create
    # within librdkafka's topic.metadata.propagation.max.ms fails)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO a VALUES (0)")
    labels = {"database": database, "table": "a", "operation": "insert"}

    def first_delivered() -> bool:
        m = _metrics(port)
        return (
            _value(m, "binlog_tailer_rows_total", **labels) == 1
            and _value(m, "binlog_tailer_records_in_flight") == 0
        )

    wait_until(first_delivered, 30, "the first record to be delivered")
    pid = kafka_pid()
    assert pid is not None, "Kafka is not running"
    try:
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        answers: list[tuple[int, str]] = []

        def unready() -> bool:
            answers.append(_get(port, "/readyz"))
            return answers[-1][0] == 503 and "Kafka: not reachable" in answers[-1][1]

        try:
            wait_until(unready, 10, "unready with Kafka down")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /readyz answered {answers[-3:]}") from None
        assert time.monotonic() - killed_at < 10
        assert _value(_metrics(port), "binlog_tailer_kafka_reachable") == 0, tailer.log()[-3000:]
        assert _get(port, "/healthz")[0] == 200
        # a change waiting for Kafka: the lag grows
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO a VALUES (1)")
        metrics: dict = {}

        def lagging() -> bool:
            metrics.update(_metrics(port))
            return (_value(metrics, "binlog_tailer_lag_seconds") or 0) >= 2

        wait_until(lagging, 15, "the lag to grow")
        assert _value(metrics, "binlog_tailer_records_in_flight") == 1, metrics
        wait_until(lambda: kafka_pid() is None, 30, "Kafka to die")
        # the first record for a topic not created yet waits for Kafka to create it (a record
        # produced to it meanwhile would fail as unknown once the broker is back)
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO b VALUES (7)")
        wait_until(
            lambda: "Kafka does not answer about topic" in tailer.log(), 30, "the wait for Kafka"
        )
    finally:
        if kafka_pid() is None:  # never leave the shared broker down
            start_kafka(stack.kafka_bootstrap)
    wait_until(lambda: _get(port, "/readyz")[0] == 200, 60, "ready after Kafka returned")
    caught_up = {}

    def delivered() -> bool:
        caught_up.update(_metrics(port))
        b = {"database": database, "table": "b", "operation": "insert"}
        return (
            _value(caught_up, "binlog_tailer_records_in_flight") == 0
            and _value(caught_up, "binlog_tailer_records_total", **b) == 1
        )

    wait_until(delivered, 90, "the records to be delivered")
    assert _value(caught_up, "binlog_tailer_lag_seconds") == 0
    assert tailer.stop() == 0, tailer.log()
    topic_b = tailer.topic(database, "b")
    [record] = consume(stack.kafka_bootstrap, [topic_b], expect=1)
    assert json.loads(record.value())["after"]["id"] == 7
