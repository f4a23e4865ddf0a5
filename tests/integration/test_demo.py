"""The README's main-job command shows events from a fresh database arriving in Kafka."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_events_arriving(stack):
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "BT_SERVER": stack.server},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== 4 events arrived" in r.stdout
    assert r.stdout.count("op=c") == 2 and "op=u" in r.stdout and "op=d" in r.stdout
    assert "never committed" not in r.stdout
    assert "service exit code 0" in r.stdout
