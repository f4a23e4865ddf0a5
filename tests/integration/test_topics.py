"""Topics created by binlog-tailer, `check` on topics, transaction metadata, heartbeats."""

import contextlib
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from binlog_tailer.outbox import outbox_ddl, write_event
from tests.integration.stack import Stack, consume, unique_name
from tests.integration.tailer import Tailer, master_position


@pytest.fixture
def topics_to_delete(kafka_admin: AdminClient) -> Iterator[list[str]]:
    """Topics a test lets the service create: deleted afterwards."""
    names: list[str] = []
    yield names
    if names:
        for f in kafka_admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # never created
                f.result(timeout=30)


def _describe(admin: AdminClient, topic: str) -> tuple[int, dict[str, str]]:
    """(partitions, topic configs) of an existing topic."""
    meta = admin.list_topics(topic, timeout=30).topics[topic]
    assert meta.error is None, f"topic {topic}: {meta.error}"
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return len(meta.partitions), {k: str(e.value) for k, e in entries.items()}


def _run_to_end(stack: Stack, tailer: Tailer) -> None:
    file, pos, _ = master_position(stack)
    tailer.wait_checkpoint_at_least(file, pos, timeout=60)
    assert tailer.stop() == 0, tailer.log()


def test_missing_topics_are_created_with_the_configured_partitions_configs_and_compaction(
    stack: Stack, database: str, tailer: Tailer, kafka_admin: AdminClient, topics_to_delete
):
    prefix = tailer.topic_prefix
    dlq = f"{database}.dlq"
    tailer.env.update(
        {
            "BINLOG_TAILER_TOPICS__PARTITIONS": "3",
            "BINLOG_TAILER_TOPICS__CONFIG": json.dumps(
                {"retention.ms": 7200000, "max.message.bytes": 500000}
            ),
            "BINLOG_TAILER_TOPICS__COMPACT_DATA_TOPICS": "true",
            "BINLOG_TAILER_CAPTURE__TRANSACTION_METADATA": "true",
            "BINLOG_TAILER_HEARTBEAT__INTERVAL_SECONDS": "0.5",
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{prefix}.event.{{aggregate_type}}",
            "BINLOG_TAILER_DEAD_LETTER__TOPIC": dlq,
        }
    )
    keyed, unkeyed = tailer.topic(database, "users"), tailer.topic(database, "log")
    events, txn, beats = f"{prefix}.event.user", f"{prefix}.transaction", f"{prefix}.heartbeat"
    topics_to_delete += [keyed, unkeyed, events, txn, beats, dlq]
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40))")
        cur.execute("CREATE TABLE log (line VARCHAR(40))")  # no primary key: no key
        cur.execute(outbox_ddl().replace("payload        JSON", "payload        TEXT"))
    tailer.start()
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users VALUES (1, 'kim'), (2, 'lee')")
        cur.execute("INSERT INTO log VALUES ('a line')")
        write_event(cur, "user", 1, "UserCreated", {"id": 1})
        write_event(cur, "user", 2, "UserCreated", "not json")  # a dead letter
        conn.commit()
    # heartbeats come while idle: wait for the first one, its topic created by then
    got = consume(stack.kafka_bootstrap, [beats], expect=1, timeout=30)
    assert got, tailer.log()
    _run_to_end(stack, tailer)

    assert len(consume(stack.kafka_bootstrap, [keyed], expect=2)) == 2
    compact = {keyed}
    for topic in (keyed, unkeyed, events, txn, beats, dlq):
        partitions, config = _describe(kafka_admin, topic)
        assert partitions == 3, topic
        assert config["retention.ms"] == "7200000", topic
        assert config["max.message.bytes"] == "500000", topic
        want = "compact" if topic in compact else "delete"
        assert config["cleanup.policy"] == want, topic
    assert "created Kafka topic" in tailer.log()


def test_check_reports_a_topic_with_fewer_partitions_and_those_it_will_create(
    stack: Stack, database: str, tailer: Tailer, new_topic
):
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE small (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE fresh (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE wide (id INT PRIMARY KEY)")
    small = new_topic(name=tailer.topic(database, "small"), partitions=1)
    wide = new_topic(name=tailer.topic(database, "wide"), partitions=4)
    fresh = tailer.topic(database, "fresh")
    tailer.env["BINLOG_TAILER_TOPICS__PARTITIONS"] = "2"
    tailer.env["BINLOG_TAILER_DEAD_LETTER__TOPIC"] = f"{database}.dlq"
    tailer.env["BINLOG_TAILER_CAPTURE__TRANSACTION_METADATA"] = "true"
    done = tailer.cli("check")
    out = done.stdout
    assert done.returncode == 3, out + done.stderr
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fails == [
        f"FAIL  Kafka topic {small} (table {database}.small) has 1 partition(s), fewer than"
        " topics.partitions = 2"
    ], out
    created = next(line for line in out.splitlines() if "created on first use" in line)
    assert fresh in created and f"{tailer.topic_prefix}.transaction" in created
    assert small not in created and wide not in created
    assert wide in next(line for line in out.splitlines() if "topics that exist" in line)
    # with the partitions it has, the same topic passes
    tailer.env["BINLOG_TAILER_TOPICS__PARTITIONS"] = "1"
    assert tailer.cli("check").returncode == 0


def _txn_workload(stack: Stack, database: str) -> None:
    """Transactions over two tables and the outbox, rolled back ones among them."""
    with stack.admin(database) as conn, conn.cursor() as cur:
        conn.begin()  # T1: 3 records, 2 tables
        cur.execute("INSERT INTO a VALUES (1, 'x')")
        cur.execute("INSERT INTO b VALUES (1, 'x')")
        cur.execute("INSERT INTO a VALUES (2, 'x')")
        conn.commit()
        conn.begin()  # rolled back: nothing
        cur.execute("INSERT INTO a VALUES (3, 'x')")
        cur.execute("INSERT INTO b VALUES (3, 'x')")
        conn.rollback()
        conn.begin()  # T2: a, b, and an outbox event
        cur.execute("INSERT INTO b VALUES (2, 'y')")
        cur.execute("UPDATE a SET v = 'z' WHERE id = 1")
        write_event(cur, "thing", 1, "Changed", {"n": 1})
        cur.execute("INSERT INTO b VALUES (4, 'y')")
        conn.commit()
        conn.begin()  # only a table that is not captured: no BEGIN/END
        cur.execute("INSERT INTO other VALUES (1)")
        conn.commit()
        conn.begin()  # T3: rolled back to a savepoint: one record
        cur.execute("INSERT INTO a VALUES (10, 'x')")
        cur.execute("SAVEPOINT s1")
        cur.execute("INSERT INTO b VALUES (10, 'x')")
        cur.execute("ROLLBACK TO SAVEPOINT s1")
        conn.commit()
        conn.begin()  # T4: a primary key change (a delete and a create) and a delete
        cur.execute("UPDATE a SET id = 20 WHERE id = 2")
        cur.execute("DELETE FROM b WHERE id = 1")
        conn.commit()


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_transaction_metadata_begin_end_counts_and_orders(
    stack: Stack, database: str, tailer: Tailer, topics_to_delete, delivery: str
):
    prefix = tailer.topic_prefix
    txn_topic, events = f"{prefix}.transaction", f"{prefix}.event.thing"
    offsets = unique_name("offsets")
    topics_to_delete += [txn_topic, events, offsets, *(tailer.topic(database, t) for t in "ab")]
    tailer.env.update(
        {
            "BINLOG_TAILER_CAPTURE__INCLUDE": f"{database}.a,{database}.b",
            "BINLOG_TAILER_CAPTURE__TRANSACTION_METADATA": "true",
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{prefix}.event.{{aggregate_type}}",
            # three partitions: the order of each transaction's records is kept per key
            "BINLOG_TAILER_TOPICS__PARTITIONS": "3",
        }
    )
    if delivery == "exactly_once":
        tailer.use_kafka_store(offsets)
        tailer.env["BINLOG_TAILER_DELIVERY"] = "exactly_once"
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("CREATE TABLE b (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("CREATE TABLE other (id INT PRIMARY KEY)")
        cur.execute(outbox_ddl())
    tailer.start()
    _txn_workload(stack, database)
    _run_to_end(stack, tailer)

    bootstrap = stack.kafka_bootstrap
    marks = consume(bootstrap, [txn_topic], expect=8, settle=1.0)
    data = consume(bootstrap, [tailer.topic(database, "a"), tailer.topic(database, "b")],
                   expect=10, settle=1.0)  # fmt: skip
    outbox = consume(bootstrap, [events], expect=1, settle=1.0)
    assert len(marks) == 8 and len(data) == 10 and len(outbox) == 1, tailer.log()

    # per transaction id: BEGIN then END on one partition (keyed by the id)
    by_id: dict[str, list] = defaultdict(list)
    for m in marks:
        by_id[json.loads(m.key())["id"]].append(m)
    assert len(by_id) == 4
    ends = {}
    for tid, msgs in by_id.items():
        assert len({m.partition() for m in msgs}) == 1
        msgs.sort(key=lambda m: m.offset())
        statuses = [json.loads(m.value())["status"] for m in msgs]
        assert statuses == ["BEGIN", "END"], (tid, statuses)
        ends[tid] = json.loads(msgs[1].value())

    # every record names its transaction; orders are 1..n, per table 1..k; END counts them
    seen: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for m in data:
        v = json.loads(m.value())
        t = v["transaction"]
        assert t["id"] == v["source"]["gtid"]  # these servers write GTIDs
        seen[t["id"]].append((t["total_order"], f"{database}.{m.topic().rsplit('.', 1)[1]}",
                              t["data_collection_order"]))  # fmt: skip
    for m in outbox:
        h = {k: v.decode() for k, v in m.headers()}
        seen[h["transaction_id"]].append(
            (int(h["transaction_total_order"]), f"{database}.outbox",
             int(h["transaction_data_collection_order"]))
        )  # fmt: skip
    assert set(seen) == set(ends)
    counts = []
    for tid, records in seen.items():
        records.sort()
        assert [r[0] for r in records] == list(range(1, len(records) + 1)), tid
        per_table: dict[str, list[int]] = defaultdict(list)
        for _, table, order in records:
            per_table[table].append(order)
        assert all(o == list(range(1, len(o) + 1)) for o in per_table.values()), tid
        end = ends[tid]
        assert end["event_count"] == len(records)
        assert {d["data_collection"]: d["event_count"] for d in end["data_collections"]} == {
            t: len(o) for t, o in per_table.items()
        }
        counts.append(Counter(t.rsplit(".", 1)[1] for _, t, _ in records))
    # T1, T2, T3 (the savepoint's rows dropped), T4, in commit order
    assert sorted(counts, key=lambda c: sorted(c.items())) == sorted(
        [Counter(a=2, b=1), Counter(a=1, b=2, outbox=1), Counter(a=1), Counter(a=2, b=1)],
        key=lambda c: sorted(c.items()),
    )


def test_heartbeats_come_while_idle_and_not_while_records_flow(
    stack: Stack, database: str, tailer: Tailer, topics_to_delete
):
    beats = f"{tailer.topic_prefix}.heartbeat"
    topics_to_delete.append(beats)
    tailer.env["BINLOG_TAILER_HEARTBEAT__INTERVAL_SECONDS"] = "2"
    tailer.env["BINLOG_TAILER_NAME"] = name = unique_name("hb")
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    tailer.start()
    idle = consume(stack.kafka_bootstrap, [beats], expect=3, timeout=30)
    assert len(idle) >= 3, tailer.log()
    values = [json.loads(m.value()) for m in idle]
    assert all(json.loads(m.key()) == {"server": name} for m in idle)
    gaps = [b["ts_ms"] - a["ts_ms"] for a, b in itertools.pairwise(values)]
    assert all(gap >= 1900 for gap in gaps), gaps  # one per interval
    positions = [(v["position"]["file"], v["position"]["pos"]) for v in values]
    assert positions == sorted(positions) and positions[0][0] is not None

    # rows every 0.1 s for 5 s: no heartbeat while they flow (after the first interval)
    flow_start = time.time()
    with stack.admin(database) as conn, conn.cursor() as cur:
        for i in range(50):
            cur.execute("INSERT INTO t VALUES (%s)", (i,))
            conn.commit()
            time.sleep(0.1)  # the pace of the writes, not a synchronisation
    flow_end = time.time()
    after = consume(stack.kafka_bootstrap, [beats], expect=len(idle) + 2, timeout=30)
    stamps = [json.loads(m.value())["ts_ms"] / 1000 for m in after]
    during = [s for s in stamps if flow_start + 2.5 < s < flow_end - 0.1]
    assert during == [], (flow_start, flow_end, stamps)
    assert any(s > flow_end for s in stamps)  # and they come back when the rows stop
    _run_to_end(stack, tailer)
    assert len(consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=50)) == 50
