"""Each local source server is real and configured the way CDC needs it."""

import contextlib
import os
import subprocess
from pathlib import Path

from tests.integration.stack import ROOT, STACK_DIR, Stack, kafka_pid


def test_rows_written_by_admin_are_readable_by_cdc_user(stack: Stack, database: str):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", [(1, "한글"), (2, "emoji 🎉")])
    with stack.cdc(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM t ORDER BY id")
        assert cur.fetchall() == ((1, "한글"), (2, "emoji 🎉"))


def test_binlog_is_configured_for_cdc(stack: Stack):
    with stack.cdc() as conn, conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format',"
            " 'binlog_row_image', 'binlog_row_metadata', 'server_id', 'gtid_strict_mode',"
            " 'gtid_mode')"
        )
        settings = dict(cur.fetchall())
    gtids = {"gtid_strict_mode": "ON"} if stack.is_mariadb else {"gtid_mode": "ON"}
    assert settings == {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
        "server_id": "1",
        **gtids,
    }


def test_server_is_the_version_the_readme_names(stack: Stack):
    with stack.cdc() as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        (version,) = cur.fetchone()
    if stack.server == "mariadb11":
        assert "MariaDB" in version and version.startswith("11."), version
    elif stack.is_mariadb:
        assert "MariaDB" in version and version.startswith("10.11."), version
    else:
        assert "MariaDB" not in version and int(version.split(".")[0]) >= 9, version


def test_writes_advance_the_gtid_position(stack: Stack, database: str):
    before = stack.position()[2]
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
    after = stack.position()[2]
    assert after != before
    if stack.is_mariadb:
        _domain, server, seq = after.split(",")[0].split("-")
        assert server == "1" and int(seq) > 0
    else:
        uuid, _, intervals = after.split(",")[0].partition(":")
        untagged = intervals.split(":")[0]  # tagged intervals may follow: uuid:1-5:tag:1-2
        assert len(uuid) == 36 and int(untagged.split("-")[-1]) >= 2


def test_cdc_user_has_least_privilege(stack: Stack):
    with stack.cdc() as conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = " ".join(row[0] for row in cur.fetchall()).upper()
    assert "REPLICATION SLAVE" in grants
    assert "SELECT" in grants
    # MariaDB 10.5+ spells REPLICATION CLIENT as BINLOG MONITOR.
    assert "BINLOG MONITOR" in grants or "REPLICATION CLIENT" in grants
    assert "ALL PRIVILEGES" not in grants
    assert "INSERT" not in grants


def _open_files(pid: int) -> list[str]:
    fds = Path(f"/proc/{pid}/fd")
    out = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            out.append(os.readlink(fd))
    return out


# the locks scripts/dev-up and scripts/lib/venv.sh take (Kafka's own log.dirs/.lock is fine)
SCRIPT_LOCKS = ("/.dev-up.lock", "/.venv.lock")


def test_stack_servers_hold_no_lock_of_the_scripts(stack: Stack):
    """A server (or Kafka) started while dev-up held its lock must not inherit it: it would keep
    every later dev-up (the demo, the benchmark, a test restarting Kafka) waiting for ever."""
    pids = {"Kafka": kafka_pid()}
    server_pid = STACK_DIR / stack.server / "mysqld.pid"
    pids[stack.server] = int(server_pid.read_text())
    for name, pid in pids.items():
        assert pid is not None, f"{name} is not running"
        locks = [f for f in _open_files(pid) if f.endswith(SCRIPT_LOCKS)]
        assert locks == [], f"{name} (pid {pid}) holds {locks}"


def test_dev_up_again_reuses_the_running_stack(kafka_bootstrap: str):
    r = subprocess.run(
        [str(ROOT / "scripts" / "dev-up")], capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Kafka already running" in r.stderr, r.stderr
