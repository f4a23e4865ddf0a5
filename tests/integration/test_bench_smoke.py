"""scripts/bench runs and reports figures (tiny sizes: a smoke test, not a measurement)."""

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_reports_catch_up_and_latency_figures(stack, tmp_path):
    r = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--no-debezium", "--rows", "2000",
         "--workloads", "catchup-1,latency", "--latency-rate", "200", "--latency-seconds", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=280, env={**os.environ, "BT_SERVER": stack.server},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (report,) = tmp_path.glob("bench-*.json")
    results = json.loads(report.read_text())["results"]
    by = {(x["workload"], x["connector"]): x for x in results}
    ours = by[("catchup-1", "binlog-tailer")]
    assert ours["rows"] == 2000 and ours["rows_per_s"] > 0 and ours["peak_rss_mb"] > 0
    client = "mariadb-binlog" if stack.is_mariadb else "mysqlbinlog"
    assert by[("catchup-1", f"raw binlog ({client})")]["mb_per_s"] > 0
    latency = by[("latency", "binlog-tailer")]
    assert latency["extra"]["matched"] == latency["rows"]  # every record joined to its commit
    assert 0 <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
