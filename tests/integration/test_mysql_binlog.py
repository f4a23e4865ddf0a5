"""What only MySQL's binlog has: tagged GTIDs, compressed transactions, partial JSON updates."""

import json

import pytest

from binlog_tailer.position import MysqlGtidSet
from tests.integration.conftest import checked_stack
from tests.integration.stack import SERVERS, Stack, consume, topic_sizes
from tests.integration.tailer import Tailer


@pytest.fixture(scope="session", params=[s for s in SERVERS if s == "mysql"])
def stack(request) -> Stack:
    """This module's tests are about MySQL: only the MySQL server of the stack."""
    return checked_stack(request.param)


def _events(stack: Stack, tailer: Tailer, database: str, table: str, expect: int) -> list[dict]:
    topic = tailer.topic(database, table)
    assert topic_sizes(stack.kafka_bootstrap, [topic])[topic] == expect
    return [json.loads(m.value()) for m in consume(stack.kafka_bootstrap, [topic], expect=expect)]


def _run_to_end(stack: Stack, tailer: Tailer) -> None:
    file, pos, _ = stack.position()
    tailer.wait_checkpoint_at_least(file, pos, timeout=120)
    assert tailer.stop() == 0, tailer.log()


def _insert(stack: Stack, database: str, ids, tag: str | None = None, compress=False) -> None:
    """One transaction inserting `ids`, with a tagged GTID and/or compressed when asked."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        if tag:
            cur.execute(f"SET gtid_next = 'AUTOMATIC:{tag}'")
        if compress:
            cur.execute("SET SESSION binlog_transaction_compression = ON")
        conn.begin()
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"row {i} " + "z" * 40) for i in ids])
        conn.commit()


def test_tagged_gtids_are_published_checkpointed_and_resumed_exactly(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body VARCHAR(100))")
    tailer.start()
    _insert(stack, database, [1, 2])
    _insert(stack, database, [3], tag="tagone")
    _insert(stack, database, [4, 5], tag="tagone")
    _run_to_end(stack, tailer)

    events = _events(stack, tailer, database, "t", 5)
    gtids = [e["source"]["gtid"] for e in events]
    assert all(g and g.count(":") == 1 for g in gtids[:2]), gtids
    assert gtids[2].split(":")[1] == "tagone" and gtids[3] == gtids[4] != gtids[2], gtids
    stored = MysqlGtidSet.parse(tailer.stored_position()["gtid"])
    for g in gtids:
        assert g in stored  # the checkpoint names every published transaction, tagged or not

    # replay by a GTID set without the last tagged transaction: exactly that one again
    replay_from = _without(stored, gtids[3])
    tailer.topic_prefix += "_replay"
    tailer.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"] = tailer.topic_prefix
    tailer.start("--from", replay_from)
    _run_to_end(stack, tailer)
    replayed = _events(stack, tailer, database, "t", 2)
    assert [e["after"]["id"] for e in replayed] == [4, 5]

    # a restart from that checkpoint after one more tagged transaction publishes only it
    _insert(stack, database, [6], tag="tagtwo")
    tailer.start()
    _run_to_end(stack, tailer)
    again = _events(stack, tailer, database, "t", 3)
    assert [e["after"]["id"] for e in again] == [4, 5, 6]
    assert again[2]["source"]["gtid"].split(":")[1] == "tagtwo"


def _without(gtids: MysqlGtidSet, gtid: str) -> str:
    """The set minus one GTID (at the end of its interval): a position just before it."""
    tsid, _, gno = gtid.rpartition(":")
    n = int(gno)
    out = []
    for t, intervals in gtids.sets:
        for lo, hi in intervals:
            if t == tsid and lo <= n <= hi:
                assert n == hi, "the GTID must be the last of its interval"
                if lo < hi:
                    out.append((t, lo, hi - 1))
            else:
                out.append((t, lo, hi))
    return ",".join(f"{t}:{lo}-{hi}" for t, lo, hi in out)


def test_compressed_transactions_are_published_exactly_and_resume_without_duplicates(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body VARCHAR(100))")
    tailer.start()
    _insert(stack, database, range(1, 10_001), compress=True)  # one transaction, 10,000 rows
    _insert(stack, database, [10_001, 10_002], compress=True, tag="zipped")
    _run_to_end(stack, tailer)
    first = tailer.stored_position()

    _insert(stack, database, range(10_003, 10_103), compress=True)
    tailer.start()  # resumes from the checkpoint after the compressed transactions
    _run_to_end(stack, tailer)

    events = _events(stack, tailer, database, "t", 10_102)
    assert [e["after"]["id"] for e in events] == list(range(1, 10_103))
    big = [e["source"] for e in events[:10_000]]
    assert len({(s["file"], s["pos"]) for s in big}) == 1  # one payload event
    assert [s["row"] for s in big] == list(range(10_000))  # rows numbered across the payload
    assert events[10_000]["source"]["gtid"].split(":")[1] == "zipped"
    assert first["gtid"] and events[10_001]["source"]["gtid"] in MysqlGtidSet.parse(first["gtid"])


def test_compressed_transactions_under_connection_loss_lose_and_replay_nothing(
    stack: Stack, database: str, tailer: Tailer
):
    from tests.integration.test_faults import _kill_binlog_dump_connections

    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, body VARCHAR(100))")
    tailer.start()
    next_id = 1
    for _ in range(3):
        for _ in range(20):
            _insert(stack, database, range(next_id, next_id + 50), compress=True)
            next_id += 50
        assert _kill_binlog_dump_connections(stack, tailer) >= 1
    _run_to_end(stack, tailer)
    assert sum(map(tailer.log().count, ("lost the replication", "MySQL unavailable"))) >= 3
    events = _events(stack, tailer, database, "t", next_id - 1)
    assert [e["after"]["id"] for e in events] == list(range(1, next_id))


def test_partial_json_update_stops_the_service_with_the_setting_named(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE j (id INT PRIMARY KEY, doc JSON)")
        cur.execute("""INSERT INTO j VALUES (1, '{"a": 1, "b": "x"}')""")
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
        cur.execute("""UPDATE j SET doc = JSON_SET(doc, '$.a', 2) WHERE id = 1""")
    assert tailer.wait_exit(60) == 1
    log = tailer.log()
    assert "partial JSON update" in log and "binlog_row_value_options" in log, log
    assert "Traceback" not in log
