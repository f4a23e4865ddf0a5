"""Outbox mode against the real stack: routing, keys, headers, order, bad rows."""

import base64
import json
import os
import random
import threading

import mysql.connector
import pytest

from binlog_tailer.outbox import outbox_ddl, write_event
from tests.integration.stack import Stack, consume, topic_sizes
from tests.integration.tailer import Tailer, master_position


def _outbox_tailer(tailer: Tailer, database: str, **env: str) -> Tailer:
    tailer.env.pop("BINLOG_TAILER_CAPTURE__INCLUDE")  # outbox tables only, unless env says
    tailer.env.update(
        {
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{database}.event.{{aggregate_type}}",
            "BINLOG_TAILER_DEAD_LETTER__TOPIC": f"{database}.dlq",
            **env,
        }
    )
    return tailer


def _run_to_end(stack: Stack, tailer: Tailer) -> None:
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=60)
    assert tailer.stop() == 0, tailer.log()


def _headers(msg) -> dict[str, bytes]:
    return dict(msg.headers() or [])


def test_committed_events_routed_keyed_with_headers(stack: Stack, database: str, tailer: Tailer):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
        cur.execute("CREATE TABLE articles (id INT PRIMARY KEY, likes INT NOT NULL)")
    _outbox_tailer(tailer, database).start()

    ids = {}
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()  # the business change and its event in one transaction
        cur.execute("INSERT INTO articles VALUES (1, 0)")
        ids["created"] = write_event(cur, "article", 1, "ArticleCreated", {"title": "한글 🎉"})
        conn.commit()
        conn.begin()
        cur.execute("UPDATE articles SET likes = likes + 1 WHERE id = 1")
        ids["rolled_back"] = write_event(cur, "article", 1, "ArticleLiked", {"n": 1})
        conn.rollback()
        conn.begin()
        ids["deleted"] = write_event(cur, "article", 1, "ArticleLiked", {"n": 2}, delete_after=True)
        ids["user"] = write_event(cur, "user", "u-7", "UserFollowed", '{"raw": "text"}')
        conn.commit()
        cur.execute("SELECT COUNT(*) FROM outbox")
        assert cur.fetchone() == (2,)  # the delete_after row is gone from the table
    # mysql-connector's cursor works the same way
    other = mysql.connector.connect(
        host="127.0.0.1",
        port=stack.mysql_port,
        user=stack.admin_user,
        password=stack.admin_password,
        database=database,
    )
    try:
        cur = other.cursor()
        ids["connector"] = write_event(cur, "article", 1, "ArticleViewed", {"by": "connector"})
        other.commit()
    finally:
        other.close()
    _run_to_end(stack, tailer)

    article_topic, user_topic = f"{database}.event.article", f"{database}.event.user"
    articles = consume(stack.kafka_bootstrap, [article_topic], expect=3)
    users = consume(stack.kafka_bootstrap, [user_topic], expect=1)
    assert topic_sizes(stack.kafka_bootstrap, [article_topic, user_topic]) == {
        article_topic: 3,
        user_topic: 1,
    }
    assert [_headers(m)["event_id"].decode() for m in articles] == [
        ids["created"],
        ids["deleted"],
        ids["connector"],
    ]
    assert {m.key() for m in articles} == {b"1"}
    assert [json.loads(m.value()) for m in articles] == [
        {"title": "한글 🎉"},
        {"n": 2},
        {"by": "connector"},
    ]
    h = _headers(articles[0])
    assert h["event_type"] == b"ArticleCreated" and h["aggregate_type"] == b"article"
    assert h["binlog_position"].decode().startswith("binlog.")
    assert users[0].key() == b"u-7"
    assert users[0].value() == b'{"raw": "text"}'  # the payload as stored, unchanged
    # the data table is not captured: only outbox tables were configured
    assert topic_sizes(stack.kafka_bootstrap, [f"cdc_{database}.{database}.articles"]) == {
        f"cdc_{database}.{database}.articles": 0
    }


def test_per_aggregate_order_follows_commit_order_under_concurrency(
    stack: Stack, database: str, tailer: Tailer, kafka_admin
):
    from confluent_kafka.admin import NewTopic

    topic = f"{database}.event.account"
    kafka_admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
        cur.execute("CREATE TABLE accounts (id INT PRIMARY KEY, version INT NOT NULL)")
        cur.executemany("INSERT INTO accounts VALUES (%s, 0)", [(i,) for i in range(12)])
    _outbox_tailer(tailer, database).start()

    errors = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with stack.admin(database) as conn, conn.cursor() as cur:
                for _ in range(150):
                    account = rng.randrange(12)
                    conn.begin()
                    # the row lock orders transactions on one account: version = commit order
                    cur.execute(
                        "UPDATE accounts SET version = version + 1 WHERE id = %s", (account,)
                    )
                    cur.execute("SELECT version FROM accounts WHERE id = %s", (account,))
                    (version,) = cur.fetchone()
                    write_event(cur, "account", account, "Changed", {"version": version})
                    conn.commit()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    _run_to_end(stack, tailer)

    msgs = consume(stack.kafka_bootstrap, [topic], expect=900, timeout=60)
    assert len(msgs) == 900
    per_key: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for m in msgs:
        per_key.setdefault(m.key(), []).append(json.loads(m.value())["version"])
        partitions.setdefault(m.key(), set()).add(m.partition())
    for key, versions in per_key.items():
        assert versions == list(range(1, len(versions) + 1)), key
    assert all(len(p) == 1 for p in partitions.values())  # one aggregate, one partition
    assert len({p for ps in partitions.values() for p in ps}) > 1  # spread over partitions


LOOSE_OUTBOX = """
CREATE TABLE outbox (
  id CHAR(36) NOT NULL PRIMARY KEY, aggregate_type VARCHAR(255) NOT NULL,
  aggregate_id VARCHAR(255) NULL, event_type VARCHAR(255) NOT NULL,
  payload LONGTEXT NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)"""


def _write_bad_and_good(stack: Stack, database: str) -> dict[str, str]:
    with stack.admin(database) as conn, conn.cursor() as cur:
        ids = {"bad_json": write_event(cur, "order", 1, "Placed", "{not json")}
        cur.execute(
            "INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)"
            " VALUES ('no-aggregate', 'order', NULL, 'Placed', '{}')"
        )
        ids["no_aggregate"] = "no-aggregate"
        # incompressible: lz4 would shrink a repeated character below the broker's limit
        big = json.dumps({"blob": base64.b64encode(os.urandom(1_600_000)).decode()})
        ids["too_large"] = write_event(cur, "order", 2, "Placed", big)
        ids["good"] = write_event(cur, "order", 3, "Placed", {"ok": True})
    return ids


@pytest.mark.parametrize("max_message_bytes", [None, "5000000"])
def test_bad_rows_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    stack: Stack, database: str, tailer: Tailer, max_message_bytes
):
    # None: the producer refuses the 2 MB record itself; 5 MB: the broker (1 MB limit) does
    env = {"BINLOG_TAILER_KAFKA__PRODUCER": json.dumps({"message.max.bytes": max_message_bytes})}
    _outbox_tailer(tailer, database, **(env if max_message_bytes else {}))
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(LOOSE_OUTBOX)
    tailer.start()
    ids = _write_bad_and_good(stack, database)
    _run_to_end(stack, tailer)

    good = consume(stack.kafka_bootstrap, [f"{database}.event.order"], expect=1)
    assert [_headers(m)["event_id"].decode() for m in good] == [ids["good"]]
    dead = consume(stack.kafka_bootstrap, [f"{database}.dlq"], expect=3)
    by_reason = {_headers(m)["dlq.reason"].decode(): m for m in dead}
    assert set(by_reason) == {"invalid_json", "missing_value", "rejected"}

    bad_json = by_reason["invalid_json"]
    assert bad_json.value() == b"{not json"  # the original bytes
    h = _headers(bad_json)
    assert h["event_id"].decode() == ids["bad_json"]
    assert h["dlq.table"].decode() == "outbox" and h["dlq.db"].decode() == database
    assert h["dlq.position"].decode().startswith("binlog.")
    assert b"not JSON" in h["dlq.error"]

    assert b"aggregate_id" in _headers(by_reason["missing_value"])["dlq.error"]

    large = _headers(by_reason["rejected"])
    assert large["event_id"].decode() == ids["too_large"]
    assert large["dlq.truncated"] == b"true"
    assert int(large["dlq.original_size"]) > 2_000_000
    assert b"MSG_SIZE_TOO_LARGE" in large["dlq.error"] or b"too large" in large["dlq.error"]
    assert large["dlq.original_topic"].decode() == f"{database}.event.order"


def test_stop_mode_exits_non_zero_without_advancing_past_the_bad_row(
    stack: Stack, database: str, tailer: Tailer
):
    _outbox_tailer(tailer, database, BINLOG_TAILER_DEAD_LETTER__MODE="stop")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(LOOSE_OUTBOX)
    with stack.admin(database) as conn, conn.cursor() as cur:
        good_before = write_event(cur, "order", 9, "Placed", {"first": True})
    start_file, start_pos, _ = master_position(stack)  # after good_before, before the bad row
    with stack.admin(database) as conn, conn.cursor() as cur:
        write_event(cur, "order", 1, "Placed", "{not json")
        write_event(cur, "order", 3, "Placed", {"ok": True})
    r = tailer.cli("run", "--from", f"{start_file}:{start_pos}")
    assert r.returncode == 1
    assert "is not JSON" in r.stderr and "Traceback" not in r.stderr
    end_file, end_pos, _ = master_position(stack)  # after the bad row (and maybe others')
    stored = json.loads(tailer.cli("offsets", "show").stdout)["position"]
    assert stored is None or (stored["file"], stored["pos"]) < (end_file, end_pos)
    # nothing after the bad row was checkpointed: a restart meets the bad row again
    again = tailer.cli("run", *([] if stored else ["--from", f"{start_file}:{start_pos}"]))
    assert again.returncode == 1 and "is not JSON" in again.stderr, again.stderr
    assert good_before  # written before the start position: not part of this run
    assert topic_sizes(stack.kafka_bootstrap, [f"{database}.event.order"]) == {
        f"{database}.event.order": 0
    }


def test_data_table_and_outbox_in_one_service(stack: Stack, database: str, tailer: Tailer):
    _outbox_tailer(tailer, database, BINLOG_TAILER_CAPTURE__INCLUDE=f"{database}.articles")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute(outbox_ddl())
        cur.execute("CREATE TABLE articles (id INT PRIMARY KEY, title VARCHAR(50))")
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()
        cur.execute("INSERT INTO articles VALUES (7, 'hello')")
        event_id = write_event(cur, "article", 7, "ArticleCreated", {"id": 7})
        conn.commit()
    _run_to_end(stack, tailer)
    (data,) = consume(stack.kafka_bootstrap, [tailer.topic(database, "articles")], expect=1)
    (event,) = consume(stack.kafka_bootstrap, [f"{database}.event.article"], expect=1)
    assert json.loads(data.value())["after"] == {"id": 7, "title": "hello"}
    assert json.loads(data.key()) == {"id": 7}
    assert json.loads(event.value()) == {"id": 7}
    assert _headers(event)["event_id"].decode() == event_id
    # the outbox table itself is not also published as a data table
    outbox_as_data = tailer.topic(database, "outbox")
    assert topic_sizes(stack.kafka_bootstrap, [outbox_as_data]) == {outbox_as_data: 0}
