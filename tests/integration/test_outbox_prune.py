"""`binlog-tailer outbox prune` against the real stack: published old rows go in bounded
batches, rows the checkpoint has not passed stay; the relay's mark mode; privileges."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import random
import re
import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from binlog_tailer.filtering import TableFilter
from binlog_tailer.model import RowChange, TxnEnd
from binlog_tailer.outbox import new_event_id, outbox_ddl, write_event
from binlog_tailer.position import BinlogPosition, passed
from binlog_tailer.server import latest_position
from binlog_tailer.settings import MysqlSettings
from binlog_tailer.source import BinlogSource
from tests.integration.stack import Stack, consume, topic_sizes, unique_name, wait_until
from tests.integration.tailer import Tailer, master_position

# Old for prune (retention 1 hour here), young for Kafka: the outbox's created_at is its
# records' timestamp, and Kafka's retention (7 days) would drop older ones at once.
RETENTION = {"BINLOG_TAILER_PRUNE__RETENTION_HOURS": "1"}
OLD = dt.datetime.now() - dt.timedelta(days=1)
LINE = re.compile(r": (\d+) rows deleted in (\d+) DELETE transactions, [\d.]+ s$")


def _outbox_tailer(tailer: Tailer, database: str) -> Tailer:
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.event.{{aggregate_type}}",
            **RETENTION,
        }
    )
    return tailer


@contextlib.contextmanager
def prune_user(
    stack: Stack, database: str, tailer: Tailer, grants: str, on: str = "`outbox`"
) -> Iterator[str]:
    """A user with `grants` on the outbox table alone (or `on`), set as prune.user /
    prune.password."""
    user, password = unique_name("pr"), unique_name("pw")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT {grants} ON `{database}`.{on} TO '{user}'@'127.0.0.1'")
    tailer.env["BINLOG_TAILER_PRUNE__USER"] = user
    tailer.env["BINLOG_TAILER_PRUNE__PASSWORD"] = password
    try:
        yield password
    finally:
        with stack.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def insert_old_rows(stack: Stack, database: str, n: int) -> list[str]:
    """`n` old events, in transactions of 10,000."""
    ids = [new_event_id() for _ in range(n)]
    rows = [
        (eid, "order", str(i % 97), "Placed", f'{{"n": {i}}}', OLD + dt.timedelta(microseconds=i))
        for i, eid in enumerate(ids)
    ]
    with stack.admin(database) as conn, conn.cursor() as cur:
        for start in range(0, n, 10_000):
            conn.begin()
            cur.executemany(
                "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                rows[start : start + 10_000],
            )
            conn.commit()
    return ids


class OutboxWriter(threading.Thread):
    """Commits one event at a time, every third created 2 hours ago (old, but written now)."""

    def __init__(self, stack: Stack, database: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.database = stack, database
        self.old: list[str] = []
        self.new: list[str] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    @property
    def committed(self) -> int:
        return len(self.old) + len(self.new)

    def run(self) -> None:
        rng = random.Random(12)
        try:
            with self.stack.admin(self.database) as conn, conn.cursor() as cur:
                while not self._stop_event.is_set():
                    old = rng.random() < 1 / 3
                    created = dt.datetime.now() - dt.timedelta(hours=2) if old else None
                    conn.begin()
                    eid = write_event(
                        cur, "order", rng.randrange(97), "Paid", {}, created_at=created
                    )
                    conn.commit()
                    (self.old if old else self.new).append(eid)
                    self._stop_event.wait(0.005)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def wait_more(self, n: int) -> None:
        target = self.committed + n
        wait_until(lambda: self.committed >= target or self.error is not None, 30, f"{n} writes")
        assert self.error is None, self.error

    def finish(self) -> None:
        self._stop_event.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error


def delete_transactions(stack: Stack, database: str, start: tuple[str, int]) -> list[int]:
    """Rows deleted from the outbox per transaction in the binlog from `start` to its end now,
    as the server wrote them: a check of the batches independent of prune's own report."""
    with stack.cdc() as conn:
        end = latest_position(conn)
    mysql = MysqlSettings(
        host=stack.mysql_host,
        port=stack.mysql_port,
        user=stack.cdc_user,
        password=SecretStr(stack.cdc_password),
        server_id=random.randint(10_000, 2**31),
        heartbeat_seconds=0.5,
    )
    source = BinlogSource(mysql, BinlogPosition(*start), TableFilter([f"{database}.outbox"]))
    counts, rows, deadline = [], 0, time.monotonic() + 60
    try:
        for item in source:
            assert time.monotonic() < deadline, "the binlog was not read to its end in 60 s"
            if isinstance(item, RowChange):
                rows += item.op == "d"
            elif isinstance(item, TxnEnd):
                if rows:
                    counts.append(rows)
                rows = 0
                if passed(item.position, end):
                    break
    finally:
        source.close()
    return counts


def table_ids(stack: Stack, database: str) -> set[str]:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM outbox")
        return {row[0] for row in cur.fetchall()}


def prune(tailer: Tailer, *args: str) -> tuple[int, int, str]:
    """Run prune; (rows deleted, DELETE transactions, stdout) from its line for the table."""
    r = tailer.cli("outbox", "prune", *args, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m = LINE.search(r.stdout.strip())
    assert m and len(r.stdout.strip().splitlines()) == 1, r.stdout
    return int(m.group(1)), int(m.group(2)), r.stdout


def test_prune_deletes_only_rows_the_checkpoint_passed_in_bounded_batches(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
    _outbox_tailer(tailer, database).start()
    tailer.env["BINLOG_TAILER_PRUNE__BATCH_SIZE"] = "1000"
    bulk = insert_old_rows(stack, database, 100_000)
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=90)

    with prune_user(stack, database, tailer, "SELECT, DELETE") as password:
        writer = OutboxWriter(stack, database)
        writer.start()
        writer.wait_more(20)
        assert tailer.stop() == 0, tailer.log()  # the checkpoint freezes here
        writer.wait_more(20)  # committed after it, some of them old
        before = table_ids(stack, database)
        r = tailer.cli("outbox", "prune", "--wait", "2", timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "did not pass the end of the binary log" in lines[0], lines[0]
        assert "not running or is behind" in lines[0] and "0 rows deleted so far" in lines[0]
        assert password not in r.stdout + r.stderr
        assert before <= table_ids(stack, database)  # nothing deleted, committed after or not

        # dry run: counts, deletes nothing
        dry = tailer.cli("outbox", "prune", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        counted = int(re.search(r": (\d+) rows to delete \(dry run", dry.stdout).group(1))
        assert counted >= len(bulk) + 1 and before <= table_ids(stack, database)

        tailer.start()
        start = master_position(stack)[:2]
        rows, transactions, _ = prune(tailer)  # while the writer goes on
        tailer.kill()  # publishes nothing more: every row deleted so far is in Kafka already
        writer.finish()
        remaining = table_ids(stack, database)
        deleted = (set(bulk) | set(writer.old) | set(writer.new)) - remaining
        assert rows == len(deleted) and set(bulk) <= deleted and not deleted & set(writer.new)
        assert math.ceil(rows / 1000) <= transactions <= math.ceil(rows / 1000) + 2
        batches = delete_transactions(stack, database, start)  # as the binlog has them
        assert sum(batches) == rows and len(batches) == transactions and max(batches) == 1000

        topic = f"{database}.event.order"
        sizes = topic_sizes(stack.kafka_bootstrap, [topic])
        published = consume(stack.kafka_bootstrap, [topic], expect=sizes[topic], timeout=60)
        event_ids = {dict(m.headers())["event_id"].decode() for m in published}
        assert deleted <= event_ids, len(deleted - event_ids)

        tailer.start()  # from the stored checkpoint: catches up, then the rest can go
        rows, _, _ = prune(tailer)
        assert table_ids(stack, database) == set(writer.new)  # every old row gone, no new one
        assert rows == len(remaining) - len(writer.new)
        assert tailer.stop() == 0, tailer.log()


def test_prune_refuses_without_a_checkpoint_and_names_the_missing_grant(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
    _outbox_tailer(tailer, database)
    insert_old_rows(stack, database, 10)
    with prune_user(stack, database, tailer, "SELECT") as password:
        r = tailer.cli("outbox", "prune")
        assert r.returncode == 1 and "no stored checkpoint" in r.stderr, r.stderr
        tailer.cli("offsets", "set", ":".join(map(str, master_position(stack)[:2])))
        r = tailer.cli("outbox", "prune")
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        user = tailer.env["BINLOG_TAILER_PRUNE__USER"]
        assert f"GRANT SELECT, DELETE ON `{database}`.`outbox` TO '{user}'@'127.0.0.1'" in lines[0]
        assert password not in r.stderr
        tailer.env["BINLOG_TAILER_PRUNE__PASSWORD"] = "wrong"
        r = tailer.cli("outbox", "prune")
        assert r.returncode == 1 and "check prune.user / prune.password" in r.stderr, r.stderr
    assert len(table_ids(stack, database)) == 10


def test_relay_mark_mode_prunes_old_rows_marked_sent(stack: Stack, database: str, tailer: Tailer):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl(relay=True))
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
            "BINLOG_TAILER_RELAY__AFTER_PUBLISH": "mark",
            "BINLOG_TAILER_PRUNE__BATCH_SIZE": "7",
            "BINLOG_TAILER_PRUNE__PAUSE_MS": "0",
            **RETENTION,
        }
    )
    kinds: dict[str, list[str]] = {"old_sent": [], "old_unsent": [], "new_sent": [], "new": []}
    with stack.admin(database) as conn, conn.cursor() as cur:
        for kind, count in (("old_sent", 50), ("old_unsent", 5), ("new_sent", 5), ("new", 5)):
            created = OLD if kind.startswith("old") else None
            for _ in range(count):
                kinds[kind].append(write_event(cur, "order", 1, "Placed", {}, created_at=created))
        marked = kinds["old_sent"] + kinds["new_sent"]
        cur.execute(
            f"UPDATE outbox SET sent_at = NOW(6) WHERE id IN ({','.join(['%s'] * len(marked))})",
            marked,
        )
    with prune_user(stack, database, tailer, "SELECT, DELETE"):
        dry = tailer.cli("outbox", "prune", "--dry-run")
        expected = f"{database}.outbox: 50 rows to delete (dry run: nothing deleted)"
        assert dry.stdout.strip() == expected, dry.stdout + dry.stderr
        rows, transactions, _ = prune(tailer)
        assert (rows, transactions) == (50, 8)  # batches of 7
        kept = set(kinds["old_unsent"] + kinds["new_sent"] + kinds["new"])
        assert table_ids(stack, database) == kept

        tailer.env["BINLOG_TAILER_RELAY__AFTER_PUBLISH"] = "delete"
        r = tailer.cli("outbox", "prune")
        assert r.returncode == 0, r.stderr
        assert "nothing to prune (relay.after_publish = delete" in r.stdout
        assert table_ids(stack, database) == kept


@pytest.fixture
def offsets_topic(kafka_admin: AdminClient) -> Iterator[str]:
    """A name for a fresh offsets topic (the store creates it); deleted afterwards."""
    name = unique_name("offsets")
    yield name
    for f in kafka_admin.delete_topics([name], operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # never created
            f.result(timeout=30)


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_prune_reads_the_checkpoint_kept_in_kafka(
    stack: Stack, database: str, tailer: Tailer, offsets_topic: str, delivery: str
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
    _outbox_tailer(tailer, database).use_kafka_store(offsets_topic)
    tailer.env["BINLOG_TAILER_DELIVERY"] = delivery
    tailer.start()
    ids = insert_old_rows(stack, database, 3_000)
    with stack.admin(database) as conn, conn.cursor() as cur:
        young = write_event(cur, "order", 1, "Placed", {})
    with prune_user(stack, database, tailer, "SELECT, DELETE"):
        rows, transactions, _ = prune(tailer)  # waits for the checkpoint in Kafka to pass them
    assert (rows, transactions) == (3_000, 3)
    assert table_ids(stack, database) == {young}
    assert tailer.stop() == 0, tailer.log()
    topic = f"{database}.event.order"
    published = consume(stack.kafka_bootstrap, [topic], expect=3_001, timeout=30)
    assert set(ids) <= {dict(m.headers())["event_id"].decode() for m in published}


def test_prune_expands_table_patterns(stack: Stack, database: str, tailer: Tailer):
    with stack.admin(database) as conn, conn.cursor() as cur:
        for name in ("outbox_a", "outbox_b", "other"):
            cur.execute(outbox_ddl(name))
    _outbox_tailer(tailer, database)
    tailer.env["BINLOG_TAILER_OUTBOX__TABLES"] = f"{database}.outbox_*"
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        for name in ("outbox_a", "outbox_b", "other"):
            for _ in range(5):
                write_event(cur, "order", 1, "Placed", {}, table=name, created_at=OLD)
    with prune_user(stack, database, tailer, "SELECT, DELETE", on="*"):
        r = tailer.cli("outbox", "prune")
    assert r.returncode == 0, r.stderr
    assert [re.sub(r", [\d.]+ s$", "", line) for line in r.stdout.splitlines()] == [
        f"{database}.outbox_a: 5 rows deleted in 1 DELETE transactions",
        f"{database}.outbox_b: 5 rows deleted in 1 DELETE transactions",
    ]
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM other")
        assert cur.fetchone() == (5,)  # not an outbox table: untouched
    assert tailer.stop() == 0, tailer.log()


def test_prune_after_the_polling_relay_marked_rows_sent(stack: Stack, database: str, tmp_path):
    from tests.integration.test_relay import Relay

    user = f"r{database}"[:32]
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl(f"{database}.outbox", relay=True))
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{user}_pw'")
        grant = f"GRANT SELECT, UPDATE, DELETE ON `{database}`.`outbox` TO '{user}'@'127.0.0.1'"
        cur.execute(grant)  # the relay's user, and prune's by default (mysql.user)
    relay = Relay(stack, tmp_path, database, user, BINLOG_TAILER_RELAY__AFTER_PUBLISH="mark")
    relay.env.update(RETENTION)
    try:
        with stack.admin(database) as conn, conn.cursor() as cur:
            old = [write_event(cur, "o", n, "Made", {}, created_at=OLD) for n in range(30)]
            young = [write_event(cur, "o", n, "Made", {}) for n in range(5)]
        relay.start()

        def unsent() -> int:
            with stack.admin(database) as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
                return int(cur.fetchone()[0])

        wait_until(lambda: unsent() == 0, 30, "every row marked sent")
        assert relay.stop() == 0, relay.log()
        with stack.admin(database) as conn, conn.cursor() as cur:
            late = write_event(cur, "o", 99, "Made", {}, created_at=OLD)  # old, never sent
        r = relay.cli("outbox", "prune")
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(
            rf"{database}\.outbox: 30 rows deleted in 1 DELETE transactions, [\d.]+ s",
            r.stdout.strip(),
        ), r.stdout
        assert table_ids(stack, database) == {*young, late}
        assert not set(old) & table_ids(stack, database)
    finally:
        relay.close()
        with stack.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
