"""scripts/bench runs and reports figures (tiny sizes: a smoke test, not a measurement)."""

import json
import os
import subprocess
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
EOS = "binlog-tailer (exactly-once)"
RELAY = "binlog-tailer (relay)"


def test_bench_reports_catch_up_and_latency_figures(stack, tmp_path):
    r = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--no-debezium", "--rows", "2000",
         "--workloads", "catchup-1,latency", "--latency-rate", "200", "--latency-seconds", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=400, env={**os.environ, "BT_SERVER": stack.server},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = tmp_path.glob("bench-*.json")
    results = json.loads(report.read_text())["results"]
    by = {(x["workload"], x["connector"]): x for x in results}
    client = "mariadb-binlog" if stack.is_mariadb else "mysqlbinlog"
    assert by[("catchup-1", f"raw binlog ({client})")]["mb_per_s"] > 0
    # both delivery modes by default, side by side
    for connector, delivery in (("binlog-tailer", "at_least_once"), (EOS, "exactly_once")):
        ours = by[("catchup-1", connector)]
        assert ours["delivery"] == delivery
        assert ours["rows"] == 2000 and ours["rows_per_s"] > 0 and ours["peak_rss_mb"] > 0
        latency = by[("latency", connector)]
        assert latency["extra"]["matched"] == latency["rows"]  # every record joined to its commit
        assert latency["extra"]["consumer"] == "isolation.level=read_committed"
        assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        assert 0 <= latency["vis_p50_ms"] <= latency["vis_p99_ms"] <= latency["vis_max_ms"]
    assert "exactly-once / at-least-once throughput" in r.stdout
    # the polling relay by default, beside them: every row published once, the table emptied
    relay = by[("catchup-1", RELAY)]
    assert relay["delivery"] == "at_least_once"
    assert relay["rows"] == 2000 and relay["rows_per_s"] > 0 and relay["peak_rss_mb"] > 0
    assert relay["extra"]["records"] == 2000 and relay["extra"]["left_in_table"] == 0
    assert relay["extra"]["published_s"] <= relay["seconds"]
    seqs = relay_records(stack, relay["extra"]["topic"], 2000)
    assert sorted(seqs) == seqs and len(set(seqs)) == 2000  # each row once, in seq order
    latency = by[("latency", RELAY)]
    assert latency["rows"] > 1 and latency["extra"]["left_in_table"] == 0
    # every record joined to its commit time, each row's record once
    assert latency["extra"]["matched"] == latency["extra"]["distinct"] == latency["rows"]
    assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert f"catchup-1: {RELAY} / binlog-tailer throughput" in r.stdout
    assert f"latency: {RELAY} p50 / p99 / max" in r.stdout


def relay_records(stack, topic: str, n: int) -> list[int]:
    """The outbox_seq headers of the first n records of a relay's topic (none with a binlog
    position: the relay reads no binlog)."""
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": "bench-smoke",
                  "enable.auto.commit": False})  # fmt: skip
    seqs: list[int] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        while len(seqs) < n and (batch := c.consume(1000, 5.0)):
            for m in batch:
                assert not m.error(), m.error()
                headers = dict(m.headers() or [])
                assert "binlog_position" not in headers
                seqs.append(int(headers["outbox_seq"]))
    finally:
        c.close()
    return seqs


def test_bench_exactly_once_alone_counts_committed_records(stack, tmp_path):
    """Exactly-once alone, its settings passed on: a transactional topic's end offset counts
    commit markers too, and the catch-up still waits for every row (read_committed)."""
    r = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--no-debezium", "--rows", "1000",
         "--workloads", "catchup-100", "--delivery", "exactly_once", "--no-relay",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=200,
        env={**os.environ, "BT_SERVER": stack.server,
             "BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_MAX_RECORDS": "300"},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = tmp_path.glob("bench-*.json")
    data = json.loads(report.read_text())
    by = {(x["workload"], x["connector"]): x for x in data["results"]}
    assert ("catchup-100", "binlog-tailer") not in by
    assert ("catchup-100", RELAY) not in by  # --no-relay
    eos = by[("catchup-100", EOS)]
    assert eos["rows"] == 1000 and eos["rows_per_s"] > 0
    assert eos["extra"]["settings"] == {
        "BINLOG_TAILER_EXACTLY_ONCE__TRANSACTION_MAX_RECORDS": "300"
    }
    assert data["exactly_once_settings"] == eos["extra"]["settings"]
    topic = TopicPartition(eos["extra"]["topic"], 0, 0)
    c = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": "bench-smoke",
                  "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
    try:
        lo, hi = c.get_watermark_offsets(topic, timeout=10)
        assert hi - lo > 1000  # 1000 records and the commit markers of their transactions
        c.assign([topic])
        seen = 0
        while seen < 1000 and (batch := c.consume(1000, 5.0)):
            seen += sum(1 for m in batch if not m.error())
        assert seen == 1000
    finally:
        c.close()
