"""Replay from a chosen position; clear errors and non-zero exits for bad input."""

import json
import socket

import pytest

from tests.integration.stack import Stack, consume, topic_sizes, wait_until
from tests.integration.tailer import Tailer, master_position


def _insert(stack: Stack, database: str, ids) -> None:
    with stack.admin(database) as conn, conn.cursor() as cur:
        for i in ids:
            cur.execute("INSERT INTO t VALUES (%s)", (i,))


def _run_until_end(stack: Stack, tailer: Tailer, *args: str) -> None:
    tailer.start(*args)
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos)
    assert tailer.stop() == 0, tailer.log()


@pytest.mark.parametrize("form", ["file_pos", "gtid"])
def test_replay_from_a_chosen_position_re_emits_exactly_what_follows(
    stack: Stack, database: str, tailer: Tailer, form: str
):
    begin_file, begin_pos, _ = master_position(stack)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    _insert(stack, database, range(1, 6))
    file, pos, gtid = master_position(stack)
    _insert(stack, database, range(6, 11))
    topic = tailer.topic(database, "t")

    # first run from before the table existed: all ten rows
    _run_until_end(stack, tailer, "--from", f"{begin_file}:{begin_pos}")
    assert topic_sizes(stack.kafka_bootstrap, [topic])[topic] == 10

    # replay into a fresh topic prefix from the position between the two batches
    tailer.topic_prefix += "_replay"
    tailer.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"] = tailer.topic_prefix
    start = f"{file}:{pos}" if form == "file_pos" else gtid
    _run_until_end(stack, tailer, "--from", start)
    replay_topic = tailer.topic(database, "t")
    msgs = consume(stack.kafka_bootstrap, [replay_topic], expect=5)
    assert [json.loads(m.value())["after"]["id"] for m in msgs] == [6, 7, 8, 9, 10]
    assert topic_sizes(stack.kafka_bootstrap, [replay_topic])[replay_topic] == 5

    # and without --from, the next run resumes from its checkpoint: nothing new, nothing again
    _insert(stack, database, [11])
    _run_until_end(stack, tailer)
    msgs = consume(stack.kafka_bootstrap, [replay_topic], expect=6)
    assert [json.loads(m.value())["after"]["id"] for m in msgs] == [6, 7, 8, 9, 10, 11]


def test_earliest_and_latest_name_real_positions(stack: Stack, tailer: Tailer):
    from binlog_tailer.position import parse_gtid
    from binlog_tailer.server import connect, earliest_position, latest_position
    from binlog_tailer.settings import load_settings

    settings = load_settings(
        **{
            "mysql": {
                "port": stack.mysql_port,
                "host": "127.0.0.1",
                "user": stack.cdc_user,
                "password": stack.cdc_password,
            }
        }
    )
    before = master_position(stack)
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [r[0] for r in cur.fetchall()]
        earliest = earliest_position(conn)
        latest = latest_position(conn)
    after = master_position(stack)
    assert (earliest.file, earliest.pos) == (files[0], 4)
    # other tests write meanwhile: the end of the binlog lies between the two readings
    assert before[:2] <= (latest.file, latest.pos) <= after[:2]
    if before == after:
        assert str(latest.gtid) == str(parse_gtid(after[2]))


def test_offsets_show_set_reset(tailer: Tailer):
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"] is None
    r = tailer.cli("offsets", "set", "binlog.000007:1234")
    assert r.returncode == 0, r.stderr
    shown = json.loads(tailer.cli("offsets", "show").stdout)["position"]
    assert shown == {"file": "binlog.000007", "pos": 1234, "gtid": None}
    r = tailer.cli("offsets", "set", "0-1-150,1-2-7")
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"]["gtid"] == "0-1-150,1-2-7"
    tagged = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10:tag_b:3:tagone:1-2"
    r = tailer.cli("offsets", "set", tagged.replace("tagone", "TagOne"))  # tags are lowercased
    assert r.returncode == 0, r.stderr
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"]["gtid"] == tagged
    assert tailer.cli("offsets", "reset").returncode == 0
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"] is None
    bad = tailer.cli("offsets", "set", "not-a-position")
    assert bad.returncode == 2
    assert "cannot read position" in bad.stderr


def test_invalid_settings_exit_2_with_one_clear_message(tailer: Tailer):
    tailer.env["BINLOG_TAILER_MYSQL__PORT"] = "seventy"
    tailer.env["BINLOG_TAILER_CHECKPOINT__INTERVAL_SECONDS"] = "-1"
    r = tailer.cli("run")
    assert r.returncode == 2
    assert "mysql.port" in r.stderr and "BINLOG_TAILER_MYSQL__PORT" in r.stderr
    assert "checkpoint.interval_seconds" in r.stderr
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mysql_is_a_clear_error(tailer: Tailer):
    tailer.env["BINLOG_TAILER_MYSQL__PORT"] = str(_free_port())
    r = tailer.cli("run")
    assert r.returncode == 1
    assert "cannot reach MySQL" in r.stderr and "Traceback" not in r.stderr
    check = tailer.cli("check")
    assert check.returncode == 3 and "FAIL" in check.stdout


def test_unreachable_mysql_after_checkpoint_gives_up_after_reconnect_timeout(tailer: Tailer):
    tailer.cli("offsets", "set", "binlog.000001:4")
    tailer.env["BINLOG_TAILER_MYSQL__PORT"] = str(_free_port())
    tailer.env["BINLOG_TAILER_MYSQL__RECONNECT_TIMEOUT_SECONDS"] = "2"
    r = tailer.cli("run")
    assert r.returncode == 1
    assert "cannot reach MySQL" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_kafka_is_a_clear_error(tailer: Tailer):
    tailer.env["BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{_free_port()}"
    r = tailer.cli("run")
    assert r.returncode == 1
    assert "Kafka at 127.0.0.1" in r.stderr and "not reachable" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.purges_binlogs
def test_purged_position_is_a_clear_error_and_nothing_is_skipped(
    stack: Stack, database: str, tailer: Tailer
):
    file, _, _ = master_position(stack)
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("FLUSH BINARY LOGS")
        current = stack.current_binlog()

        def purged() -> bool:
            # a file still read by a dump thread (one of a tailer killed by an earlier test
            # lingers until the server notices) is kept: purge again once it is gone
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return file not in [row[0] for row in cur.fetchall()]

        wait_until(purged, 60, f"{file} to be purged")
    tailer.cli("offsets", "set", f"{file}:4")
    r = tailer.cli("run")
    assert r.returncode == 1
    assert "cannot stream from" in r.stderr and "purged" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # the checkpoint is untouched: nothing was silently skipped
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"]["file"] == file
    check = tailer.cli("check")
    assert check.returncode == 3 and "NOT on the server" in check.stdout


def test_check_passes_on_the_local_stack(tailer: Tailer):
    r = tailer.cli("check")
    assert r.returncode == 0, r.stdout + r.stderr
    for setting in ("binlog_format = ROW", "binlog_row_image = FULL", "binlog_row_metadata = FULL"):
        assert setting in r.stdout
    assert "all checks passed" in r.stdout


def test_run_refuses_a_server_setting_check_fails_on_before_reading(tailer: Tailer):
    tailer.env["BINLOG_TAILER_MYSQL__SERVER_ID"] = "1"  # the server's own id
    r = tailer.cli("run")
    assert r.returncode == 3, r.stderr
    assert "not set up for change data capture" in r.stderr
    assert "equals the server's own id" in r.stderr and "fix: set mysql.server_id" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_privileges_are_one_clear_line_in_run_and_check(stack: Stack, tailer: Tailer):
    from tests.integration.stack import unique_name

    user = unique_name("np")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw_{user}'")
        cur.execute(f"GRANT SELECT ON *.* TO '{user}'@'127.0.0.1'")  # no replication at all
    try:
        tailer.env["BINLOG_TAILER_MYSQL__USER"] = user
        tailer.env["BINLOG_TAILER_MYSQL__PASSWORD"] = f"pw_{user}"
        r = tailer.cli("run")  # a first run: asks for the end of the binlog
        assert r.returncode == 1, r.stderr
        assert "MySQL refused the end of its binary log" in r.stderr, r.stderr
        assert "REPLICATION CLIENT" in r.stderr and "Traceback" not in r.stderr
        assert f"pw_{user}" not in r.stderr  # never the password
        tailer.cli("offsets", "set", "binlog.000001:4")
        check = tailer.cli("check")
        assert check.returncode == 3 and "Traceback" not in check.stdout + check.stderr
        assert "privileges: missing REPLICATION SLAVE, REPLICATION CLIENT" in check.stdout
        r = tailer.cli("run")  # from the stored position: the dump itself is refused
        assert r.returncode == 1 and "REPLICATION SLAVE" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        with stack.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'127.0.0.1'")


def test_sigterm_while_waiting_for_an_unreachable_server_stops_at_once(tailer: Tailer):
    import time

    tailer.cli("offsets", "set", "binlog.000001:4")
    tailer.env["BINLOG_TAILER_MYSQL__PORT"] = str(_free_port())  # the default: retry 300 s
    tailer.start()
    wait_until(lambda: "MySQL unavailable" in tailer.log(), 30, "a reconnect attempt")
    t0 = time.monotonic()
    assert tailer.stop(timeout=30) == 0, tailer.log()
    assert time.monotonic() - t0 < 10
    assert "Traceback" not in tailer.log()
    # the stored position is untouched
    assert json.loads(tailer.cli("offsets", "show").stdout)["position"]["pos"] == 4
