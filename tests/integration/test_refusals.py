"""Server settings a session can change, and transactions binlog-tailer cannot publish exactly:
each stops the service with one clear line naming the fix, and the checkpoint stays before it.
Nothing is skipped silently, nothing rolled back is published as if it had committed."""

import json

import pytest

from tests.integration.stack import Stack, consume
from tests.integration.tailer import Tailer, master_position


def _stopped_at_it(tailer: Tailer, before: tuple[str, int], after: tuple[str, int]) -> str:
    """The service exits 1 with one clear line, its checkpoint before the refused change
    (`after` is the end of the binlog once it was written), and a restart meets it again."""
    assert tailer.wait_exit(60) == 1, tailer.log()
    log = tailer.log()
    assert "Traceback" not in log, log
    stored = tailer.stored_position()
    assert stored is None or (stored["file"], stored["pos"]) < after, (stored, after)
    again = tailer.cli("run", *([] if stored else ["--from", f"{before[0]}:{before[1]}"]))
    assert again.returncode == 1, again.stderr
    last = log.strip().splitlines()[-1]
    assert last.split(": ", 1)[-1][:60] in again.stderr, (last, again.stderr)
    return log


def _setup(stack: Stack, database: str, tailer: Tailer, *ddl: str) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
        for statement in ddl:
            cur.execute(statement)
    tailer.start()


@pytest.mark.parametrize("form", ["STATEMENT", "MIXED"])
def test_statement_logged_dml_of_a_captured_table_is_refused(
    stack: Stack, database: str, tailer: Tailer, form: str
):
    _setup(stack, database, tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1, 'row')")
        before = master_position(stack)[:2]
        cur.execute(f"SET SESSION binlog_format = '{form}'")
        # MIXED logs a deterministic statement as a statement too
        cur.execute("UPDATE t SET v = 'statement' WHERE id = 1")
    log = _stopped_at_it(tailer, before, master_position(stack)[:2])
    assert f"UPDATE of {database}.t logged as a statement" in log, log
    assert "binlog_format=ROW" in log
    msgs = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=1)
    assert [json.loads(m.value())["op"] for m in msgs] == ["c"]  # the row change only


def test_statement_logged_dml_of_other_tables_is_not_a_reason_to_stop(
    stack: Stack, database: str, tailer: Tailer
):
    tailer.env["BINLOG_TAILER_CAPTURE__INCLUDE"] = f"{database}.t"
    _setup(stack, database, tailer, "CREATE TABLE other (id INT PRIMARY KEY)")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO other VALUES (1)")
        cur.execute("SET SESSION binlog_format = 'ROW'")
        cur.execute("INSERT INTO t VALUES (1, 'after')")
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    msgs = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=1)
    assert json.loads(msgs[0].value())["after"] == {"id": 1, "v": "after"}


@pytest.mark.parametrize("image", ["MINIMAL", "NOBLOB"])
def test_partial_row_images_are_refused(stack: Stack, database: str, tailer: Tailer, image):
    _setup(stack, database, tailer, "ALTER TABLE t ADD COLUMN b BLOB")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (1, 'full', 'blob')")
        before = master_position(stack)[:2]
        cur.execute(f"SET SESSION binlog_row_image = '{image}'")
        cur.execute("UPDATE t SET v = 'partial' WHERE id = 1")
    log = _stopped_at_it(tailer, before, master_position(stack)[:2])
    assert f"a change of {database}.t has a partial row image" in log, log
    assert "binlog_row_image=FULL" in log


def test_rollback_to_savepoint_is_not_a_commit(stack: Stack, database: str, tailer: Tailer):
    _setup(stack, database, tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()
        cur.execute("INSERT INTO t VALUES (1, 'kept')")
        cur.execute("SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (2, 'rolled back')")
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (3, 'kept')")
        conn.commit()
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()
    msgs = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=2, settle=1)
    assert [json.loads(m.value())["after"]["id"] for m in msgs] == [1, 3]


def test_xa_transactions_of_captured_tables_are_refused(
    stack: Stack, database: str, tailer: Tailer
):
    _setup(stack, database, tailer)
    with stack.admin(database) as conn, conn.cursor() as cur:
        before = master_position(stack)[:2]
        cur.execute("XA START 'bt1'")
        cur.execute("INSERT INTO t VALUES (1, 'xa')")
        cur.execute("XA END 'bt1'")
        cur.execute("XA PREPARE 'bt1'")
        cur.execute("XA COMMIT 'bt1'")
    log = _stopped_at_it(tailer, before, master_position(stack)[:2])
    assert f"XA transaction changing {database}.t" in log, log
