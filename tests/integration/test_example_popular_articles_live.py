"""The long-running popular-articles example (the compose file's service) against a running
binlog-tailer: every event it writes is consumed and ranked, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.stack import Stack, wait_until
from tests.integration.tailer import Tailer

ROOT = Path(__file__).resolve().parents[2]


def _example(*args: str) -> list[str]:
    return [sys.executable, "-m", "examples.popular_articles.live", "--articles", "4", *args]


def _env(stack: Stack, database: str) -> dict[str, str]:
    return {
        **os.environ,
        "BOARD_MYSQL_HOST": stack.mysql_host,
        "BOARD_MYSQL_PORT": str(stack.mysql_port),
        "BOARD_MYSQL_USER": stack.admin_user,
        "BOARD_MYSQL_PASSWORD": stack.admin_password,
        "BOARD_MYSQL_DATABASE": database,
        "BOARD_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "BOARD_TOPIC": f"{database}.article",
    }


def _assert_ranked(output: str) -> None:
    """The last ranking printed lists articles by score, highest first. (Which article leads
    is chance: the simulated users pick articles at random, weighted.)"""
    lines = [line for line in output.splitlines() if "popular: article #" in line]
    assert lines, output
    scores = [int(s) for s in re.findall(r"article #\d+ \((\d+)\)", lines[-1])]
    assert len(scores) >= 2 and scores == sorted(scores, reverse=True) and scores[0] > 0, lines[-1]


def test_live_example_ranks_every_event_and_stops_on_sigterm(
    stack: Stack, database: str, tailer: Tailer, tmp_path: Path
):
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")  # the outbox table alone
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.{{aggregate_type}}",
            "BINLOG_TAILER_DEAD_LETTER__TOPIC": f"{database}.dlq",
        }
    )
    tailer.start()
    r = subprocess.run(
        _example("--writes", "60", "--rate", "200", "--report-seconds", "1"),
        cwd=ROOT,
        env=_env(stack, database),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "events in the outbox 64, not consumed 0" in r.stdout  # 60 writes, 4 articles
    assert "60 business writes, 64 events consumed (0 duplicates ignored)" in r.stdout
    _assert_ranked(r.stdout)

    # as a service (no --writes): runs until SIGTERM, then exits 0; the articles are reused
    log = tmp_path / "live.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _example("--rate", "50", "--report-seconds", "0.5"),
            cwd=ROOT,
            env=_env(stack, database),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "business writes" in log.read_text(), 60, "the example's first report")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "4 articles;" in log.read_text()
    assert tailer.stop() == 0, tailer.log()


def test_live_example_with_the_polling_relay_ranks_every_event(
    stack: Stack, database: str, tailer: Tailer
):
    """--relay: the outbox table has the relay's columns, binlog-tailer runs apart as the
    polling relay (outbox.source = poll); every event the board committed is consumed, and the
    relay leaves the table empty."""
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.{{aggregate_type}}",
            "BINLOG_TAILER_DEAD_LETTER__TOPIC": f"{database}.dlq",
            "BINLOG_TAILER_MYSQL__USER": stack.admin_user,  # SELECT and DELETE on the outbox
            "BINLOG_TAILER_MYSQL__PASSWORD": stack.admin_password,
            "BINLOG_TAILER_NAME": database,
        }
    )
    example = subprocess.Popen(
        _example("--relay", "--writes", "60", "--rate", "200", "--report-seconds", "1"),
        cwd=ROOT,
        env=_env(stack, database),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    relay = None
    try:
        # the relay checks the table's shape when it becomes active: start it once it exists
        wait_until(lambda: outbox_rows(stack, database) is not None, 60, "the outbox table")
        log = tailer.workdir / "relay.log"
        with open(log, "wb") as out:
            relay = subprocess.Popen(
                [sys.executable, "-m", "binlog_tailer", "run"],
                env=tailer.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        out_text, _ = example.communicate(timeout=180)
        assert example.returncode == 0, out_text + log.read_text()
        assert "events written 64, not consumed 0" in out_text  # 60 writes, 4 articles
        _assert_ranked(out_text)
        wait_until(lambda: outbox_rows(stack, database) == 0, 30, "the relay to empty the table")
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(60) == 0, log.read_text()
        assert "relay: active" in log.read_text()
    finally:
        for proc in (example, relay):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(30)


def outbox_rows(stack: Stack, database: str) -> int | None:
    """Rows in the outbox table (None: not created yet)."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = 'outbox'",
            (database,),
        )
        if cur.fetchone()[0] == 0:
            return None
        cur.execute("SELECT COUNT(*) FROM outbox")
        return int(cur.fetchone()[0])
