"""Prometheus metrics, read from the running parts at scrape time.

Nothing here runs on the hot path: the pipeline keeps plain counters (stats.py) and this
collector turns them into metric families when /metrics is scraped, on a registry of its
own (with the process's CPU, memory and file descriptors).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from binlog_tailer.health import Health
from binlog_tailer.monitor import Monitor
from binlog_tailer.snapshot.interleave import SnapshotInterleaver
from binlog_tailer.stats import LATENCY_SAMPLE_EVERY

P = "binlog_tailer_"
OPERATIONS = {"c": "insert", "u": "update", "d": "delete", "r": "snapshot"}


def registry(health: Health) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    reg.register(TailerCollector(health))
    return reg


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, value=value)


class TailerCollector(Collector):
    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        h = self.health
        yield _gauge("up", "1 while the service runs", 1)
        ready, _ = h.ready()
        yield _gauge("ready", "1 when /readyz answers 200", int(ready))
        r = h.running
        if r is None:
            return
        p, stats = r.pipeline, r.pipeline.stats
        yield _gauge(
            "mysql_streaming", "1 while the replication stream is open", int(r.source.streaming)
        )
        yield from self._tables(stats.table_counts())
        dead = CounterMetricFamily(
            P + "dead_letters", "records sent to the dead-letter topic", labels=["reason"]
        )
        for reason, n in sorted(stats.dead_letters.copy().items()):
            dead.add_metric([reason], n)
        yield dead
        yield _counter("records_produced", "records handed to Kafka (dead letters too)", p.records)
        yield _gauge(
            "records_in_flight", "records produced, not yet acknowledged", p.tracker.pending
        )
        lat = stats.latency
        yield HistogramMetricFamily(
            P + "kafka_delivery_latency_seconds",
            f"from produce to Kafka's acknowledgement, one record in {LATENCY_SAMPLE_EVERY}",
            buckets=lat.cumulative(),
            sum_value=lat.total,
        )
        yield _gauge(
            "lag_seconds",
            "from the commit of the oldest change not yet acknowledged by Kafka to now"
            " (0: all acknowledged)",
            stats.lag_seconds(time.time() * 1000),
        )
        yield _gauge(
            "checkpoint_age_seconds",
            "since the checkpoint last reached everything read (0: it does)",
            stats.checkpoint_age(),
        )
        yield from self._checkpoint()
        yield _counter("reconnects", "replication connections lost", r.source.reconnects)
        yield from self._snapshot(p.snapshot)
        yield from self._sampled(r.monitor)
        txns = p.transactions
        if txns is not None:
            yield _counter("kafka_transactions", "Kafka transactions committed", txns.commits)
            yield _counter(
                "kafka_transaction_commit_seconds",
                "time spent waiting for Kafka transaction commits",
                txns.commit_seconds,
            )
            yield _counter(
                "kafka_transaction_splits",
                "MySQL transactions split over Kafka transactions",
                txns.splits,
            )

    def _checkpoint(self) -> Iterator[Metric]:
        cp = self.health.checkpoint()
        if cp is None or cp.file is None:
            return
        suffix = cp.file.rsplit(".", 1)[-1]
        if suffix.isdigit():
            yield _gauge(
                "checkpoint_binlog_file", "the checkpoint's binlog file number", int(suffix)
            )
        yield _gauge(
            "checkpoint_binlog_offset_bytes", "the checkpoint's offset in its file", cp.pos or 4
        )

    def _tables(self, counts: dict[tuple[str, str, str], tuple[int, int]]) -> Iterator[Metric]:
        labels = ["database", "table", "operation"]
        rows = CounterMetricFamily(P + "rows", "captured row changes read", labels=labels)
        records = CounterMetricFamily(
            P + "records", "records produced from those rows", labels=labels
        )
        for (db, table, op), (n_rows, n_records) in sorted(counts.items()):
            rows.add_metric([db, table, OPERATIONS[op]], n_rows)
            records.add_metric([db, table, OPERATIONS[op]], n_records)
        yield rows
        yield records

    def _snapshot(self, snapshot: SnapshotInterleaver | None) -> Iterator[Metric]:
        if snapshot is None:
            return
        progress = snapshot.progress
        yield _gauge(
            "snapshot_running", "1 while a snapshot reads a table", int(bool(progress.table))
        )
        yield _counter(
            "snapshot_rows_read", "rows read by snapshots in this run", progress.total_rows
        )
        if progress.table:
            rows = GaugeMetricFamily(
                P + "snapshot_rows", "rows read of the table being read", labels=["table"]
            )
            rows.add_metric([progress.table], progress.rows)
            yield rows
            estimate = GaugeMetricFamily(
                P + "snapshot_rows_estimated",
                "the server's estimate of the rows of the table being read",
                labels=["table"],
            )
            estimate.add_metric([progress.table], progress.estimate)
            yield estimate

    def _sampled(self, m: Monitor | None) -> Iterator[Metric]:
        if m is None:
            return
        if m.kafka_ok is not None:
            yield _gauge("kafka_reachable", "1 when Kafka answered the last probe", int(m.kafka_ok))
        if m.behind is not None:
            yield _gauge(
                "binlog_bytes_behind",
                "the server's end of binlog minus the read position, across files",
                m.behind,
            )
        if m.headroom is not None:
            size, files = m.headroom
            yield _gauge(
                "binlog_retention_headroom_bytes",
                "binlog bytes the server still has before the checkpoint (-1: purged past it)",
                size,
            )
            yield _gauge(
                "binlog_retention_headroom_files",
                "binlog files the server still has before the checkpoint's (-1: purged past it)",
                files,
            )
