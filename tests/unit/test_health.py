"""/healthz, /readyz and /metrics over the running parts, and the HTTP endpoint itself."""

import socket
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from binlog_tailer.errors import BinlogTailerError
from binlog_tailer.health import Health, Running, alive_bound, readiness_problems
from binlog_tailer.metrics import registry
from binlog_tailer.position import BinlogPosition
from binlog_tailer.settings import load_settings
from tests.unit.test_pipeline import build, end, row


def test_readiness_names_each_failed_condition():
    assert readiness_problems(True, True, None, 1.0, 60) == []
    problems = readiness_problems(False, False, "all brokers down", 90.0, 60)
    assert problems == [
        "MySQL: not streaming (connecting or waiting to reconnect)",
        "Kafka: not reachable (all brokers down)",
        "checkpoint: 90s behind what was read (http.ready_checkpoint_age_seconds = 60)",
    ]
    assert readiness_problems(True, None, None, 0, 60) == ["Kafka: not checked yet"]


def test_the_liveness_bound_covers_the_longest_blocking_calls():
    s = load_settings()
    assert alive_bound(s) == 30 + 3 * 1.0 + 10 + 30
    eos = load_settings(delivery="exactly_once", checkpoint={"store": "kafka"})
    assert alive_bound(eos) == alive_bound(s) + 120


def _running(settings_overrides=None):
    settings = load_settings(**(settings_overrides or {}))
    health = Health(settings)
    pipeline, _, _ = build([row(1), end(200), None])
    pipeline.run()
    source = SimpleNamespace(streaming=True, reconnects=2)
    monitor = SimpleNamespace(
        kafka_ok=True, kafka_error=None, behind=0, headroom=(1234, 1), read_rate=None
    )
    health.attach(Running(pipeline, source, monitor, BinlogPosition("b.000001", 4)))  # type: ignore[arg-type]
    return health, pipeline, source, monitor


def test_health_and_readiness_follow_the_running_parts():
    health = Health(load_settings())
    assert health.live() == (True, "starting")
    assert health.ready() == (False, "starting")
    health, pipeline, source, monitor = _running()
    assert health.live() == (True, "alive")
    assert health.ready() == (True, "ready")
    monitor.kafka_ok, monitor.kafka_error = False, "timed out"
    source.streaming = False
    ok, why = health.ready()
    assert not ok and "MySQL" in why and "Kafka: not reachable (timed out)" in why
    pipeline.stats.alive_at -= health.bound + 1  # the loop is stuck
    ok, why = health.live()
    assert not ok and "no sign of life" in why


def test_metrics_read_the_counters_at_scrape_time():
    health, pipeline, _, _ = _running()
    text = generate_latest(registry(health)).decode()
    for line in (
        'binlog_tailer_rows_total{database="d",operation="insert",table="t"} 1.0',
        'binlog_tailer_records_total{database="d",operation="insert",table="t"} 1.0',
        "binlog_tailer_records_produced_total 1.0",
        "binlog_tailer_records_in_flight 0.0",
        "binlog_tailer_lag_seconds 0.0",
        "binlog_tailer_checkpoint_age_seconds 0.0",
        "binlog_tailer_checkpoint_binlog_file 1.0",
        "binlog_tailer_checkpoint_binlog_offset_bytes 200.0",
        "binlog_tailer_reconnects_total 2.0",
        "binlog_tailer_binlog_bytes_behind 0.0",
        "binlog_tailer_binlog_retention_headroom_bytes 1234.0",
        "binlog_tailer_binlog_retention_headroom_files 1.0",
        "binlog_tailer_kafka_reachable 1.0",
        "binlog_tailer_mysql_streaming 1.0",
        "binlog_tailer_up 1.0",
        "binlog_tailer_ready 1.0",
        'binlog_tailer_kafka_delivery_latency_seconds_bucket{le="+Inf"} 0.0',
    ):
        assert line in text.splitlines(), line
    pipeline.stats.dead_letter("invalid_json")
    text = generate_latest(registry(health)).decode()
    assert 'binlog_tailer_dead_letters_total{reason="invalid_json"} 1.0' in text
    assert "kafka_transactions" not in text  # at-least-once: no Kafka transactions


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_endpoint_serves_metrics_and_probes_on_the_port_it_bound():
    from binlog_tailer.endpoints import Endpoints

    health, _, source, _ = _running()
    endpoints = Endpoints("127.0.0.1", 0, health, registry(health))
    endpoints.start()
    try:
        port = endpoints.address[1]
        assert port > 0
        status, text = _get(port, "/metrics")
        assert status == 200 and "binlog_tailer_up 1.0" in text
        assert "process_cpu_seconds_total" in text
        assert _get(port, "/healthz") == (200, "alive\n")
        assert _get(port, "/readyz") == (200, "ready\n")
        source.streaming = False
        status, text = _get(port, "/readyz")
        assert status == 503 and text.startswith("MySQL: not streaming")
        assert _get(port, "/nope")[0] == 404
    finally:
        endpoints.close()


def test_a_port_in_use_is_one_clear_error():
    from binlog_tailer.endpoints import Endpoints

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        health = Health(load_settings())
        with pytest.raises(BinlogTailerError) as err:
            Endpoints("127.0.0.1", port, health, registry(health))
    message = str(err.value)
    assert f"cannot listen on 127.0.0.1:{port}" in message
    assert "BINLOG_TAILER_HTTP__PORT" in message and "\n" not in message


def test_exactly_once_exposes_its_commits_and_checkpoints_the_last_committed_position():
    health, pipeline, _, _ = _running()
    committed = BinlogPosition("b.000002", 777)
    pipeline.transactions = SimpleNamespace(  # type: ignore[assignment]
        commits=3, commit_seconds=1.5, splits=1, committed=committed
    )
    text = generate_latest(registry(health)).decode().splitlines()
    for line in (
        "binlog_tailer_kafka_transactions_total 3.0",
        "binlog_tailer_kafka_transaction_commit_seconds_total 1.5",
        "binlog_tailer_kafka_transaction_splits_total 1.0",
        "binlog_tailer_checkpoint_binlog_file 2.0",
        "binlog_tailer_checkpoint_binlog_offset_bytes 777.0",
    ):
        assert line in text, line
