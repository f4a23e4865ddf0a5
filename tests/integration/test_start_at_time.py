"""`run --from <time>` and `offsets set <time>`: the first transaction committed at or after a
time, found in the binlog (issue 13, item 5)."""

import datetime as dt
import json
import math
import time

from tests.integration.stack import Stack, consume
from tests.integration.tailer import Tailer


def _group(stack: Stack, database: str, group: int) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        for i in range(5):
            cur.execute("INSERT INTO t VALUES (%s, %s)", (group * 10 + i, group))


def _next_second() -> str:
    """Waits for the next whole second (the binlog's resolution on MariaDB); returns it."""
    now = time.time()
    second = math.ceil(now)
    time.sleep(second - now + 0.05)
    return dt.datetime.fromtimestamp(second, dt.UTC).isoformat().replace("+00:00", "Z")


def test_run_from_a_time_starts_at_the_first_transaction_committed_at_or_after_it(
    stack: Stack, database: str, tailer: Tailer
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, g INT)")
    _group(stack, database, 1)
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")  # the time falls in a later file than group 1
    when = _next_second()
    _group(stack, database, 2)
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
    _group(stack, database, 3)

    tailer.start("--from", when)
    got = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=10, settle=1.0)
    assert [json.loads(m.value())["after"]["g"] for m in got] == [2] * 5 + [3] * 5
    assert "the first transaction committed at or after it is at" in tailer.log()
    assert tailer.stop() == 0

    # offsets set with a time stores the same position; in a zone of its own too
    seoul = dt.datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(
        dt.timezone(dt.timedelta(hours=9))
    )
    r = tailer.cli("offsets", "set", seoul.isoformat())
    assert r.returncode == 0, r.stderr
    started = tailer.log().split("streaming from ", 1)[1].split(" (--from")[0]
    stored = r.stdout.split("stored ", 1)[1].split(" in ")[0]
    assert stored == started, (stored, started)


def test_times_outside_the_binlog_and_without_a_zone(stack: Stack, tailer: Tailer):
    r = tailer.cli("offsets", "set", "2000-01-01T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "no longer on the server" in r.stderr, r.stderr  # before the oldest binlog left
    r = tailer.cli("offsets", "set", "2999-01-01T00:00:00+00:00")
    assert r.returncode == 0, r.stderr
    assert "starting at the end of the binlog" in r.stderr, r.stderr
    r = tailer.cli("run", "--from", "2026-11-25T09:00:00")
    assert r.returncode == 2 and "has no zone" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
