"""The popular-articles example end to end, with Kafka stopped and restarted mid-run: from the
binlog, and with --relay as the polling relay (a user allowed SELECT and DELETE only)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.stops_kafka
@pytest.mark.parametrize("relay", [False, True], ids=["binlog", "relay"])
def test_kafka_outage_fails_no_business_write_and_loses_no_event(stack, relay):
    r = subprocess.run(
        [str(ROOT / "examples" / "popular_articles" / "run"), "--writes", "450", "--outage", "4",
         *(["--relay"] if relay else [])],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "BT_SERVER": stack.server},
    )  # fmt: skip
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Kafka is DOWN" in out and "Kafka is back" in out
    assert "450 business writes done, 0 failed" in out
    during = int(out.split("0 failed, ")[1].split(" of them")[0])
    assert during > 0  # writes really happened while Kafka was down
    written = int(out.split("events written ")[1].split(",")[0])
    assert written == 450 + 12  # every write, plus one event per created article
    assert "lost 0" in out
    assert "ranking from events equals the database's" in out
    if not relay:
        assert "polling relay" not in out
        return
    db = re.search(r"database (board_\w+);", out).group(1)
    user = f"{db}_relay"
    assert f"binlog-tailer runs as the polling relay, as MySQL user {user}:" in out
    grants = [line.split("]", 1)[1].strip() for line in out.splitlines() if "]   GRANT " in line]
    # least privilege: SELECT and DELETE on the outbox table, nothing else
    privileges = {g.split(" ON ")[0].removeprefix("GRANT ") for g in grants}
    assert privileges == {"USAGE", "SELECT, DELETE"}, grants
    assert any(f"ON `{db}`.`outbox` TO" in g for g in grants), grants
    assert "IDENTIFIED" not in out and "PASSWORD" not in out.upper()  # no hash, no secret
    assert "outbox rows left 0" in out  # each row deleted once Kafka acknowledged its event
    with stack.admin() as conn, conn.cursor() as cur:  # the example's user is dropped
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (user,))
        assert cur.fetchone()[0] == 0
