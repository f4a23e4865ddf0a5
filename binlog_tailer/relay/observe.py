"""/healthz, /readyz and /metrics of the polling relay (the endpoints of the binlog path)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from binlog_tailer.relay.relay import Relay

P = "binlog_tailer_"


class RelayHealth:
    """Live while the loop shows signs of life within `bound` seconds (its longest blocking
    calls: a connect, a wait for acknowledgements); ready while connected to MySQL, as the
    active relay or as a standby ready to take over."""

    def __init__(self, relay: Relay, bound: float) -> None:
        self.relay = relay
        self.bound = bound

    def live(self) -> tuple[bool, str]:
        silent = time.monotonic() - self.relay.alive_at
        if silent > self.bound:
            return False, f"the relay's loop has shown no sign of life for {silent:.0f}s"
        return True, "alive"

    def ready(self) -> tuple[bool, str]:
        state = self.relay.state
        if state == "connecting":
            return False, "MySQL: connecting or waiting to reconnect"
        return True, state  # active, or standby


def relay_registry(relay: Relay, health: RelayHealth) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    reg.register(_RelayCollector(relay, health))
    return reg


class _RelayCollector(Collector):
    def __init__(self, relay: Relay, health: RelayHealth) -> None:
        self.relay = relay
        self.health = health

    def collect(self) -> Iterator[Metric]:
        r = self.relay
        yield GaugeMetricFamily(P + "up", "1 while the service runs", value=1)
        ready, _ = self.health.ready()
        yield GaugeMetricFamily(P + "ready", "1 when /readyz answers 200", value=int(ready))
        yield GaugeMetricFamily(
            P + "relay_active",
            "1 while this relay is the active one",
            value=int(r.state == "active"),
        )
        rows = CounterMetricFamily(
            P + "relay_rows", "outbox rows published and removed", labels=["table"]
        )
        for table, n in r.rows_by_table.items():
            rows.add_metric([table], n)
        yield rows
        yield CounterMetricFamily(
            P + "records_produced", "records acknowledged or in flight", value=r.records
        )
        yield CounterMetricFamily(
            P + "dead_letters", "records sent to the dead-letter topic", value=r.dead_lettered
        )
        yield CounterMetricFamily(
            P + "relay_batches", "batches published and removed", value=r.batches
        )
        yield CounterMetricFamily(
            P + "relay_activations", "times this relay became the active one", value=r.activations
        )
        if r.batch_at is not None:
            yield GaugeMetricFamily(
                P + "relay_last_batch_timestamp_seconds",
                "when the last batch was removed (unix time)",
                value=r.batch_at,
            )
