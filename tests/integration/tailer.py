"""Runs the real service (`python -m binlog_tailer`) as a subprocess against the local stack."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.stack import Stack, last_offset_document, wait_until


class Tailer:
    def __init__(self, stack: Stack, workdir: Path, database: str, **env: str) -> None:
        self.stack = stack
        self.workdir = workdir
        self.checkpoint = workdir / "offsets.json"
        self.topic_prefix = f"cdc_{database}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BINLOG_TAILER_")},
            "BINLOG_TAILER_MYSQL__HOST": stack.mysql_host,
            "BINLOG_TAILER_MYSQL__PORT": str(stack.mysql_port),
            "BINLOG_TAILER_MYSQL__USER": stack.cdc_user,
            "BINLOG_TAILER_MYSQL__PASSWORD": stack.cdc_password,
            "BINLOG_TAILER_MYSQL__SERVER_ID": str(random.randint(10_000, 2**31)),
            "BINLOG_TAILER_MYSQL__HEARTBEAT_SECONDS": "0.5",
            "BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "BINLOG_TAILER_CAPTURE__INCLUDE": f"{database}.*",
            "BINLOG_TAILER_CAPTURE__TOPIC_PREFIX": self.topic_prefix,
            "BINLOG_TAILER_CHECKPOINT__PATH": str(self.checkpoint),
            "BINLOG_TAILER_CHECKPOINT__INTERVAL_SECONDS": "0.2",
            "BINLOG_TAILER_HTTP__PORT": "0",  # services run side by side
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def topic(self, db: str, table: str) -> str:
        return f"{self.topic_prefix}.{db}.{table}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"run{self.runs}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def http_port(self) -> int:
        """The port the running service's metrics and health endpoints are bound to."""
        found = re.search(r"metrics and health on http://127\.0\.0\.1:(\d+)", self.log())
        assert found, self.log()
        return int(found.group(1))

    def http_get(self, path: str) -> tuple[int, str]:
        """(status, body) of GET `path` from the running service's HTTP endpoints."""
        url = f"http://127.0.0.1:{self.http_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "binlog_tailer", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str) -> Tailer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        self.started_at = time.time()
        out = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binlog_tailer", "run", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        wait_until(
            lambda: "streaming from" in self.log() or self.proc.poll() is not None,
            30,
            "the tailer to start streaming",
        )
        assert self.proc.poll() is None, f"tailer exited at start:\n{self.log()}"
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM: drain and checkpoint. Returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def use_kafka_store(self, topic: str, name: str | None = None) -> Tailer:
        """Store the position in Kafka topic `topic`, keyed by `name` (default: the topic
        prefix, as the service's own default)."""
        self.env["BINLOG_TAILER_CHECKPOINT__STORE"] = "kafka"
        self.env["BINLOG_TAILER_CHECKPOINT__TOPIC"] = topic
        if name is not None:
            self.env["BINLOG_TAILER_NAME"] = name
        return self

    @property
    def name(self) -> str:
        return self.env.get("BINLOG_TAILER_NAME") or self.env["BINLOG_TAILER_CAPTURE__TOPIC_PREFIX"]

    def stored_checkpoint(self) -> dict | None:
        """The stored checkpoint document ({"position", "saved_at", "format"}), read from
        where the store keeps it without the service's code: the file, or the offsets topic."""
        if self.env.get("BINLOG_TAILER_CHECKPOINT__STORE") == "kafka":
            topic = self.env["BINLOG_TAILER_CHECKPOINT__TOPIC"]
            return last_offset_document(self.stack.kafka_bootstrap, topic, self.name)
        if not self.checkpoint.exists():
            return None
        return json.loads(self.checkpoint.read_text())

    def stored_position(self) -> dict | None:
        data = self.stored_checkpoint()
        return None if data is None else data["position"]

    def wait_checkpoint_at_least(self, file: str, pos: int, timeout: float = 30) -> None:
        """Wait until the running service has stored a checkpoint at or past file:pos."""

        def reached() -> bool:
            data = self.stored_checkpoint()
            if data is None:
                return False
            p = data["position"]
            if p["file"] is None:  # a start by GTID, stored before the first commit
                return False
            return data["saved_at"] >= self.started_at and (p["file"], p["pos"]) >= (file, pos)

        wait_until(reached, timeout, f"checkpoint to reach {file}:{pos}")

    def local_ports(self) -> set[int]:
        """Local ports of this service's connections to its source server (ss, iproute2)."""
        assert self.proc is not None
        out = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( dport = :{self.stack.mysql_port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {
            int(line.split()[2].rsplit(":", 1)[1])
            for line in out.splitlines()
            if f"pid={self.proc.pid}," in line
        }

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def master_position(stack: Stack) -> tuple[str, int, str]:
    return stack.position()


def now() -> float:
    return time.monotonic()
