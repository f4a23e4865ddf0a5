"""The README's main job: binlog-tailer on the local stack, with events you can watch arrive.

Creates a fresh database with a table, starts `binlog-tailer run` capturing it, writes rows
(insert, update, delete, a rolled-back transaction), prints each Kafka record as it arrives,
then stops the service with SIGTERM (drain + checkpoint) and shows the stored position.

Connection settings come from the environment written by scripts/dev-up (.stack/stack.env).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pymysql
from confluent_kafka import Consumer, KafkaError

from binlog_tailer.server import latest_position


def main() -> int:
    db = f"demo_{uuid.uuid4().hex[:8]}"
    prefix = "demo"
    admin = pymysql.connect(
        host=os.environ["BINLOG_TAILER_MYSQL__HOST"],
        port=int(os.environ["BINLOG_TAILER_MYSQL__PORT"]),
        user=os.environ["BT_MYSQL_ADMIN_USER"],
        password=os.environ["BT_MYSQL_ADMIN_PASSWORD"],
        autocommit=True,
        charset="utf8mb4",
    )
    cur = admin.cursor()
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(
        f"CREATE TABLE {db}.articles (id INT PRIMARY KEY, title VARCHAR(200),"
        " likes INT NOT NULL DEFAULT 0, price DECIMAL(8,2), created_at DATETIME(3))"
    )
    workdir = tempfile.mkdtemp(prefix="binlog-tailer-demo-")
    env = {
        **os.environ,
        "BINLOG_TAILER_CAPTURE__INCLUDE": f"{db}.*",
        "BINLOG_TAILER_CAPTURE__TOPIC_PREFIX": prefix,
        "BINLOG_TAILER_CHECKPOINT__PATH": f"{workdir}/offsets.json",
        # /metrics on any free port (logged), so that runs side by side do not collide
        "BINLOG_TAILER_HTTP__PORT": os.environ.get("BINLOG_TAILER_HTTP__PORT", "0"),
    }
    # Start from the current end of the binlog, read before writing: no write can slip past.
    end = latest_position(admin)
    file, pos = end.file, end.pos
    print(f"== starting binlog-tailer at {file}:{pos} (capturing {db}.*)", flush=True)
    service = subprocess.Popen(
        [sys.executable, "-m", "binlog_tailer", "run", "--from", f"{file}:{pos}"], env=env
    )
    topic = f"{prefix}.{db}.articles"
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS"],
            "group.id": f"demo-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    try:
        print("== writing rows", flush=True)
        cur.execute(
            f"INSERT INTO {db}.articles VALUES (1, '트랜잭셔널 메시징', 0, 9.90, NOW(3)),"
            " (2, 'CDC with the binlog', 0, 0.00, NOW(3))"
        )
        cur.execute(f"UPDATE {db}.articles SET likes = likes + 1 WHERE id = 1")
        admin.begin()
        cur.execute(f"INSERT INTO {db}.articles VALUES (3, 'never committed', 0, NULL, NULL)")
        admin.rollback()
        cur.execute(f"DELETE FROM {db}.articles WHERE id = 2")
        expected = 4  # 2 inserts, 1 update, 1 delete; the rolled-back insert never appears
        print(f"== reading {topic}", flush=True)
        seen = 0
        deadline = time.monotonic() + 60
        while seen < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise SystemExit(f"consumer error: {msg.error()}")
            seen += 1
            value = json.loads(msg.value())
            print(f"key={msg.key().decode()} op={value['op']}")
            print(f"  before={json.dumps(value['before'], ensure_ascii=False)}")
            print(f"  after ={json.dumps(value['after'], ensure_ascii=False)}", flush=True)
        if seen < expected:
            print(f"only {seen} of {expected} events arrived", file=sys.stderr)
            return 1
        print(f"== {seen} events arrived; stopping the service (SIGTERM)", flush=True)
    finally:
        consumer.close()
        service.send_signal(signal.SIGTERM)
        code = service.wait(60)
        cur.execute(f"DROP DATABASE {db}")
    with open(f"{workdir}/offsets.json") as f:
        print(f"== stored position: {json.load(f)['position']} (service exit code {code})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
