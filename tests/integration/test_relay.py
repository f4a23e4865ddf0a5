"""The polling relay (outbox.source = poll) on real servers: nothing skipped, nothing lost,
per-aggregate order, bounded duplicates, dead letters, least privilege."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
from confluent_kafka import Consumer

from binlog_tailer.outbox import outbox_ddl, write_event
from tests.integration.stack import Stack, consume, wait_until
from tests.integration.tailer import Tailer

BATCH = 40


class Relay(Tailer):
    """One relay process (`binlog-tailer run` with outbox.source = poll)."""

    command = "run"

    def __init__(self, stack: Stack, workdir: Path, database: str, user: str, **env: str) -> None:
        super().__init__(stack, workdir, database)
        del self.env["BINLOG_TAILER_CAPTURE__INCLUDE"]  # the relay reads outbox tables only
        self.env.update(
            {
                "BINLOG_TAILER_MYSQL__USER": user,
                "BINLOG_TAILER_MYSQL__PASSWORD": f"{user}_pw",
                "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
                "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
                "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.{{aggregate_type}}",
                "BINLOG_TAILER_DEAD_LETTER__TOPIC": f"{database}.dead",
                "BINLOG_TAILER_RELAY__POLL_INTERVAL_MS": "20",
                "BINLOG_TAILER_RELAY__STANDBY_CHECK_SECONDS": "0.2",
                "BINLOG_TAILER_RELAY__BATCH_SIZE": str(BATCH),
                "BINLOG_TAILER_NAME": database,
                "BINLOG_TAILER_HTTP__ENABLED": "false",
                **env,
            }
        )

    def start(self, *args: str) -> Relay:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        out = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binlog_tailer", self.command, *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        wait_until(
            lambda: (
                "relay: active" in self.log()
                or "relay: standby" in self.log()
                or self.proc.poll() is not None
            ),
            30,
            "the relay to start",
        )
        assert self.proc.poll() is None, f"relay exited at start:\n{self.log()}"
        return self

    @property
    def active(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and "relay: active" in self.log()


@pytest.fixture
def relay_user(stack: Stack, database: str) -> Iterator[str]:
    """A user with only what the relay needs: SELECT and DELETE on the outbox table."""
    user = f"r{database}"[:32]
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl(f"{database}.outbox", relay=True))
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{user}_pw'")
        cur.execute(f"GRANT SELECT, DELETE ON `{database}`.`outbox` TO '{user}'@'127.0.0.1'")
    yield user
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


@pytest.fixture
def new_relay(
    stack: Stack, database: str, relay_user: str, tmp_path: Path
) -> Iterator[Callable[..., Relay]]:
    """Makes relay processes of `database`'s outbox (killed at the end)."""
    made: list[Relay] = []

    def make(**env: str) -> Relay:
        workdir = tmp_path / f"relay{len(made)}"
        workdir.mkdir()
        made.append(Relay(stack, workdir, database, relay_user, **env))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _rows_left(stack: Stack, database: str) -> int:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM outbox")
        return int(cur.fetchone()[0])


def _ids(messages) -> list[str]:
    return [dict(m.headers())["event_id"].decode() for m in messages]


def test_a_row_committed_after_a_later_row_was_published_is_still_published(
    stack: Stack, database: str, relay_user: str, new_relay: Callable[..., Relay]
):
    """The hidden order: seq is taken at INSERT; the smaller one commits last."""
    relay = new_relay().start()
    with stack.admin(database) as early, stack.admin(database) as late:
        early.autocommit(False)
        late.autocommit(False)
        with early.cursor() as cur:
            first = write_event(cur, "hidden", 1, "Early", {"n": 1})  # the smaller seq
        with late.cursor() as cur:
            second = write_event(cur, "hidden", 2, "Late", {"n": 2})
        late.commit()
        topic = f"{database}.hidden"
        got = consume(stack.kafka_bootstrap, [topic], expect=1, settle=0.5)
        assert _ids(got) == [second]
        wait_until(lambda: _rows_left(stack, database) == 0, 10, "the published row deleted")
        early.commit()
    got = consume(stack.kafka_bootstrap, [topic], expect=2, settle=0.5)
    assert _ids(got) == [second, first]
    assert dict(got[1].headers())["outbox_seq"] < dict(got[0].headers())["outbox_seq"]
    wait_until(lambda: _rows_left(stack, database) == 0, 10, "every row deleted")
    assert relay.active


class _Writers:
    """Transactions that each bump one aggregate's version (its row lock orders them) and
    write 1-3 events of it; a fifth roll back. Commit order per aggregate = version order."""

    def __init__(self, stack: Stack, database: str, aggregates: int, threads: int) -> None:
        self.stack, self.database, self.aggregates = stack, database, aggregates
        self.committed: dict[int, list[str]] = {a: [] for a in range(aggregates)}
        self.rolled_back: set[str] = set()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE agg (id INT PRIMARY KEY, version INT NOT NULL)")
            cur.executemany("INSERT INTO agg VALUES (%s, 0)", [(a,) for a in range(aggregates)])
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not self.errors, self.errors

    def _run(self, seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with self.stack.admin(self.database) as conn:
                conn.autocommit(False)
                while not self.stop.is_set():
                    self._transaction(conn, rnd)
        except BaseException as exc:  # reported by join
            self.errors.append(exc)

    def _transaction(self, conn: pymysql.Connection, rnd: random.Random) -> None:
        a = rnd.randrange(self.aggregates)
        with conn.cursor() as cur:
            cur.execute("UPDATE agg SET version = version + 1 WHERE id = %s", (a,))
            cur.execute("SELECT version FROM agg WHERE id = %s", (a,))
            (version,) = cur.fetchone()
            ids = [
                write_event(cur, "order", a, "Changed", {"a": a, "v": version, "i": i})
                for i in range(rnd.randint(1, 3))
            ]
        if rnd.random() < 0.2:
            conn.rollback()
            self.rolled_back.update(ids)
        else:
            with self.lock:  # the row lock is held until here: appends follow commit order
                conn.commit()
                self.committed[a].extend(ids)
        time.sleep(rnd.random() * 0.004)


class _Seen:
    """Event ids that reached a topic so far (a consumer on a thread of its own)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.ids: set[str] = set()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"seen-{topic}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 200,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self._consumer.poll(0.05)
            if m is not None and m.error() is None:
                self.ids.add(dict(m.headers())["event_id"].decode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


def _kill_mid_batch(relay: Relay, stack: Stack, database: str, seen: _Seen) -> bool:
    """SIGSTOP the relay at a random moment; if Kafka then holds records of rows still in the
    table (a batch published, not removed), kill -9 it there and say so; else let it go on."""
    time.sleep(random.uniform(0.01, 0.1))
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.3)  # what it had produced reaches the broker and our consumer
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM outbox")
        left = {row[0] for row in cur.fetchall()}
    if left & seen.ids:
        relay.proc.kill()
        relay.proc.wait(10)
        return True
    relay.proc.send_signal(signal.SIGCONT)
    return False


def test_three_relays_one_killed_lose_nothing_keep_aggregate_order_and_bound_duplicates(
    stack: Stack, database: str, relay_user: str, new_relay: Callable[..., Relay]
):
    writers = _Writers(stack, database, aggregates=12, threads=4)
    writers.start()
    # a backlog first: the relays then work batch after batch
    wait_until(lambda: _rows_left(stack, database) >= 15 * BATCH, 60, "a backlog of events")
    topic = f"{database}.order"
    seen = _Seen(stack.kafka_bootstrap, topic)
    group = [new_relay() for _ in range(3)]
    for r in group:
        r.start()
    kills = 0
    try:
        for _ in range(2):  # kill the active relay with a batch in Kafka, not removed; twice
            wait_until(lambda: sum(r.active for r in group) == 1, 30, "one active relay")
            (active,) = [r for r in group if r.active]
            for _ in range(100):
                if _kill_mid_batch(active, stack, database, seen):
                    kills += 1
                    break
        assert kills == 2, "no kill found a batch published and not removed"
        wait_until(lambda: sum(r.active for r in group) == 1, 30, "a standby taking over")
        time.sleep(1.0)
    finally:
        writers.join()
        seen.close()
    wait_until(lambda: _rows_left(stack, database) == 0, 60, "every row published and deleted")
    committed = {i for ids in writers.committed.values() for i in ids}
    assert len(committed) > 200, "the writers committed too little for the test to mean much"
    got = consume(stack.kafka_bootstrap, [topic], expect=len(committed), timeout=60, settle=1.0)
    published = _ids(got)
    assert set(published) == committed  # nothing lost, nothing rolled back
    assert not writers.rolled_back & set(published)
    duplicates = len(published) - len(committed)
    assert 0 < duplicates <= kills * BATCH, duplicates  # the killed batches, again
    first_seen: dict[int, list[str]] = {a: [] for a in writers.committed}
    once: set[str] = set()
    for m, event_id in zip(got, published, strict=True):
        if event_id not in once:
            once.add(event_id)
            first_seen[int(m.key())].append(event_id)
    assert first_seen == writers.committed  # per aggregate: commit order
    assert sum(r.active for r in group) == 1
    print(
        f"relay kill test: {len(committed)} events committed, {len(writers.rolled_back)} rolled"
        f" back, {duplicates} duplicates after {kills} kills mid-batch"
    )


def test_bad_rows_go_to_the_dead_letter_topic_and_leave_the_table(
    stack: Stack, database: str, relay_user: str, new_relay: Callable[..., Relay]
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE outbox")
        ddl = (
            outbox_ddl("outbox", relay=True)
            .replace("payload        JSON NOT NULL", "payload LONGTEXT")
            .replace("event_type     VARCHAR(255) NOT NULL", "event_type VARCHAR(255) NULL")
        )
        cur.execute(ddl)
        good1 = write_event(cur, "item", 1, "Made", {"ok": 1})
        bad_json = write_event(cur, "item", 2, "Made", "{not json")
        cur.execute(
            "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)"
            " VALUES ('no-type', 'item', '3', NULL, '{}')"
        )
        good2 = write_event(cur, "item", 4, "Made", {"ok": 2})
    new_relay().start()
    good = consume(stack.kafka_bootstrap, [f"{database}.item"], expect=2, settle=0.5)
    assert _ids(good) == [good1, good2]
    dead = consume(stack.kafka_bootstrap, [f"{database}.dead"], expect=2, settle=0.5)
    headers = [{k: v.decode() for k, v in m.headers()} for m in dead]
    assert [h["dlq.reason"] for h in headers] == ["invalid_json", "missing_value"]
    assert [h["event_id"] for h in headers[:1]] == [bad_json]
    assert all(int(h["dlq.outbox_seq"]) > 0 and h["dlq.table"] == "outbox" for h in headers)
    assert dead[0].value() == b"{not json"
    wait_until(lambda: _rows_left(stack, database) == 0, 10, "the bad rows removed too")


def test_mark_mode_keeps_rows_marked_and_a_restart_publishes_nothing_again(
    stack: Stack, database: str, relay_user: str, new_relay: Callable[..., Relay]
):
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"GRANT UPDATE ON `{database}`.`outbox` TO '{relay_user}'@'127.0.0.1'")
    with stack.admin(database) as conn, conn.cursor() as cur:
        ids = [write_event(cur, "mark", n, "Made", {"n": n}) for n in range(150)]
    relay = new_relay(BINLOG_TAILER_RELAY__AFTER_PUBLISH="mark")
    relay.start()

    def unsent() -> int:
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            return int(cur.fetchone()[0])

    wait_until(lambda: unsent() == 0, 20, "every row marked sent")
    assert relay.stop() == 0
    assert _rows_left(stack, database) == 150
    relay.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        last = write_event(cur, "mark", 999, "Made", {"n": 999})
    wait_until(lambda: unsent() == 0, 20, "the new row marked sent")
    got = consume(stack.kafka_bootstrap, [f"{database}.mark"], expect=151, settle=1.0)
    assert _ids(got) == [*ids, last]


def test_a_table_without_a_sequence_and_a_user_without_delete_are_refused_clearly(
    stack: Stack, database: str, relay_user: str, new_relay: Callable[..., Relay]
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE outbox")
        cur.execute(outbox_ddl("outbox"))  # the binlog path's table: no seq
        write_event(cur, "x", 1, "Made", {})
    relay = new_relay()
    r = relay.cli("run", timeout=60)
    assert r.returncode == 1, r.stderr
    assert "has no sequence column seq" in r.stderr and "ALTER TABLE" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE outbox")
        cur.execute(outbox_ddl("outbox", relay=True))
        write_event(cur, "x", 1, "Made", {})
        cur.execute(f"REVOKE DELETE ON `{database}`.`outbox` FROM '{relay_user}'@'127.0.0.1'")
    r = relay.cli("run", timeout=60)
    assert r.returncode == 1, r.stderr
    assert re.search(r"GRANT SELECT, DELETE ON .*outbox.* TO", r.stderr), r.stderr
    assert _rows_left(stack, database) == 1
    check = relay.cli("check")
    assert check.returncode == 3 and "GRANT SELECT, DELETE" in check.stdout, check.stdout
    assert "REPLICATION" not in check.stdout  # the relay needs no binlog privilege
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"GRANT DELETE ON `{database}`.`outbox` TO '{relay_user}'@'127.0.0.1'")
    check = relay.cli("check")
    assert check.returncode == 0, check.stdout
    assert json.loads(relay.cli("settings").stdout)["outbox"]["source"] == "poll"


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in:\n{text}"
    return float(found.group(1))


def test_the_active_and_the_standby_relay_answer_probes_and_metrics(
    stack: Stack, database: str, new_relay: Callable[..., Relay]
):
    active = new_relay(BINLOG_TAILER_HTTP__ENABLED="true").start()
    wait_until(lambda: active.active, 30, "the first relay active")
    standby = new_relay(BINLOG_TAILER_HTTP__ENABLED="true").start()
    wait_until(lambda: "relay: standby" in standby.log(), 30, "the second relay on standby")
    with stack.admin(database) as conn, conn.cursor() as cur:
        for n in range(50):
            write_event(cur, "probe", n, "Made", {"n": n})
    wait_until(lambda: _rows_left(stack, database) == 0, 20, "the rows published")
    for relay, state in ((active, "active"), (standby, "standby")):
        assert relay.http_get("/healthz") == (200, "alive\n")
        assert relay.http_get("/readyz") == (200, f"{state}\n")
    table = f'{{table="{database}.outbox"}}'
    _, text = active.http_get("/metrics")
    assert _metric(text, "binlog_tailer_relay_active") == 1
    assert _metric(text, f"binlog_tailer_relay_rows_total{table}") == 50
    assert _metric(text, "binlog_tailer_records_produced_total") == 50
    _, text = standby.http_get("/metrics")
    assert _metric(text, "binlog_tailer_relay_active") == 0
    assert _metric(text, f"binlog_tailer_relay_rows_total{table}") == 0


def test_a_killed_session_is_reopened_and_the_relay_goes_on(
    stack: Stack, database: str, new_relay: Callable[..., Relay]
):
    relay = new_relay()
    relay.command = "relay"  # the same as run with outbox.source = poll
    del relay.env["BINLOG_TAILER_OUTBOX__SOURCE"]
    relay.start()
    wait_until(lambda: relay.active, 30, "the relay active")
    with stack.admin(database) as conn, conn.cursor() as cur:
        before = [write_event(cur, "session", n, "Made", {"n": n}) for n in range(100)]
    wait_until(lambda: _rows_left(stack, database) == 0, 20, "the first rows published")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (f"binlog-tailer.relay.{database}",))
        (session,) = cur.fetchone()
        assert session is not None
        cur.execute(f"KILL {int(session)}")  # the lock goes with it
    with stack.admin(database) as conn, conn.cursor() as cur:
        after = [write_event(cur, "session", n, "Made", {"n": n}) for n in range(100, 200)]
    wait_until(lambda: relay.log().count("relay: active") == 2, 30, "the relay active again")
    wait_until(lambda: _rows_left(stack, database) == 0, 20, "the later rows published")
    got = consume(stack.kafka_bootstrap, [f"{database}.session"], expect=200, settle=0.5)
    assert set(_ids(got)) == set(before + after)
    assert "lost MySQL" in relay.log()
    assert relay.stop() == 0
