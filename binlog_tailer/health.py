"""What /healthz and /readyz answer, and the running parts the metrics are read from."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from binlog_tailer.position import BinlogPosition
from binlog_tailer.settings import Settings

if TYPE_CHECKING:
    from binlog_tailer.monitor import Monitor
    from binlog_tailer.pipeline import Pipeline
    from binlog_tailer.source import BinlogSource


def alive_bound(settings: Settings) -> float:
    """Seconds the pipeline's loop may go without a sign of life before /healthz fails.

    The loop touches its timestamp at every poll point, idle tick (server heartbeat), wait
    for the server and wait for room in Kafka's queue; longer silences are single blocking
    calls: opening the stream (connect timeout, then its first read), and under exactly-once
    a Kafka commit (up to the delivery timeout)."""
    m = settings.mysql
    bound = 30 + 3 * m.heartbeat_seconds + m.connect_timeout_seconds
    bound += max(30.0, m.heartbeat_seconds * 5)  # the stream's read timeout
    if settings.delivery == "exactly_once":
        bound += settings.kafka.delivery_timeout_ms / 1000
    return bound


def readiness_problems(
    streaming: bool,
    kafka_ok: bool | None,
    kafka_error: str | None,
    checkpoint_age: float,
    max_age: float,
) -> list[str]:
    """Why the service is not ready (empty: ready)."""
    problems = []
    if not streaming:
        problems.append("MySQL: not streaming (connecting or waiting to reconnect)")
    if kafka_ok is None:
        problems.append("Kafka: not checked yet")
    elif not kafka_ok:
        problems.append(f"Kafka: not reachable ({kafka_error})")
    if checkpoint_age >= max_age:
        problems.append(
            f"checkpoint: {checkpoint_age:.0f}s behind what was read"
            f" (http.ready_checkpoint_age_seconds = {max_age:g})"
        )
    return problems


@dataclass
class Running:
    pipeline: Pipeline
    source: BinlogSource
    monitor: Monitor | None
    start: BinlogPosition


class Health:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exactly_once = settings.delivery == "exactly_once"
        self.bound = alive_bound(settings)
        self.max_age = settings.http.ready_checkpoint_age_seconds
        self.started = time.monotonic()
        self.running: Running | None = None  # None: starting

    def attach(self, running: Running) -> None:
        self.running = running

    def checkpoint(self) -> BinlogPosition | None:
        """The position stored last (the start's until the first save)."""
        r = self.running
        return None if r is None else r.pipeline.checkpoint or r.start

    def live(self) -> tuple[bool, str]:
        r = self.running
        if r is None:
            return True, "starting"
        silent = time.monotonic() - r.pipeline.stats.alive_at
        if silent > self.bound:
            return False, f"the pipeline's loop has shown no sign of life for {silent:.0f}s"
        return True, "alive"

    def ready(self) -> tuple[bool, str]:
        r = self.running
        if r is None:
            return False, "starting"
        m = r.monitor
        problems = readiness_problems(
            r.source.streaming,
            m.kafka_ok if m is not None else None,
            m.kafka_error if m is not None else None,
            r.pipeline.stats.checkpoint_age(),
            self.max_age,
        )
        return not problems, "; ".join(problems) or "ready"
