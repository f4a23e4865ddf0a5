"""What `check` says of the topics it can know in advance: the data topics of the captured
tables that exist now, the dead-letter topic, the outbox's `allowed_topics`, the transaction
and heartbeat topics. An existing one with fewer partitions than `topics.partitions` fails;
missing ones are listed as created on first use (or, with `topics.create = false`, as left to
the broker)."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from binlog_tailer.filtering import SYSTEM_SCHEMAS, TableFilter
from binlog_tailer.publisher import connection_config
from binlog_tailer.server import asking
from binlog_tailer.settings import Settings

SHOWN = 10  # topic names listed in one line at most


@dataclass(frozen=True)
class TopicFinding:
    ok: bool
    what: str
    fix: str = ""


def captured_tables(conn: pymysql.Connection, settings: Settings) -> list[tuple[str, str]]:
    """(db, table) of the base tables that exist now and are captured as data tables (outbox
    tables route by their rows: their topics cannot be known in advance)."""
    include, exclude = settings.captured_tables()
    captured, outbox = TableFilter(include, exclude), TableFilter(settings.outbox.tables)
    with asking("its list of tables (information_schema.TABLES)"), conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES"
            " WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ("
            + ",".join(["%s"] * len(SYSTEM_SCHEMAS))
            + ")",
            SYSTEM_SCHEMAS,
        )
        rows = [(str(db), str(table)) for db, table in cur.fetchall()]
    return sorted((db, t) for db, t in rows if captured(db, t) and not outbox(db, t))


def known_topics(settings: Settings, tables: list[tuple[str, str]] | None) -> dict[str, str]:
    """topic -> what it is for, of the topics known in advance."""
    cap = settings.capture
    topics: dict[str, str] = {}
    for db, table in tables or []:
        topic = cap.topic_template.format(prefix=cap.topic_prefix, db=db, table=table)
        topics.setdefault(topic, f"table {db}.{table}")
    if settings.outbox.tables:
        for topic in settings.outbox.allowed_topics:
            topics.setdefault(topic, "outbox.allowed_topics")
    if settings.dead_letter.mode == "dead_letter":
        topics.setdefault(settings.dead_letter.topic, "dead letters")
    if settings.transaction_topic is not None:
        topics.setdefault(settings.transaction_topic, "transaction metadata")
    if settings.heartbeat_topic is not None:
        topics.setdefault(settings.heartbeat_topic, "heartbeats")
    return topics


def topic_findings(
    settings: Settings, tables: list[tuple[str, str]] | None, timeout: float = 10.0
) -> list[TopicFinding]:
    topics = known_topics(settings, tables)
    admin = AdminClient(connection_config(settings.kafka) | {"allow.auto.create.topics": False})
    try:
        existing = {
            name: len(meta.partitions)
            for name, meta in admin.list_topics(timeout=timeout).topics.items()
            if meta.error is None
        }
    except KafkaException as exc:
        return [TopicFinding(False, f"cannot list Kafka's topics: {exc.args[0]}")]
    want = settings.topics.partitions
    out: list[TopicFinding] = []
    enough, missing = [], []
    for topic in sorted(topics):
        have = existing.get(topic)
        if have is None:
            missing.append(topic)
        elif want > 0 and have < want:
            out.append(
                TopicFinding(
                    False,
                    f"Kafka topic {topic} ({topics[topic]}) has {have} partition(s), fewer than"
                    f" topics.partitions = {want}",
                    f"add partitions (kafka-topics.sh --alter --topic {topic} --partitions"
                    f" {want}; a key's later records then go to another partition than its"
                    " earlier ones), or set topics.partitions to what the topics have",
                )
            )
        else:
            enough.append(topic)
    if tables is None:
        out.append(TopicFinding(True, "topics of data tables: unknown (MySQL could not list them)"))
    if enough:
        out.append(TopicFinding(True, f"Kafka topics that exist: {_names(enough)}"))
    if missing and settings.topics.create:
        spec = f"{_partitions(want)}, replication factor {_rf(settings)}"
        out.append(
            TopicFinding(True, f"Kafka topics created on first use ({spec}): {_names(missing)}")
        )
    elif missing:
        out.append(
            TopicFinding(
                True,
                f"Kafka topics missing, left to the broker (topics.create = false):"
                f" {_names(missing)}",
                "create them, or make sure the broker auto-creates topics"
                " (auto.create.topics.enable): a record for a missing topic fails after"
                " kafka.delivery_timeout_ms and stops the service",
            )
        )
    return out


def _names(topics: list[str]) -> str:
    shown = ", ".join(topics[:SHOWN])
    return shown + (f" and {len(topics) - SHOWN} more" if len(topics) > SHOWN else "")


def _partitions(n: int) -> str:
    return "the broker's default partitions" if n < 0 else f"{n} partition(s)"


def _rf(settings: Settings) -> str:
    rf = settings.topics.replication_factor
    return "the broker's default" if rf < 0 else str(rf)
