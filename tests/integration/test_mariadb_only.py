"""What only MariaDB lets a transaction do with GTIDs on: mix transactional and
non-transactional tables (MySQL's enforce_gtid_consistency refuses it)."""

import pytest

from tests.integration.conftest import checked_stack
from tests.integration.stack import SERVERS, Stack
from tests.integration.tailer import Tailer, master_position
from tests.integration.test_refusals import _setup, _stopped_at_it


@pytest.fixture(scope="session", params=[s for s in SERVERS if s.startswith("mariadb")])
def stack(request) -> Stack:
    return checked_stack(request.param)


def test_rows_rolled_back_to_a_savepoint_but_kept_in_the_binlog_are_refused(
    stack: Stack, database: str, tailer: Tailer
):
    _setup(stack, database, tailer, "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM")
    with stack.admin(database) as conn, conn.cursor() as cur:
        before = master_position(stack)[:2]
        conn.begin()
        cur.execute("INSERT INTO t VALUES (1, 'kept')")
        cur.execute("SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (2, 'rolled back')")
        cur.execute("INSERT INTO m VALUES (1)")  # non-transactional: the binlog keeps row 2
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute("INSERT INTO t VALUES (3, 'kept')")
        conn.commit()
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchall() == ((1,), (3,))
    log = _stopped_at_it(tailer, before, master_position(stack)[:2])
    assert "rolled back to savepoint sp after changing captured tables" in log, log
