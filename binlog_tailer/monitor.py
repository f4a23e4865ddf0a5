"""A side thread sampling what the hot path must not ask: the server's binary logs (bytes
behind, retention headroom), on a connection of its own, and whether Kafka answers."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from binlog_tailer.errors import SourceError
from binlog_tailer.kafka_client import redact
from binlog_tailer.position import BinlogPosition
from binlog_tailer.publisher import connection_config
from binlog_tailer.server import connection_kwargs, require_tls
from binlog_tailer.settings import KafkaSettings, MysqlSettings

log = logging.getLogger(__name__)

Logs = list[tuple[str, int]]  # SHOW BINARY LOGS: (file, size), oldest first


def offset_in(logs: Logs, file: str | None, pos: int) -> int | None:
    """The bytes from the start of the oldest binlog file to file:pos (None: not listed)."""
    total = 0
    for name, size in logs:
        if name == file:
            return total + pos
        total += size
    return None


def bytes_behind(logs: Logs, read: tuple[str | None, int]) -> int | None:
    """The server's end of binlog minus the read position, across files."""
    at = offset_in(logs, *read)
    return None if at is None else max(0, sum(size for _, size in logs) - at)


def headroom(logs: Logs, checkpoint: BinlogPosition | None) -> tuple[int, int] | None:
    """(bytes, files) between the oldest binlog the server still has and the checkpoint;
    (-1, -1) when the checkpoint's file is gone already; None when unknown."""
    if checkpoint is None or checkpoint.file is None or not logs:
        return None
    at = offset_in(logs, checkpoint.file, checkpoint.pos or 4)
    if at is None:
        older = _file_number(checkpoint.file) < _file_number(logs[0][0])
        return (-1, -1) if older else None
    files = next(i for i, (name, _) in enumerate(logs) if name == checkpoint.file)
    return at, files


def _file_number(name: str) -> int:
    suffix = name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


class Monitor:
    def __init__(
        self,
        mysql: MysqlSettings,
        kafka: KafkaSettings,
        interval: float,
        read_position: Callable[[], tuple[str | None, int]],
        checkpoint: Callable[[], BinlogPosition | None],
    ) -> None:
        self.mysql = mysql
        self.kafka = kafka
        self.interval = interval
        self._read_position = read_position
        self._checkpoint = checkpoint
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: pymysql.Connection | None = None
        self._admin: AdminClient | None = None
        self._prev: tuple[float, tuple[str | None, int]] | None = None
        # the latest samples (None: unknown)
        self.behind: int | None = None
        self.headroom: tuple[int, int] | None = None
        self.read_rate: float | None = None  # binlog bytes read per second
        self.mysql_error: str | None = None
        self.kafka_ok: bool | None = None
        self.kafka_error: str | None = None
        self._warned: set[str] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="binlog-tailer-monitor")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling; a sample still waiting for a timeout is left to end on its own (a
        daemon thread: a stop does not wait for an unreachable server)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            if self._thread.is_alive():
                return
        self._drop_connection()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # never a traceback from a side thread
                self._warn_once("sample", f"sampling for metrics failed: {exc!r}")
            self._stop.wait(self.interval)

    def sample(self) -> None:
        self._sample_kafka()
        self._sample_binlogs()

    def _sample_binlogs(self) -> None:
        try:
            logs = self._binary_logs()
        except (pymysql.err.MySQLError, OSError, SourceError) as exc:
            self._drop_connection()
            self.behind = self.headroom = self.read_rate = None
            self.mysql_error = f"{exc.args[-1] if exc.args else exc}"
            self._warn_once("mysql", f"cannot sample the server's binary logs: {self.mysql_error}")
            return
        self.mysql_error = None
        self._warned.discard("mysql")
        read = self._read_position()
        self.behind = bytes_behind(logs, read)
        self.headroom = headroom(logs, self._checkpoint())
        now, prev = time.monotonic(), self._prev
        self._prev = (now, read)
        if prev is not None and now > prev[0]:
            start, end = offset_in(logs, *prev[1]), offset_in(logs, *read)
            if start is not None and end is not None:
                rate = max(0, end - start) / (now - prev[0])
                last = self.read_rate
                self.read_rate = rate if last is None else 0.5 * last + 0.5 * rate

    def _binary_logs(self) -> Logs:
        if self._conn is None:
            kwargs: dict[str, Any] = dict(connection_kwargs(self.mysql))
            kwargs["read_timeout"] = kwargs["write_timeout"] = max(5.0, self.interval)
            conn = pymysql.connect(**kwargs, autocommit=True)
            require_tls(conn, self.mysql)  # required and stricter: never plaintext
            self._conn = conn
        with self._conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [(str(row[0]), int(row[1])) for row in cur.fetchall()]

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _sample_kafka(self) -> None:
        """A metadata round trip with a short timeout, from a client of its own: it fails
        within seconds of the brokers going away, whether or not records flow."""
        timeout = max(1.0, min(self.interval, 5.0))
        try:
            if self._admin is None:
                # librdkafka's own log lines (connection refused, ...) stay out of the log
                config = connection_config(self.kafka) | {"log_level": 0}
                self._admin = AdminClient(config)
            self._admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1)
        except (KafkaException, TimeoutError, ValueError) as exc:
            self.kafka_ok = False
            err = exc.args[0] if exc.args else exc
            text = err.str() if hasattr(err, "str") else str(exc) or type(exc).__name__
            self.kafka_error = redact(text, self.kafka)
            return
        self.kafka_ok, self.kafka_error = True, None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)
