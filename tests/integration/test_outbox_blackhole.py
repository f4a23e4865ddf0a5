"""A BLACKHOLE outbox table: events reach the binlog, and so Kafka, and the table stays empty.

MySQL has the engine built in. MariaDB ships it as a plugin (ha_blackhole.so) that
`INSTALL SONAME 'ha_blackhole'` loads where the server package has it (Debian: mariadb-server,
not mariadb-server-core alone, which is all the stack's MariaDB 11 has): there, the test checks
the CREATE TABLE is refused, never silently made InnoDB (NO_ENGINE_SUBSTITUTION).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pymysql
import pytest

from binlog_tailer.outbox import outbox_ddl, write_event
from tests.integration.stack import Stack, consume, topic_sizes
from tests.integration.tailer import Tailer, master_position

CANNOT_OPEN_LIBRARY = 1126
UNKNOWN_STORAGE_ENGINE = 1286


def _has_blackhole(cur) -> bool:
    cur.execute("SELECT SUPPORT FROM information_schema.ENGINES WHERE ENGINE = 'BLACKHOLE'")
    row = cur.fetchone()
    return row is not None and row[0] in ("YES", "DEFAULT")


@contextlib.contextmanager
def blackhole_engine(stack: Stack) -> Iterator[bool]:
    """Whether the server has the BLACKHOLE engine, installed for the test where MariaDB has
    its plugin (and uninstalled again)."""
    installed = False
    with stack.admin() as conn, conn.cursor() as cur:
        if not _has_blackhole(cur) and stack.is_mariadb:
            try:
                cur.execute("INSTALL SONAME 'ha_blackhole'")
                installed = True
            except pymysql.err.MySQLError as exc:
                assert exc.args[0] == CANNOT_OPEN_LIBRARY, exc  # no plugin file: nothing else
        available = _has_blackhole(cur)
    try:
        yield available
    finally:
        if installed:
            with stack.admin() as conn, conn.cursor() as cur:
                cur.execute("UNINSTALL SONAME 'ha_blackhole'")


@pytest.mark.changes_server_globals
def test_blackhole_outbox_publishes_every_committed_event_and_stores_none(
    stack: Stack, database: str, tailer: Tailer
):
    with blackhole_engine(stack) as available:
        if not available:
            assert stack.server == "mariadb11", f"{stack.server} has no BLACKHOLE engine"
            with stack.admin(database) as conn, conn.cursor() as cur:
                with pytest.raises(pymysql.err.MySQLError) as refused:
                    cur.execute(outbox_ddl(engine="BLACKHOLE"))
                assert refused.value.args[0] == UNKNOWN_STORAGE_ENGINE
                cur.execute("SHOW TABLES")
                assert cur.fetchall() == ()  # refused, not made InnoDB instead
            return
        try:
            _publishes_and_stores_nothing(stack, database, tailer)
        finally:
            with stack.admin(database) as conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS outbox")  # before the engine goes


def _publishes_and_stores_nothing(stack: Stack, database: str, tailer: Tailer) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl(engine="BLACKHOLE"))
        cur.execute(
            "SELECT ENGINE FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'outbox'",
            (database,),
        )
        assert cur.fetchone() == ("BLACKHOLE",)
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.event.{{aggregate_type}}",
        }
    )
    tailer.start()

    expected: list[tuple[str, bytes, dict]] = []  # (event id, key, payload) in commit order
    with stack.admin(database) as conn, conn.cursor() as cur:
        for n in range(30):
            conn.begin()
            for k in range(1 + n % 3):  # transactions of one to three events
                payload = {"n": n, "k": k, "text": "한글 🎉"}
                key = f"o-{(n + k) % 4}"
                expected.append((write_event(cur, "order", key, "Placed", payload), key, payload))
            conn.commit()
            if n % 5 == 0:
                conn.begin()
                write_event(cur, "order", "o-1", "Placed", {"rolled_back": n})
                conn.rollback()
        conn.begin()
        payload = {"delete_after": True}
        eid = write_event(cur, "order", "o-9", "Shipped", payload, delete_after=True)
        expected.append((eid, "o-9", payload))
        conn.commit()
        cur.execute("SELECT COUNT(*) FROM outbox")
        assert cur.fetchone() == (0,)  # nothing stored, ever
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=60)

    topic = f"{database}.event.order"
    msgs = consume(stack.kafka_bootstrap, [topic], expect=len(expected), timeout=30)
    assert topic_sizes(stack.kafka_bootstrap, [topic]) == {topic: len(expected)}  # no rollback
    got = []
    for m in msgs:
        headers = dict(m.headers())
        assert headers["event_type"] in (b"Placed", b"Shipped")
        assert headers["aggregate_type"] == b"order"
        got.append((headers["event_id"].decode(), m.key().decode(), json.loads(m.value())))
    assert got == expected  # every committed event, in commit order, keys and payloads intact

    # prune: nothing to do, and it says so
    r = tailer.cli("outbox", "prune")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        f"{database}.outbox: nothing to prune (a BLACKHOLE table stores no rows)"
    )
    assert tailer.stop() == 0, tailer.log()
