"""End-to-end benchmark: binlog-tailer and Debezium, same server, same Kafka, same rows.

Workloads (outbox-shaped rows of about 300 bytes, loaded *before* the connector starts):

- ``catchup-1``: N rows, one row per transaction; ``catchup-100``: 100 rows per transaction.
  Catch-up throughput = rows / (connector start -> last record in Kafka). Also reported:
  rows/s from the first to the last record (without start-up), peak RSS, CPU seconds, and
  CPU seconds per million rows (the per-core figure).
- ``large-K``: outbox rows with 20 kB JSON payloads (N / 10 of them), K per transaction.
- ``data-K`` and ``wide-K``: a data table's inserts, K per transaction, published with the
  envelope (Debezium: its connector on that table, no outbox router); ``data`` rows are
  about the outbox row's size, ``wide`` rows have 30 columns of mixed types.
- ``catchup-500000`` with ``--rows 500000``: one transaction of 500,000 rows (several INSERT
  statements between BEGIN and COMMIT). ``--curve SECONDS`` samples every outbox catch-up's
  throughput and memory that often and prints the curves (``benchmarks/curves.md``).
- ``latency``: a fixed offered load (single-row transactions) while the connector runs
  (``--latency-rate 2000,20000``: a run per rate, the second named ``latency@20000``);
  latency = broker append time (a LogAppendTime topic) - commit time (``created_at``
  DATETIME(6) = NOW(6) in the inserting statement), p50 / p99 / max.
- the raw ceiling: the server's own binlog client (``mariadb-binlog`` or ``mysqlbinlog``)
  with ``--read-from-remote-server --raw`` over the same binlog.

binlog-tailer runs once per delivery mode (``--delivery``, both by default): at-least-once
and exactly-once (``delivery=exactly_once``: Kafka transactions, the position in the Kafka
store; ``BINLOG_TAILER_EXACTLY_ONCE__*`` from the environment are passed on). Under
exactly-once a record is appended to the log before its transaction commits, so the broker's
append time says nothing of when a consumer can read it: the latency workload also runs a
live ``isolation.level=read_committed`` consumer beside the connector, and reports
"visible" latency = the time it received the record - commit time (``vis p99``), the latency
a real consumer sees, in both modes. A catch-up on a transactional topic ends when the last
loaded row is committed (transaction markers take offsets: the end offset counts them too).

The polling relay (``outbox.source = poll``, connector "binlog-tailer (relay)") runs in the
same workloads over a relay-shaped outbox table of its own (``outbox_ddl(relay=True)``) in a
database of its own, loaded with the same rows: it reads them with SELECT, no binlog. Its
catch-up also waits until the table is empty (every row deleted once Kafka acknowledged it).
Its latency joins each record to the ``created_at`` the relay publishes as a header (the rows
are deleted once published, so the table cannot be asked afterwards). ``--relay-poll-ms``
runs it once per ``relay.poll_interval_ms``; ``--no-relay`` leaves it out.

binlog-tailer runs in outbox mode; Debezium runs its MariaDB connector (its MySQL connector on
MySQL) with its outbox EventRouter (Kafka Connect standalone, JSON converter without schemas).
One connector runs at a time. Prints a table and writes every figure, with versions, to a JSON
file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import confluent_kafka
import pymysql
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pymysql.constants import CLIENT

import binlog_tailer
from binlog_tailer.outbox import new_event_id, outbox_ddl
from binlog_tailer.server import latest_position, server_info

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
PAD = "x" * 170  # makes a row about 300 bytes in the binlog
LARGE_PAD = "y" * 20_000  # the large-row workload: 20 kB JSON payloads


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- environment
@dataclass
class Env:
    mysql_port: int = int(os.environ.get("BINLOG_TAILER_MYSQL__PORT", "13306"))
    admin_user: str = os.environ.get("BT_MYSQL_ADMIN_USER", "bt_admin")
    admin_password: str = os.environ.get("BT_MYSQL_ADMIN_PASSWORD", "bt_admin_pw")
    bootstrap: str = os.environ.get("BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    debezium_jars: str = os.environ.get("BT_DEBEZIUM_JARS", "")

    def admin(self, db: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.mysql_port,
            user=self.admin_user,
            password=self.admin_password,
            database=db,
            autocommit=True,
            charset="utf8mb4",
            client_flag=CLIENT.MULTI_STATEMENTS,
            init_command="SET time_zone = '+00:00'",
        )


def master_position(env: Env) -> tuple[str, int]:
    with env.admin() as c:
        end = latest_position(c)
    assert end.file is not None and end.pos is not None
    return end.file, end.pos


def refuse_tagged_gtids(env: Env) -> None:
    """Debezium 3.4 (its binlog client) stops at once on a MySQL server whose gtid_executed
    holds a tagged GTID (uuid:tag:n, MySQL 8.3+): say so instead of waiting for its offset."""
    if is_mariadb(env):
        return
    with env.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.gtid_executed")
        (executed,) = cur.fetchone()
    if re.search(r":[A-Za-z_]", executed or ""):
        raise SystemExit(
            "Debezium cannot start on this server: its gtid_executed holds tagged GTIDs (the"
            " test suite writes some), which Debezium 3.4 fails to parse. Bench a fresh stack"
            " (scripts/dev-down --wipe), or run with --no-debezium"
        )


def is_mariadb(env: Env) -> bool:
    with env.admin() as c:
        return server_info(c).is_mariadb


def binlog_client(env: Env) -> tuple[str, str]:
    """(name, program) of the server's own binlog client: the raw ceiling reads with it."""
    stack = os.environ.get("BT_STACK_DIR", str(ROOT / ".stack"))
    program = os.path.join(stack, os.environ.get("BT_SERVER", "mariadb"), "bin", "binlog-client")
    return ("mariadb-binlog" if is_mariadb(env) else "mysqlbinlog"), program


# ---------------------------------------------------------------- load
def insert_sql(ids: list[str], seq0: int, pad: str = PAD) -> str:
    values = ",".join(
        f"('{eid}','order','{(seq0 + i) % 1000}','OrderPlaced',"
        f'\'{{"seq":{seq0 + i},"pad":"{pad}"}}\',NOW(6))'
        for i, eid in enumerate(ids)
    )
    return (
        "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, created_at)"
        f" VALUES {values}"
    )


def load(env: Env, db: str, rows: int, per_txn: int, pad: str = PAD) -> tuple[float, str]:
    """Insert `rows` rows, `per_txn` per transaction; returns rows/s of the load itself and
    the event id of the last row."""
    start = time.monotonic()
    last = ""
    per_trip = max(1, 150_000 // (len(pad) + 130))  # ~500 rows of 300 bytes per round trip
    if per_txn > per_trip:
        return load_large_transactions(env, db, rows, per_txn, per_trip, pad)
    with env.admin(db) as c, c.cursor() as cur:
        done = 0
        while done < rows:
            statements = []
            for _ in range(max(1, per_trip // per_txn)):
                n = min(per_txn, rows - done)
                if n <= 0:
                    break
                ids = [new_event_id() for _ in range(n)]
                statements.append(insert_sql(ids, done, pad))
                last = ids[-1]
                done += n
            cur.execute(";".join(statements))
            while cur.nextset():
                pass
    return rows / (time.monotonic() - start), last


def load_large_transactions(
    env: Env, db: str, rows: int, per_txn: int, per_trip: int, pad: str
) -> tuple[float, str]:
    """`load` for transactions of more rows than a round trip takes: each transaction is
    several INSERT statements between BEGIN and COMMIT."""
    start = time.monotonic()
    last = ""
    with env.admin(db) as c, c.cursor() as cur:
        done = 0
        while done < rows:
            cur.execute("BEGIN")
            end = min(rows, done + per_txn)
            while done < end:
                ids = [new_event_id() for _ in range(min(per_trip, end - done))]
                cur.execute(insert_sql(ids, done, pad))
                last = ids[-1]
                done += len(ids)
            cur.execute("COMMIT")
    return rows / (time.monotonic() - start), last


class PacedWriter(threading.Thread):
    """Single-row transactions at `rate` rows/s for `seconds`."""

    def __init__(self, env: Env, db: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.env, self.db, self.rate, self.seconds = env, db, rate, seconds
        self.rows = 0
        self.last_id = ""

    def run(self) -> None:
        tick = 0.01
        per_tick = max(1, round(self.rate * tick))
        with self.env.admin(self.db) as c, c.cursor() as cur:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < self.seconds:
                target = start + n * tick
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the offered load
                ids = [new_event_id() for _ in range(per_tick)]
                cur.execute(";".join(insert_sql([eid], self.rows + i) for i, eid in enumerate(ids)))
                while cur.nextset():
                    pass
                self.last_id = ids[-1]
                self.rows += per_tick
                n += 1


# ---------------------------------------------------------------- Kafka helpers
def create_topics(env: Env, names: list[str], log_append_time: bool = False) -> None:
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    config = {"message.timestamp.type": "LogAppendTime"} if log_append_time else {}
    fs = admin.create_topics([NewTopic(t, 1, 1, config=config) for t in names])
    for f in fs.values():
        f.result(30)
    # created is not yet served: wait until every partition has a leader, or the first
    # end-offset query may find an unknown partition
    deadline = time.monotonic() + 30
    while True:
        topics = admin.list_topics(timeout=10).topics
        if all(t in topics and all(p.leader >= 0 for p in topics[t].partitions.values())
               and topics[t].partitions for t in names):  # fmt: skip
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {names} have no leader after 30 s")
        time.sleep(0.05)


class TopicWatch:
    """Polls a topic's end offset. `transactional`: the topic is written in Kafka
    transactions, whose commit markers take offsets too; the end offset is then the last
    stable one (read_committed), and a wait for n records also needs the record of
    `last_id` (the last row written) there: then every record is, as one partition keeps
    the binlog's order."""

    def __init__(
        self, env: Env, topic: str, transactional: bool = False, header: str = "event_id"
    ) -> None:
        self.tp = TopicPartition(topic, 0)
        self.transactional, self.header = transactional, header
        conf = {
            "bootstrap.servers": env.bootstrap,
            "group.id": "bench-watch",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
        self.c = Consumer(conf)
        self.tail = Consumer(conf) if transactional else None
        self._checked_end = -1

    def offsets(self) -> tuple[int, int]:
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.c.get_watermark_offsets(self.tp, timeout=10, cached=False)
            except KafkaException as exc:
                # this client's metadata may not know a topic created a moment ago
                code = exc.args[0].code() if exc.args else None
                if code != KafkaError._UNKNOWN_PARTITION or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def count(self) -> int:
        lo, hi = self.offsets()
        return hi - lo

    def _ends_with(self, last_id: str, lo: int, end: int) -> bool:
        """Whether the last records below `end` include the one of `last_id`."""
        assert self.tail is not None
        if end == self._checked_end:
            return False
        self._checked_end = end
        self.tail.assign([TopicPartition(self.tp.topic, 0, max(lo, end - 64))])
        deadline = time.monotonic() + 2.0
        found = False
        while time.monotonic() < deadline:
            for m in self.tail.consume(1000, 0.1):
                if m.error():
                    continue
                if dict(m.headers() or []).get(self.header, b"").decode().strip('"') == last_id:
                    found = True
                if m.offset() >= end - 2:  # the last record (a commit marker may follow)
                    return found
        return found

    def wait(
        self,
        n: int,
        timeout: float,
        proc: subprocess.Popen | None = None,
        last_id: str | None = None,
        on_tick: Callable[[int, float], None] | None = None,
    ):
        """(time of the first record, time when n records are there), by polling end offsets;
        `on_tick(records, now)` at each poll."""
        first = None
        deadline = time.monotonic() + timeout
        while True:
            lo, hi = self.offsets()
            have = hi - lo
            now = time.monotonic()
            if on_tick is not None:
                on_tick(have, now)
            if have and first is None:
                first = now
            if have >= n and (
                not self.transactional or (last_id is not None and self._ends_with(last_id, lo, hi))
            ):
                return first, now
            if now > deadline:
                raise RuntimeError(f"{self.tp.topic}: only {have} of {n} records after {timeout}s")
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"connector exited with {proc.returncode}")
            time.sleep(0.05)

    def close(self) -> None:
        self.c.close()
        if self.tail is not None:
            self.tail.close()


class LiveReader(threading.Thread):
    """Reads a topic as it is written, read_committed (what a consumer of a transactional
    producer sees): (event id, broker append time ms, time received ms, commit time ms) of
    every record; the commit time from the header `commit_header` (else None)."""

    def __init__(
        self, env: Env, topic: str, id_header: str, commit_header: str | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.header, self.commit_header = id_header, commit_header
        self.c = Consumer(
            {
                "bootstrap.servers": env.bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        self.c.assign([TopicPartition(topic, 0, 0)])
        self.got: list[tuple[str, int, float, float | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            m = self.c.poll(0.05)  # one at a time: consume(n) waits for n or its timeout
            received = time.time() * 1000
            if m is None or m.error():
                continue
            headers = dict(m.headers() or [])
            eid = headers[self.header].decode().strip('"')
            committed = None
            if self.commit_header is not None and headers.get(self.commit_header):
                committed = datetime_ms(headers[self.commit_header].decode())
            self.got.append((eid, m.timestamp()[1], received, committed))
        self.c.close()

    def stop(self, n: int, timeout: float = 60) -> list[tuple[str, int, float, float | None]]:
        """Stop once n records are read (or after `timeout`): what was read."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stopping.set()
        self.join(30)
        return self.got


def datetime_ms(text: str) -> float:
    """Milliseconds since the epoch of a DATETIME as str() shows it, read as UTC (the bench's
    sessions write NOW(6) in UTC)."""
    stamp = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return stamp.timestamp() * 1000


# ---------------------------------------------------------------- process figures
def proc_figures(pid: int, children: bool = False) -> dict[str, float]:
    """Peak RSS (MB) and CPU seconds of a running process, read from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    return {"peak_rss_mb": hwm / 1024, "cpu_s": cpu}


def stack_cpu() -> dict[str, float]:
    """CPU seconds so far of the local stack's Kafka broker and database server (when their
    pid files are there): exactly-once also costs the broker work, on the same cores."""
    stack = Path(os.environ.get("BT_STACK_DIR", str(ROOT / ".stack")))
    server = os.environ.get("BT_SERVER", "mariadb")
    out = {}
    for name, pidfile in (("kafka", "kafka/kafka.pid"), ("server", f"{server}/mysqld.pid")):
        with contextlib.suppress(OSError, ValueError, StopIteration):
            out[f"{name}_cpu_s"] = proc_figures(int((stack / pidfile).read_text()))["cpu_s"]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- connectors
DELIVERIES = ("at_least_once", "exactly_once")
EOS_SETTINGS = "BINLOG_TAILER_EXACTLY_ONCE__"


def eos_settings() -> dict[str, str]:
    """The exactly-once settings given in the environment (the product's defaults otherwise)."""
    return {k: v for k, v in os.environ.items() if k.startswith(EOS_SETTINGS)}


class Ours:
    id_header = "event_id"

    def __init__(
        self, env: Env, db: str, topic_prefix: str, workdir: Path, delivery: str = DELIVERIES[0]
    ) -> None:
        self.env, self.db, self.workdir, self.delivery = env, db, workdir, delivery
        self.transactional = delivery == "exactly_once"
        self.name = "binlog-tailer (exactly-once)" if self.transactional else "binlog-tailer"
        tag = "eos" if self.transactional else "ours"
        self.topic = f"{topic_prefix}.{tag}.order"
        self.envvars = {
            **os.environ,
            "BINLOG_TAILER_OUTBOX__TABLES": f"{db}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{topic_prefix}.{tag}.{{aggregate_type}}",
            "BINLOG_TAILER_CHECKPOINT__PATH": str(workdir / f"{db}.offsets.json"),
            "BINLOG_TAILER_MYSQL__SERVER_ID": str(7000 + os.getpid() % 1000),
            "BINLOG_TAILER_LOG_LEVEL": "WARNING",
            "BINLOG_TAILER_DELIVERY": delivery,
            # metrics on (their cost is part of the figures), on any free port
            "BINLOG_TAILER_HTTP__PORT": os.environ.get("BINLOG_TAILER_HTTP__PORT", "0"),
        }
        if self.transactional:
            self.envvars |= {
                "BINLOG_TAILER_CHECKPOINT__STORE": "kafka",
                "BINLOG_TAILER_CHECKPOINT__TOPIC": f"{topic_prefix}.offsets",
                "BINLOG_TAILER_NAME": f"{topic_prefix}.{db}.{tag}",  # its own transactional.id
            }
        self.proc: subprocess.Popen | None = None

    @property
    def profile_tag(self) -> str:
        """What tells this connector's profile (BENCH_PROFILE) from the others'."""
        return "eos" if self.transactional else ""

    def command(self, position: tuple[str, int]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "binlog_tailer",
            "run",
            "--from",
            f"{position[0]}:{position[1]}",
        ]

    def start(self, position: tuple[str, int]) -> None:
        logf = open(self.workdir / f"ours-{self.db}-{self.delivery}.log", "ab")  # noqa: SIM115
        cmd = self.command(position)
        if os.environ.get("BENCH_PROFILE"):
            out = os.environ["BENCH_PROFILE"]
            if self.profile_tag:  # /tmp/prof.txt -> /tmp/prof.eos.txt, /tmp/prof.relay.txt
                out = str(Path(out).with_stem(f"{Path(out).stem}.{self.profile_tag}"))
            cmd = [
                py_spy(),
                "record",
                "-r",
                "200",
                "--idle",  # waits too (for the binlog, for Kafka's commit): where time goes
                "-f",
                "raw",
                "-o",
                out,
                "--",
                *cmd,
            ]
        self.proc = subprocess.Popen(cmd, env=self.envvars, stdout=logf, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        logf.close()

    def pid(self) -> int:
        assert self.proc is not None
        if os.environ.get("BENCH_PROFILE"):  # the python child of py-spy
            out = subprocess.run(
                ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
            )
            return int(out.stdout.split()[0])
        return self.proc.pid

    def stop(self) -> None:
        assert self.proc is not None
        os.kill(self.pid(), signal.SIGTERM)
        self.proc.wait(120)


RELAY_SETTINGS = "BINLOG_TAILER_RELAY__"


class PollingRelay(Ours):
    """binlog-tailer as the polling relay (outbox.source = poll) of `db`.outbox, a relay-shaped
    table: SELECT, publish, DELETE once acknowledged; no binlog. Runs as the stack's admin
    user (it needs SELECT and DELETE on the table). `poll_ms`: relay.poll_interval_ms (None:
    the product's default). `commit_header`: created_at also travels as a header (the latency
    workload joins records to it: the rows are gone once published)."""

    def __init__(
        self,
        env: Env,
        db: str,
        topic_prefix: str,
        workdir: Path,
        poll_ms: int | None = None,
        commit_header: bool = False,
    ) -> None:
        super().__init__(env, db, topic_prefix, workdir)
        self.poll_ms = poll_ms
        self.name = relay_name(poll_ms)
        tag = "relay" if poll_ms is None else f"relay{poll_ms}"
        self.topic = f"{topic_prefix}.{tag}.order"
        self.envvars |= {
            "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{topic_prefix}.{tag}.{{aggregate_type}}",
            "BINLOG_TAILER_MYSQL__USER": env.admin_user,
            "BINLOG_TAILER_MYSQL__PASSWORD": env.admin_password,
            "BINLOG_TAILER_DELIVERY": "at_least_once",
            "BINLOG_TAILER_NAME": f"bench.{db}.{tag}",  # its own lock
        }
        if poll_ms is not None:
            self.envvars["BINLOG_TAILER_RELAY__POLL_INTERVAL_MS"] = str(poll_ms)
        if commit_header:
            self.envvars["BINLOG_TAILER_OUTBOX__HEADER_COLUMNS"] = "created_at"

    @property
    def profile_tag(self) -> str:
        return self.name.split("(", 1)[1].rstrip(")").replace(", ", ".").replace(" ", "")

    def command(self, position: tuple[str, int]) -> list[str]:
        return [sys.executable, "-m", "binlog_tailer", "run"]  # no position: the table's rows

    def settings(self) -> dict[str, str]:
        return {k: v for k, v in self.envvars.items() if k.startswith(RELAY_SETTINGS)}

    def left(self) -> int:
        """Rows still in the outbox table."""
        with self.env.admin(self.db) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox")
            return int(cur.fetchone()[0])

    def wait_empty(self, timeout: float) -> float:
        """Until every row is deleted; when (monotonic)."""
        deadline = time.monotonic() + timeout
        while (n := self.left()) and time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}")
            time.sleep(0.05)
        if n:
            raise RuntimeError(f"{self.db}.outbox: {n} rows left after {timeout}s")
        return time.monotonic()


def relay_name(poll_ms: int | None) -> str:
    return "binlog-tailer (relay)" if poll_ms is None else f"binlog-tailer (relay, {poll_ms} ms)"


# every connector process started: a run that fails (Kafka stopped under it) kills what is left
STARTED: list[subprocess.Popen] = []


def kill_leftovers() -> None:
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or str(beside)


OUTBOX_SMT = """transforms=outbox
transforms.outbox.type=io.debezium.transforms.outbox.EventRouter
transforms.outbox.table.field.event.id=id
transforms.outbox.table.field.event.key=aggregate_id
transforms.outbox.table.field.event.payload=payload
transforms.outbox.route.by.field=aggregate_type
transforms.outbox.route.topic.replacement={prefix}.dbz.${{routedByValue}}
transforms.outbox.table.fields.additional.placement=event_type:header:event_type
"""


def connector_class(mariadb: bool) -> str:
    """Debezium's connector for the server: its MariaDB connector, or its MySQL one."""
    if mariadb:
        return "io.debezium.connector.mariadb.MariaDbConnector"
    return "io.debezium.connector.mysql.MySqlConnector"


class Debezium:
    name = "Debezium"
    id_header = "id"
    transactional = False
    delivery = "at_least_once"

    def __init__(
        self,
        env: Env,
        db: str,
        topic_prefix: str,
        workdir: Path,
        table: str | None = None,
        snapshot: bool = True,
    ) -> None:
        """`table`: that data table, read by an initial snapshot, or streamed when not
        `snapshot` (else: the outbox, streamed)."""
        self.env, self.db, self.workdir = env, db, workdir
        self.topic = f"{topic_prefix}.dbz.order"
        self.offsets = workdir / f"dbz-{db}.offsets"
        if table is not None:
            self.topic = f"{topic_prefix}dbz.{db}.{table}"
            mode = "initial" if snapshot else "no_data"
            captured = f"table.include.list={db}.{table}\nsnapshot.mode={mode}\n"
        else:
            captured = (
                f"table.include.list={db}.outbox\nsnapshot.mode=no_data\n"
                + OUTBOX_SMT.format(prefix=topic_prefix)
            )
        self._write_config(topic_prefix, captured)
        self.proc: subprocess.Popen | None = None

    def _write_config(self, topic_prefix: str, captured: str) -> None:
        """The Connect worker's, the connector's and the logging's properties files."""
        env, db, workdir = self.env, self.db, self.workdir
        mariadb = is_mariadb(env)
        port = free_port()
        (workdir / f"worker-{db}.properties").write_text(
            f"""bootstrap.servers={env.bootstrap}
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
offset.storage.file.filename={self.offsets}
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:{port}
"""
        )
        (workdir / f"connector-{db}.properties").write_text(
            f"""name=bench-{db}
connector.class={connector_class(mariadb)}
tasks.max=1
database.hostname=127.0.0.1
database.port={env.mysql_port}
database.user={env.admin_user}
database.password={env.admin_password}
database.server.id={8000 + os.getpid() % 1000}
database.ssl.mode={"disable" if mariadb else "disabled"}
driver.allowPublicKeyRetrieval=true
topic.prefix={topic_prefix}dbz
database.include.list={db}
include.schema.changes=false
heartbeat.interval.ms=1000
schema.history.internal.kafka.bootstrap.servers={env.bootstrap}
schema.history.internal.kafka.topic={topic_prefix}.dbz.history.{db}
{captured}"""
        )
        (workdir / "log4j2.properties").write_text(
            f"""appender.file.type=File
appender.file.name=file
appender.file.fileName={workdir}/connect.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
"""
        )

    def start(self, position: tuple[str, int] | None = None) -> None:
        cmd = [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-cp",
            f"{self.env.debezium_jars}/*",
            f"-Dlog4j2.configurationFile={self.workdir}/log4j2.properties",
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(self.workdir / f"worker-{self.db}.properties"),
            str(self.workdir / f"connector-{self.db}.properties"),
        ]
        out = open(self.workdir / "connect.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        out.close()

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def prime(self) -> None:
        """First start (no data yet): Debezium records where the binlog is, then stops."""
        refuse_tagged_gtids(self.env)
        self.start()
        deadline = time.monotonic() + 180
        while not (self.offsets.exists() and self.offsets.stat().st_size > 0):
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise RuntimeError(f"Debezium did not store an offset; see {self.workdir}")
            time.sleep(0.2)
        self.stop()

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


# ---------------------------------------------------------------- workloads
@dataclass
class Result:
    workload: str
    connector: str
    rows: int
    seconds: float = 0.0
    rows_per_s: float = 0.0
    rows_per_s_streaming: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    mb_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    # latency as a read_committed consumer sees it: received - committed
    vis_p50_ms: float | None = None
    vis_p99_ms: float | None = None
    vis_max_ms: float | None = None
    delivery: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def new_db(env: Env, run: str, name: str, relay: bool = False) -> str:
    db = f"bench_{run}_{name}".replace("-", "_")
    with env.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute(outbox_ddl(relay=relay))
    return db


class Curve:
    """Throughput and memory of a running connector, sampled every `every` seconds: rows/s
    over each interval, resident and peak memory (MB)."""

    def __init__(self, conn: Any, t0: float, every: float) -> None:
        self.conn, self.t0, self.every = conn, t0, every
        self.points: list[dict[str, float]] = []
        self._last = (t0, 0)

    def tick(self, records: int, now: float) -> None:
        if now - self._last[0] < self.every:
            return
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{self.conn.pid()}/status").read_text().splitlines()
            kb = {line.split(":")[0]: int(line.split()[1]) for line in status if "kB" in line}
            self.points.append(
                {
                    "s": round(now - self.t0, 1),
                    "rows": records,
                    "rows_per_s": round((records - self._last[1]) / (now - self._last[0])),
                    "rss_mb": round(kb["VmRSS"] / 1024, 1),
                    "peak_rss_mb": round(kb["VmHWM"] / 1024, 1),
                }
            )
        self._last = (now, records)


def curve_table(r: Result) -> str:
    lines = [
        f"{r.workload}, {r.connector}: every {r.extra['curve_every']:g} s",
        f"{'s':>7} {'rows':>10} {'rows/s':>9} {'RSS MB':>7} {'peak MB':>8}",
    ]
    lines += [
        f"{p['s']:>7.1f} {p['rows']:>10,} {p['rows_per_s']:>9,} {p['rss_mb']:>7.1f}"
        f" {p['peak_rss_mb']:>8.1f}"
        for p in r.extra["curve"]
    ]
    return "\n".join(lines)


def catchup_result(
    name: str, conn: Any, rows: int, t0: float, done: float,
    streaming: tuple[float, float], figures: dict[str, float],
) -> Result:  # fmt: skip
    """A catch-up's figures: started at `t0`, done at `done`, records arriving from the first
    to the last time of `streaming`."""
    first, last = streaming
    return Result(
        name,
        conn.name,
        rows,
        seconds=done - t0,
        rows_per_s=rows / (done - t0),
        rows_per_s_streaming=rows / max(last - first, 1e-6),
        delivery=conn.delivery,
        **figures,
    )


def timed_run(
    env: Env,
    name: str,
    conn: Any,
    rows: int,
    start: tuple[str, int],
    last_id: str | None = None,
    curve_every: float = 0.0,
) -> Result:
    """Start `conn` at `start` and time it until `rows` records are in its topic;
    `curve_every`: sample a Curve that often."""
    watch = TopicWatch(env, conn.topic, conn.transactional, conn.id_header)
    cpu0 = stack_cpu()
    t0 = time.monotonic()
    conn.start(start)
    curve = Curve(conn, t0, curve_every) if curve_every else None
    first, last = watch.wait(
        rows,
        timeout=1800,
        proc=conn.proc,
        last_id=last_id,
        on_tick=curve.tick if curve is not None else None,
    )
    figures = proc_figures(conn.pid())
    cpu = {k: round(v - cpu0[k], 2) for k, v in stack_cpu().items() if k in cpu0}
    conn.stop()
    watch.close()
    r = catchup_result(name, conn, rows, t0, last, (first, last), figures)
    r.extra |= {"topic": conn.topic, **cpu}
    if curve is not None:
        r.extra |= {"curve": curve.points, "curve_every": curve_every}
    log(f"{name}: {conn.name} {r.rows_per_s:,.0f} rows/s ({r.seconds:.1f} s)")
    return r


def load_behind(
    env: Env, name: str, connectors: list[Any], dbz: Debezium | None, what: str,
    loader: Callable[[], T],
) -> tuple[tuple[str, int], tuple[str, int], T]:  # fmt: skip
    """Create the topics of `connectors` (Debezium joins them), prime Debezium's offset, then
    load: the binlog positions before and after the load, and what `loader` returned."""
    if dbz is not None:
        connectors.append(dbz)
    create_topics(env, [c.topic for c in connectors])
    start_pos = master_position(env)
    if dbz is not None:
        log(f"{name}: priming Debezium's offset before the load")
        dbz.prime()
    log(f"{name}: loading {what}")
    loaded = loader()
    return start_pos, master_position(env), loaded


def catchup(
    env: Env,
    run: str,
    workdir: Path,
    rows: int,
    per_txn: int,
    with_dbz: bool,
    deliveries: list[str],
    relays: list[int | None],
    kind: str = "catchup",
    curve_every: float = 0.0,
) -> list[Result]:
    """Outbox rows: `kind` catchup (300-byte rows) or large (20 kB JSON payloads)."""
    name = f"{kind}-{per_txn}"
    pad = LARGE_PAD if kind == "large" else PAD
    db = new_db(env, run, name)
    prefix = f"bench{run}{kind}{per_txn}"
    connectors: list[Any] = [Ours(env, db, prefix, workdir, d) for d in deliveries]
    dbz = Debezium(env, db, prefix, workdir) if with_dbz else None
    start_pos, end_pos, (load_rate, last_id) = load_behind(
        env, name, connectors, dbz, f"{rows} rows, {per_txn} per transaction",
        lambda: load(env, db, rows, per_txn, pad),
    )  # fmt: skip
    log(f"{name}: loaded at {load_rate:,.0f} rows/s; binlog {start_pos} -> {end_pos}")
    results = []
    for conn in connectors:
        log(f"{name}: {conn.name} catching up")
        r = timed_run(env, name, conn, rows, start_pos, last_id, curve_every)
        if conn.transactional:
            r.extra["settings"] = eos_settings()
        results.append(r)
    for poll_ms in relays if kind == "catchup" else []:
        results.append(catchup_relay(env, run, workdir, rows, per_txn, prefix, poll_ms))
    results.append(raw_ceiling(env, name, rows, start_pos, end_pos, workdir))
    return results


class OursSnapshot(Ours):
    """binlog-tailer's first run with snapshot.mode = initial over one data table."""

    def __init__(self, env: Env, db: str, topic_prefix: str, workdir: Path, table: str) -> None:
        super().__init__(env, db, topic_prefix, workdir)
        self.name = "binlog-tailer (snapshot)"
        self.topic = f"{topic_prefix}.{db}.{table}"
        del self.envvars["BINLOG_TAILER_OUTBOX__TABLES"]
        self.envvars |= {
            "BINLOG_TAILER_CAPTURE__INCLUDE": f"{db}.{table}",
            "BINLOG_TAILER_CAPTURE__TOPIC_PREFIX": topic_prefix,
            "BINLOG_TAILER_SNAPSHOT__MODE": "initial",
        }

    def command(self, position: tuple[str, int]) -> list[str]:
        return [sys.executable, "-m", "binlog_tailer", "run"]  # a first run: no --from


# Data tables streamed with the envelope: (CREATE TABLE, the VALUES tuple of row i). "data" is
# about the outbox row's size; "wide" has 30 columns of mixed types.
DATA_TABLES: dict[str, tuple[str, Callable[[int], str]]] = {
    "data": (
        "CREATE TABLE t (id BIGINT PRIMARY KEY, qty INT NOT NULL, name VARCHAR(60),"
        " price DECIMAL(10, 2), note VARCHAR(200), updated_at DATETIME(6))",
        lambda i: f"({i},{i % 97},'item number {i}',{i % 1000}.25,'{PAD}',NOW(6))",
    ),
    "wide": (
        "CREATE TABLE t (id BIGINT PRIMARY KEY, i1 INT, i2 INT UNSIGNED, i3 SMALLINT,"
        " i4 TINYINT, i5 BIGINT, b1 TINYINT(1), d1 DECIMAL(12, 2), d2 DECIMAL(20, 6),"
        " d3 DECIMAL(5, 0), f1 FLOAT, f2 DOUBLE, f3 DOUBLE, s1 VARCHAR(40), s2 VARCHAR(80),"
        " s3 CHAR(10), s4 VARCHAR(255) CHARACTER SET latin1, t1 TEXT, t2 TEXT, dt1 DATETIME(6),"
        " dt2 DATETIME, ts1 TIMESTAMP(3) NULL, da1 DATE, da2 DATE, tm1 TIME(3),"
        " e1 ENUM('new', 'paid', 'sent', 'done'), st1 SET('a', 'b', 'c', 'd'), y1 YEAR,"
        " vb1 VARBINARY(16), bt1 BIT(12))",
        lambda i: (
            f"({i},{i % 1000},{i * 7},{i % 30000},{i % 100},{i * 1000003},{i % 2},"
            f"{i % 100000}.25,{i}.123456,{i % 99999},{i % 1000}.5,{i}.25e-3,1e{i % 300},"
            f"'name {i}','a somewhat longer text value {i}','c{i % 1000}','latin text {i}',"
            f"'text {i}','another text column, row {i}',NOW(6),'2024-01-02 03:04:05',"
            f"NOW(3),'2024-02-29','1999-12-31','12:34:56.789',"
            f"'{('new', 'paid', 'sent', 'done')[i % 4]}','a,c',{1901 + i % 200},"
            f"UNHEX('00112233445566778899AABBCCDDEEFF'),b'101010101010')"
        ),
    ),
}


class OursData(Ours):
    """binlog-tailer streaming one data table with the envelope."""

    def __init__(self, env: Env, db: str, topic_prefix: str, workdir: Path, table: str) -> None:
        super().__init__(env, db, topic_prefix, workdir)
        self.topic = f"{topic_prefix}.{db}.{table}"
        del self.envvars["BINLOG_TAILER_OUTBOX__TABLES"]
        self.envvars |= {
            "BINLOG_TAILER_CAPTURE__INCLUDE": f"{db}.{table}",
            "BINLOG_TAILER_CAPTURE__TOPIC_PREFIX": topic_prefix,
        }


def load_table(env: Env, db: str, kind: str, rows: int, per_txn: int) -> float:
    """`rows` rows of DATA_TABLES[kind] into `db`.t, `per_txn` per transaction; rows/s."""
    ddl, values = DATA_TABLES[kind]
    start = time.monotonic()
    with env.admin(db) as c, c.cursor() as cur:
        cur.execute(ddl)
        done = 0
        while done < rows:
            statements = []
            for _ in range(max(1, 500 // per_txn)):  # ~500 rows per round trip
                n = min(per_txn, rows - done)
                if n <= 0:
                    break
                rows_sql = ",".join(values(i) for i in range(done + 1, done + n + 1))
                statements.append(f"INSERT INTO t VALUES {rows_sql}")
                done += n
            cur.execute(";".join(statements))
            while cur.nextset():
                pass
    return rows / (time.monotonic() - start)


def catchup_table(
    env: Env, run: str, workdir: Path, kind: str, rows: int, per_txn: int, with_dbz: bool
) -> list[Result]:
    """A data table's inserts streamed with the envelope (at-least-once), Debezium beside."""
    name = f"{kind}-{per_txn}"
    db = new_db(env, run, name)
    prefix = f"bench{run}{kind}{per_txn}"
    connectors: list[Any] = [OursData(env, db, prefix, workdir, "t")]
    dbz = Debezium(env, db, prefix, workdir, table="t", snapshot=False) if with_dbz else None
    start_pos, end_pos, load_rate = load_behind(
        env, name, connectors, dbz, f"{rows} rows into {db}.t, {per_txn} per transaction",
        lambda: load_table(env, db, kind, rows, per_txn),
    )  # fmt: skip
    log(f"{name}: loaded at {load_rate:,.0f} rows/s; binlog {start_pos} -> {end_pos}")
    results = []
    for conn in connectors:
        log(f"{name}: {conn.name} catching up")
        results.append(timed_run(env, name, conn, rows, start_pos))
    results.append(raw_ceiling(env, name, rows, start_pos, end_pos, workdir))
    return results


def load_items(env: Env, db: str, rows: int) -> None:
    """A data table of `rows` rows: id, an integer, a short text and a time."""
    with env.admin(db) as c, c.cursor() as cur:
        cur.execute(
            "CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, name VARCHAR(60),"
            " price DECIMAL(10, 2), updated_at DATETIME(6))"
        )
        for start in range(1, rows + 1, 5000):
            values = ",".join(
                f"({i},{i % 97},'item number {i}',{i % 1000}.25,NOW(6))"
                for i in range(start, min(start + 5000, rows + 1))
            )
            cur.execute(f"INSERT INTO items VALUES {values}")


def snapshot(env: Env, run: str, workdir: Path, rows: int, with_dbz: bool) -> list[Result]:
    """An initial snapshot of one `rows`-row table: the time until every row is in Kafka."""
    name = "snapshot"
    db = new_db(env, run, name)
    prefix = f"bench{run}snap"
    log(f"{name}: loading {rows} rows into {db}.items")
    load_items(env, db, rows)
    connectors: list[Any] = [OursSnapshot(env, db, prefix, workdir, "items")]
    if with_dbz:
        connectors.append(Debezium(env, db, prefix, workdir, table="items"))
    create_topics(env, [c.topic for c in connectors])
    results = []
    for conn in connectors:
        log(f"{name}: {conn.name} reading {rows} rows")
        results.append(timed_run(env, name, conn, rows, master_position(env)))
    return results


def catchup_relay(
    env: Env, run: str, workdir: Path, rows: int, per_txn: int, prefix: str, poll_ms: int | None
) -> Result:
    """The same rows in a relay-shaped table of their own; the time until every row is in
    Kafka and deleted from the table."""
    name = f"catchup-{per_txn}"
    tag = "relay" if poll_ms is None else f"relay{poll_ms}"
    db = new_db(env, run, f"{name}_{tag}", relay=True)
    conn = PollingRelay(env, db, prefix, workdir, poll_ms)
    create_topics(env, [conn.topic])
    log(f"{name}: loading {rows} rows into {db}.outbox (relay-shaped), {per_txn} per transaction")
    load(env, db, rows, per_txn)
    log(f"{name}: {conn.name} catching up")
    watch = TopicWatch(env, conn.topic)
    cpu0 = stack_cpu()
    t0 = time.monotonic()
    conn.start(("", 0))
    first, last = watch.wait(rows, timeout=1800, proc=conn.proc)
    empty = conn.wait_empty(600)
    figures = proc_figures(conn.pid())
    cpu = {k: round(v - cpu0[k], 2) for k, v in stack_cpu().items() if k in cpu0}
    conn.stop()
    records = watch.count()
    watch.close()
    r = catchup_result(name, conn, rows, t0, empty, (first, last), figures)
    r.extra |= {
        "topic": conn.topic,
        "records": records,
        "left_in_table": conn.left(),
        "published_s": round(last - t0, 3),
        "settings": conn.settings(),
        **cpu,
    }
    log(f"{name}: {conn.name} {r.rows_per_s:,.0f} rows/s ({r.seconds:.1f} s)")
    return r


def raw_ceiling(env: Env, name: str, rows: int, start, end, workdir: Path) -> Result:
    out = workdir / f"raw-{name}"
    out.mkdir()
    files = [start[0]] if start[0] == end[0] else None
    with env.admin() as c, c.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        names = [r[0] for r in cur.fetchall()]
    files = names[names.index(start[0]) : names.index(end[0]) + 1] if files is None else files
    client, program = binlog_client(env)
    t0 = time.monotonic()
    subprocess.run(
        [
            program,
            "--read-from-remote-server",
            "--raw",
            "--host=127.0.0.1",
            f"--port={env.mysql_port}",
            f"--user={env.admin_user}",
            f"--password={env.admin_password}",
            f"--result-file={out}/",
            *files,
        ],
        check=True,
        capture_output=True,
    )
    seconds = time.monotonic() - t0
    size = sum(p.stat().st_size for p in out.iterdir())
    shutil.rmtree(out)
    return Result(
        name,
        f"raw binlog ({client})",
        rows,
        seconds=seconds,
        rows_per_s=rows / seconds,
        mb_per_s=size / seconds / 1e6,
        extra={"bytes": size, "files": files},
    )


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99, max."""
    values = sorted(values)
    q = statistics.quantiles(values, n=100)
    return q[49], q[98], values[-1]


# Long on purpose: one measurement from start to teardown (load, connector, join, figures),
# kept in one place so that every connector is measured the same way.
def latency(
    env: Env,
    run: str,
    workdir: Path,
    rate: int,
    seconds: float,
    with_dbz: bool,
    deliveries: list[str],
    relays: list[int | None],
    name: str = "latency",
) -> list[Result]:
    results = []
    prefix = f"bench{run}lat{rate}"
    # (database name, relay-shaped table, the connector over a database)
    plans: list[tuple[str, bool, Callable[[str], Any]]] = [
        (
            f"lat_ours_{d}",
            False,
            partial(Ours, env, topic_prefix=prefix, workdir=workdir, delivery=d),
        )
        for d in deliveries
    ]
    plans += [
        (
            "lat_relay" if p is None else f"lat_relay{p}",
            True,
            partial(
                PollingRelay,
                env,
                topic_prefix=prefix,
                workdir=workdir,
                poll_ms=p,
                commit_header=True,
            ),
        )
        for p in relays
    ]
    if with_dbz:
        plans.append(
            (
                "lat_debezium_at_least_once",
                False,
                partial(Debezium, env, topic_prefix=prefix, workdir=workdir),
            )
        )
    for db_name, relay, make in plans:
        db = new_db(env, run, f"{db_name}_{rate}", relay=relay)
        conn = make(db)
        create_topics(env, [conn.topic], log_append_time=True)
        pos = master_position(env)
        if isinstance(conn, Debezium):
            conn.prime()
        reader = LiveReader(env, conn.topic, conn.id_header, "created_at" if relay else None)
        reader.start()
        conn.start(pos)
        # wait until the connector is streaming: one probe row arrives
        probe = new_event_id()
        with env.admin(db) as c, c.cursor() as cur:
            cur.execute(insert_sql([probe], -1))
        watch = TopicWatch(env, conn.topic, conn.transactional, conn.id_header)
        watch.wait(1, timeout=300, proc=conn.proc, last_id=probe)
        log(f"{name}: {conn.name} streaming; offering {rate} rows/s for {seconds:.0f} s")
        writer = PacedWriter(env, db, rate, seconds)
        cpu0 = stack_cpu()
        writer.start()
        writer.join()
        # the server's CPU includes the writer's, the same for each connector; beyond it, a
        # relay's polls
        cpu = {k: round(v - cpu0[k], 2) for k, v in stack_cpu().items() if k in cpu0}
        total = writer.rows + 1
        watch.wait(total, timeout=600, proc=conn.proc, last_id=writer.last_id)
        got = reader.stop(total)
        extra: dict[str, Any] = {}
        if isinstance(conn, PollingRelay):
            conn.wait_empty(120)
            extra |= {"left_in_table": conn.left(), "settings": conn.settings()}
            # the rows are deleted: their commit times came with the records (a header)
            committed = {e: ms for e, _, _, ms in got if ms is not None}
        else:
            with env.admin(db) as c, c.cursor() as cur:
                cur.execute("SELECT id, UNIX_TIMESTAMP(created_at) * 1000 FROM outbox")
                committed = {i: float(ms) for i, ms in cur.fetchall()}
        figures = proc_figures(conn.pid())
        conn.stop()
        watch.close()
        # the probe was written before the connector streamed: its wait is the start's
        committed.pop(probe, None)
        appended = [max(0.0, a - committed[e]) for e, a, _, _ in got if e in committed]
        visible = [max(0.0, v - committed[e]) for e, _, v, _ in got if e in committed]
        p50, p99, pmax = quantiles(appended)
        v50, v99, vmax = quantiles(visible)
        r = Result(
            name,
            conn.name,
            writer.rows,  # the rows measured: the probe's wait is the connector's start
            seconds=seconds,
            rows_per_s=writer.rows / seconds,
            p50_ms=p50,
            p99_ms=p99,
            max_ms=pmax,
            vis_p50_ms=v50,
            vis_p99_ms=v99,
            vis_max_ms=vmax,
            delivery=conn.delivery,
            **figures,
            extra={
                "matched": len(appended),
                "distinct": len({e for e, *_ in got if e in committed}),
                "consumer": "isolation.level=read_committed",
                **extra,
                **cpu,
            },
        )
        if conn.transactional:
            r.extra["settings"] = eos_settings()
        log(
            f"{name}: {conn.name} append p50 {p50:.1f} ms, p99 {p99:.1f} ms;"
            f" visible (read_committed) p50 {v50:.1f} ms, p99 {v99:.1f} ms"
        )
        results.append(r)
    return results


# ---------------------------------------------------------------- report
def versions(env: Env) -> dict[str, str]:
    from importlib.metadata import version

    with env.admin() as c, c.cursor() as cur:
        cur.execute("SELECT VERSION()")
        server = cur.fetchone()[0]
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    pom = (ROOT / "scripts" / "debezium" / "pom.xml").read_text()
    return {
        "binlog-tailer": binlog_tailer.__version__,
        "python": platform.python_version(),
        "mysql-replication": version("mysql-replication"),
        "confluent-kafka": version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "server": server,
        "kafka": pom.split("<kafka.version>")[1].split("<")[0],
        "debezium": pom.split("<debezium.version>")[1].split("<")[0],
        "java": java[0] if java else "?",
        "machine": f"{os.cpu_count()} cores, {cpu}",
    }


# Long on purpose: the report's columns and footnotes, one line each.
def table(results: list[Result]) -> str:
    lines = [
        f"{'workload':<12} {'connector':<32} {'rows':>9} {'rows/s':>9} {'stream/s':>9}"
        f" {'MB/s':>7} {'RSS MB':>7} {'CPU s':>7} {'CPU s/M':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'max ms':>7} {'vis p50':>7} {'vis p99':>7}"
    ]

    def f(v, fmt):
        return format(v, fmt) if v else "-"

    for r in results:
        lines.append(
            f"{r.workload:<12} {r.connector:<32} {r.rows:>9,} {f(r.rows_per_s, ',.0f'):>9}"
            f" {f(r.rows_per_s_streaming, ',.0f'):>9} {f(r.mb_per_s, '.1f'):>7}"
            f" {f(r.peak_rss_mb, '.0f'):>7} {f(r.cpu_s, '.1f'):>7}"
            f" {f(r.cpu_s / r.rows * 1e6 if r.rows else 0, '.0f'):>7} {f(r.p50_ms, '.1f'):>7}"
            f" {f(r.p99_ms, '.1f'):>7} {f(r.max_ms, '.1f'):>7} {f(r.vis_p50_ms, '.1f'):>7}"
            f" {f(r.vis_p99_ms, '.1f'):>7}"
        )
    lines.append(
        "CPU s/M: the connector's CPU seconds per million rows (all its threads), the per-core"
        " figure: 1,000,000 / (CPU s/M) rows/s is what one core would carry"
    )
    if any(r.vis_p99_ms is not None for r in results):
        lines.append(
            "p50/p99/max ms: broker append time - commit time; vis p50/p99: time a live"
            " isolation.level=read_committed consumer received the record - commit time"
            " (under exactly-once a record is appended before its transaction commits)"
        )
    by = {(r.workload, r.connector): r for r in results}
    for w in sorted({r.workload for r in results}):
        ours, dbz = by.get((w, "binlog-tailer")), by.get((w, "Debezium"))
        eos = by.get((w, "binlog-tailer (exactly-once)"))
        lat = w.startswith("latency")
        if ours and dbz and dbz.rows_per_s and not lat:
            lines.append(
                f"{w}: ours / Debezium throughput = {ours.rows_per_s / dbz.rows_per_s:.2f}"
            )
        if ours and dbz and lat and dbz.p99_ms:
            lines.append(f"{w}: ours / Debezium p99 = {ours.p99_ms / dbz.p99_ms:.2f}")
        if ours and eos and not lat and ours.rows_per_s:
            lines.append(
                f"{w}: exactly-once / at-least-once throughput ="
                f" {eos.rows_per_s / ours.rows_per_s:.2f}, CPU = {eos.cpu_s / ours.cpu_s:.2f},"
                f" peak RSS = {eos.peak_rss_mb / ours.peak_rss_mb:.2f}"
                + "".join(
                    f", {k.split('_')[0]} CPU s {ours.extra[k]:.1f} -> {eos.extra[k]:.1f}"
                    for k in ("kafka_cpu_s", "server_cpu_s")
                    if k in ours.extra and k in eos.extra
                )
            )
        for relay in (r for r in results if r.workload == w and "(relay" in r.connector):
            if ours and not lat and ours.rows_per_s:
                lines.append(
                    f"{w}: {relay.connector} / binlog-tailer throughput ="
                    f" {relay.rows_per_s / ours.rows_per_s:.2f}"
                )
            if ours and lat and relay.p99_ms is not None:
                lines.append(
                    f"{w}: {relay.connector} p50 / p99 / max {relay.p50_ms:.1f} /"
                    f" {relay.p99_ms:.1f} / {relay.max_ms:.1f} ms, binlog-tailer"
                    f" {ours.p50_ms:.1f} / {ours.p99_ms:.1f} / {ours.max_ms:.1f} ms"
                    + (
                        f"; server CPU s {relay.extra['server_cpu_s']:.1f}, binlog-tailer"
                        f" {ours.extra['server_cpu_s']:.1f}"
                        if "server_cpu_s" in relay.extra and "server_cpu_s" in ours.extra
                        else ""
                    )
                )
        if ours and eos and lat and ours.vis_p99_ms:
            lines.append(
                f"{w}: exactly-once / at-least-once p99 (visible, read_committed) ="
                f" {eos.vis_p99_ms or 0:.1f} / {ours.vis_p99_ms:.1f} ms ="
                f" {(eos.vis_p99_ms or 0) / ours.vis_p99_ms:.2f}"
            )
    return "\n".join(lines)


# Long on purpose: the command line's options, one each, then the run.
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="binlog-tailer vs Debezium on the local stack")
    p.add_argument("--rows", type=int, default=200_000, help="rows per catch-up workload")
    p.add_argument("--workloads", default="catchup-1,catchup-100,latency")
    p.add_argument(
        "--latency-rate",
        default="2000",
        help="offered rows/s, comma-separated, a run each (the first is workload 'latency',"
        " the others 'latency@RATE')",
    )
    p.add_argument("--latency-seconds", type=float, default=60.0)
    p.add_argument("--no-debezium", action="store_true", help="measure binlog-tailer only")
    p.add_argument(
        "--delivery",
        default=",".join(DELIVERIES),
        help="binlog-tailer's delivery modes, each a run of its own (exactly_once: Kafka"
        " transactions; BINLOG_TAILER_EXACTLY_ONCE__* from the environment apply)",
    )
    p.add_argument(
        "--no-relay", action="store_true", help="leave out the polling relay (outbox.source=poll)"
    )
    p.add_argument(
        "--relay-poll-ms",
        default="",
        help="the relay's relay.poll_interval_ms, comma-separated, each a run of its own"
        " (default: the product's default, one run)",
    )
    p.add_argument(
        "--curve",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="sample each outbox catch-up's throughput and memory this often; print them",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = p.parse_args(argv)
    env = Env()
    deliveries = [d for d in args.delivery.split(",") if d]
    if not deliveries or set(deliveries) - set(DELIVERIES):
        raise SystemExit(f"--delivery: one or more of {', '.join(DELIVERIES)}")
    try:
        polls = [int(v) for v in args.relay_poll_ms.split(",") if v]
    except ValueError:
        raise SystemExit("--relay-poll-ms: milliseconds, comma-separated (e.g. 100,20,5)") from None
    relays: list[int | None] = [] if args.no_relay else (list(polls) or [None])
    try:
        rates = [int(v) for v in args.latency_rate.split(",") if v]
    except ValueError:
        raise SystemExit("--latency-rate: rows/s, comma-separated (e.g. 2000,20000)") from None
    with_dbz = not args.no_debezium
    if with_dbz and not env.debezium_jars:
        raise SystemExit("BT_DEBEZIUM_JARS is not set: run this through scripts/bench")
    run = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    log(f"run {run}; work directory {workdir}")
    results: list[Result] = []
    try:
        for w in args.workloads.split(","):
            kind, _, per = w.partition("-")
            if kind in ("catchup", "large") and per.isdigit():
                rows = args.rows if kind == "catchup" else max(1, args.rows // 10)
                results += catchup(
                    env, run, workdir, rows, int(per), with_dbz, deliveries, relays, kind,
                    args.curve,
                )  # fmt: skip
            elif kind in DATA_TABLES and per.isdigit():
                results += catchup_table(env, run, workdir, kind, args.rows, int(per), with_dbz)
            elif w == "snapshot":
                results += snapshot(env, run, workdir, args.rows, with_dbz)
            elif w == "latency":
                for i, rate in enumerate(rates):
                    results += latency(
                        env,
                        run,
                        workdir,
                        rate,
                        args.latency_seconds,
                        with_dbz,
                        deliveries,
                        relays if i == 0 else [],
                        "latency" if i == 0 else f"latency@{rate}",
                    )
            else:
                raise SystemExit(f"unknown workload {w!r}")
    finally:
        kill_leftovers()
    info = versions(env)
    print("\n" + table(results))
    for r in results:
        if r.extra.get("curve"):
            print("\n" + curve_table(r))
    print("\n" + ", ".join(f"{k} {v}" for k, v in info.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "versions": info,
                "args": {k: str(v) for k, v in vars(args).items()},
                "exactly_once_settings": eos_settings(),
                "relay_poll_ms": [p for p in relays],
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
    )
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
