"""The long-running popular-articles example (the compose file's service) against a running
binlog-tailer: every event it writes is consumed and ranked, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
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
    assert "popular: article #0 (" in r.stdout  # the most popular article by design

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
