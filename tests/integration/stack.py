"""Connection settings of the local stack started by scripts/dev-up, and small helpers.

Defaults match scripts/lib/stack.sh; the same BT_* environment variables override both. The
stack has one or more source servers (BT_SERVERS: MariaDB 10.11, MySQL 9.x, MariaDB 11.x);
every test that touches a source runs against each of them.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymysql
from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka.admin import AdminClient

SERVER_PORTS = {
    "mariadb": int(os.environ.get("BT_MARIADB_PORT", "13306")),
    "mysql": int(os.environ.get("BT_MYSQL_PORT", "13307")),
    "mariadb11": int(os.environ.get("BT_MARIADB11_PORT", "13308")),
}
SERVERS = os.environ.get("BT_SERVERS", "mariadb mysql mariadb11").split()


@dataclass(frozen=True)
class Stack:
    server: str = "mariadb"  # a key of SERVER_PORTS
    mysql_host: str = "127.0.0.1"
    admin_user: str = os.environ.get("BT_MYSQL_ADMIN_USER", "bt_admin")
    admin_password: str = os.environ.get("BT_MYSQL_ADMIN_PASSWORD", "bt_admin_pw")
    cdc_user: str = os.environ.get("BT_MYSQL_CDC_USER", "bt_cdc")
    cdc_password: str = os.environ.get("BT_MYSQL_CDC_PASSWORD", "bt_cdc_pw")
    kafka_bootstrap: str = f"127.0.0.1:{os.environ.get('BT_KAFKA_PORT', '19092')}"

    @property
    def mysql_port(self) -> int:
        return SERVER_PORTS[self.server]

    @property
    def is_mariadb(self) -> bool:
        return self.server.startswith("mariadb")

    def position(self) -> tuple[str, int, str]:
        """The server's end of binlog: (file, offset, GTID position in its own dialect)."""
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS" if self.is_mariadb else "SHOW BINARY LOG STATUS")
            row = cur.fetchone()
            file, pos = row[0], int(row[1])
            if self.is_mariadb:
                cur.execute("SELECT @@gtid_binlog_pos")
                (gtid,) = cur.fetchone()
            else:
                gtid = row[4].replace("\n", "")
        return file, pos, gtid

    def current_binlog(self) -> str:
        return self.position()[0]

    def admin(self, database: str | None = None, **kw) -> pymysql.Connection:
        return pymysql.connect(
            host=self.mysql_host,
            port=self.mysql_port,
            user=self.admin_user,
            password=self.admin_password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kw,
        )

    def cdc(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host=self.mysql_host,
            port=self.mysql_port,
            user=self.cdc_user,
            password=self.cdc_password,
            database=database,
            charset="utf8mb4",
        )


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def consume(
    bootstrap: str,
    topics: list[str],
    *,
    expect: int,
    timeout: float = 30.0,
    isolation: str = "read_committed",
    settle: float = 0.0,
) -> list[Message]:
    """Read topics from the beginning until `expect` records arrived (or the timeout ran out).

    With `settle` > 0, keep reading that many seconds after reaching `expect`, so that a test
    can prove that no *extra* record arrives.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("test"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe(topics)
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if settle_until is None and len(out) >= expect:
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                break
            if now > deadline:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise AssertionError(f"consumer error: {err}")
            out.append(msg)
    finally:
        consumer.close()
    return out


def topic_sizes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """How many records each topic holds (sum of partition high watermarks; 0 if absent).

    Exact once the producer's records are acknowledged: no waiting for records that might still
    arrive.
    """
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("size")})
    try:
        meta = consumer.list_topics(timeout=30)
        out = {}
        for t in topics:
            if t not in meta.topics:
                out[t] = 0
                continue
            total = 0
            for p in meta.topics[t].partitions:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)
                total += hi - lo
            out[t] = total
        return out
    finally:
        consumer.close()


def set_producer_quota(bootstrap: str, client_id: str, bytes_per_second: float | None) -> None:
    """Make the broker throttle producers whose client.id is `client_id` to about
    `bytes_per_second` (None removes the quota): Kafka becomes slow for them alone, by its own
    means (it holds back their next request), while the other tests' clients of the shared
    broker go at full speed. Kafka counts the rate over a window of about 10 s, so a new
    client first gets about 10 s worth at full speed.

    confluent-kafka has no call for client quotas: this sends Kafka's AlterClientQuotas request
    (API key 49, version 0) itself."""

    def string(s: str) -> bytes:
        return struct.pack(">h", len(s)) + s.encode()

    remove = bytes_per_second is None
    body = (
        struct.pack(">ii", 1, 1)  # one entry, whose entity has one part
        + string("client-id")
        + string(client_id)
        + struct.pack(">i", 1)  # one operation
        + string("producer_byte_rate")
        + struct.pack(">d?", bytes_per_second or 0.0, remove)
        + struct.pack(">?", False)  # validate_only: no, do it
    )
    request = struct.pack(">hhi", 49, 0, 1) + string("binlog-tailer-tests") + body
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        with sock.makefile("rb") as reply:
            (size,) = struct.unpack(">i", reply.read(4))
            response = reply.read(size)
    # correlation id, throttle time, entries (1), then the entry's error code and message
    (error,) = struct.unpack_from(">h", response, 12)
    if error:
        (length,) = struct.unpack_from(">h", response, 14)
        message = response[16 : 16 + length].decode() if length >= 0 else ""
        raise AssertionError(f"Kafka refused the client quota (error {error}): {message}")


def last_offset_document(bootstrap: str, topic: str, name: str) -> dict | None:
    """The JSON value of the last record keyed `name` in an offsets topic (partition 0), read
    committed; None without one, or when it is a tombstone (or the topic does not exist)."""
    from confluent_kafka import TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("offsets"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        if topic not in consumer.list_topics(timeout=30).topics:
            return None
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        last: bytes | None = None
        consumer.assign([TopicPartition(topic, 0, low)])
        deadline = time.monotonic() + 30
        while low < high:
            assert time.monotonic() < deadline, f"offsets topic {topic} not read to {high}"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, f"consumer error: {err}"
                if msg.offset() >= high:
                    break
                continue
            if msg.key() == name.encode():
                last = msg.value()
            if msg.offset() >= high - 1:
                break
        return None if last is None else json.loads(last)
    finally:
        consumer.close()


@dataclass(frozen=True)
class TlsFacts:
    """The TLS and SASL side of the local stack, as scripts/dev-up wrote it to tls.env."""

    servers: list[str]  # source servers with TLS (MariaDB 10.11 has none)
    ca: str
    other_ca: str  # a CA that signed nothing of the stack's
    kafka_ssl: str  # bootstrap of the TLS listener (its certificate names localhost only)
    kafka_sasl: str  # ... of the SASL_SSL one
    sasl_mechanism: str
    sasl_user: str
    sasl_password: str


def tls_facts() -> TlsFacts:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(os.environ.get("BT_STACK_DIR", os.path.join(root, ".stack")), "tls.env")
    if not os.path.exists(path):
        raise AssertionError(f"no {path}: start the local stack with scripts/dev-up")
    env: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.rstrip("\n").split("=", 1)
                env[key] = value.strip('"')
    return TlsFacts(
        servers=[s for s in env["BT_TLS_SERVERS"].split() if s in SERVERS],
        ca=env["BT_TLS_CA"],
        other_ca=env["BT_TLS_OTHER_CA"],
        kafka_ssl=env["BT_KAFKA_SSL_BOOTSTRAP"],
        kafka_sasl=env["BT_KAFKA_SASL_BOOTSTRAP"],
        sasl_mechanism=env["BT_KAFKA_SASL_MECHANISM"],
        sasl_user=env["BT_KAFKA_SASL_USER"],
        sasl_password=env["BT_KAFKA_SASL_PASSWORD"],
    )


ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("BT_STACK_DIR", ROOT / ".stack"))


def kafka_pid() -> int | None:
    """The local broker's process id, None when it is not running (tests marked
    `stops_kafka` kill it)."""
    try:
        pid = int((STACK_DIR / "kafka" / "kafka.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_kafka(bootstrap: str) -> None:
    """scripts/dev-up starts what is not running (Kafka) and waits until it serves."""
    r = subprocess.run(
        [str(ROOT / "scripts" / "dev-up")], capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stdout + r.stderr
    AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=60)
