"""The popular-articles example end to end, with Kafka stopped and restarted mid-run."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.stops_kafka
def test_kafka_outage_fails_no_business_write_and_loses_no_event(stack):
    r = subprocess.run(
        [str(ROOT / "examples" / "popular_articles" / "run"), "--writes", "450", "--outage", "4"],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "BT_SERVER": stack.server},
    )
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
