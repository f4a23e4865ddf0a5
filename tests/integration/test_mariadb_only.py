"""What only MariaDB lets a transaction do with GTIDs on: mix transactional and
non-transactional tables (MySQL's enforce_gtid_consistency refuses it)."""

import json

import pytest

from tests.integration.conftest import checked_stack
from tests.integration.stack import SERVERS, Stack, consume
from tests.integration.tailer import Tailer, master_position
from tests.integration.test_refusals import _setup


@pytest.fixture(scope="session", params=[s for s in SERVERS if s.startswith("mariadb")])
def stack(request) -> Stack:
    return checked_stack(request.param)


def test_rows_rolled_back_to_a_savepoint_but_kept_in_the_binlog_are_not_published(
    stack: Stack, database: str, tailer: Tailer
):
    """With a non-transactional table changed in the transaction, the binlog keeps rows
    rolled back to a savepoint (and the ROLLBACK TO): what Kafka gets is what SELECT shows."""
    _setup(
        stack, database, tailer,
        "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE a (id INT PRIMARY KEY) ENGINE=Aria",
        "CREATE TRIGGER t_to_m AFTER INSERT ON t FOR EACH ROW INSERT INTO m VALUES (NEW.id)",
    )  # fmt: skip
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()
        cur.execute("INSERT INTO t VALUES (1, 'kept')")
        cur.execute("SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (2, 'rolled back')")  # m gets 2 for good
        cur.execute("SAVEPOINT `inner one`")
        cur.execute("UPDATE t SET v = 'rolled back' WHERE id = 1")
        cur.execute("INSERT INTO a VALUES (1)")
        cur.execute("ROLLBACK TO SAVEPOINT `inner one`")
        cur.execute("INSERT INTO t VALUES (3, 'rolled back')")
        cur.execute("ROLLBACK TO SAVEPOINT SP")
        cur.execute("INSERT INTO t VALUES (4, 'kept')")
        cur.execute("DELETE FROM t WHERE id = 1")
        conn.commit()
        tables = {}
        for table in ("t", "m", "a"):
            cur.execute(f"SELECT id FROM {table} ORDER BY id")
            tables[table] = [r[0] for r in cur.fetchall()]
    assert tables == {"t": [4], "m": [1, 2, 3, 4], "a": [1]}
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    topics = {table: tailer.topic(database, table) for table in tables}
    published = {
        table: [
            (v["op"], (v["after"] or v["before"])["id"])
            for v in (json.loads(m.value()) for m in consume(stack.kafka_bootstrap, [topic],
                      expect=expect, settle=1))
        ]
        for (table, topic), expect in zip(topics.items(), (3, 4, 1), strict=True)
    }  # fmt: skip
    assert published == {
        "t": [("c", 1), ("c", 4), ("d", 1)],
        "m": [("c", 1), ("c", 2), ("c", 3), ("c", 4)],
        "a": [("c", 1)],
    }


def test_a_start_at_file_and_offset_keeps_every_gtid_domain(
    stack: Stack, database: str, tailer: Tailer
):
    """The GTID state stored by a run started at FILE:POS names the domains that saw no
    transaction since, too (a failover by GTID would otherwise replay them)."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SET SESSION gtid_domain_id = 9")
        cur.execute("INSERT INTO t VALUES (9)")
        cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
        (state,) = cur.fetchone()
    domain9 = next(g for g in state.split(",") if g.startswith("9-"))
    file, pos, _ = master_position(stack)
    tailer.start("--from", f"{file}:{pos}")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (0)")  # domain 0
    end_file, end_pos, end_state = master_position(stack)
    tailer.wait_checkpoint_at_least(end_file, end_pos)
    assert tailer.stop() == 0, tailer.log()
    stored = tailer.stored_position()
    assert stored is not None
    assert domain9 in stored["gtid"].split(","), (stored, end_state)
