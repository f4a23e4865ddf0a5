"""App-side helper for the transactional outbox: the table, and writing an event in the
caller's own transaction.

    with conn.cursor() as cur:                      # PyMySQL, mysql-connector, mysqlclient
        cur.execute("UPDATE articles SET likes = likes + 1 WHERE id = %s", (42,))
        write_event(cur, "article", 42, "ArticleLiked", {"article_id": 42})
    conn.commit()                                   # both or neither

binlog-tailer then publishes the event once the transaction is committed; a rolled-back
transaction publishes nothing. Only DB-API cursors with the ``format`` paramstyle (``%s``) are
supported: that is what the three common MySQL drivers use.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from importlib import resources
from typing import Any, Protocol

try:  # Python 3.14+
    from uuid import uuid7 as _uuid7  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the Python version
    from uuid6 import uuid7 as _uuid7

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,63}$")


class Cursor(Protocol):
    def execute(self, query: str, args: Any = ..., /) -> Any: ...


# What the polling relay (outbox.source = poll) needs besides: the order rows are published
# in, assigned by the server at insert (never by clients, whose clocks and UUIDs need not
# agree), and the mark of a row sent (relay.after_publish = mark).
RELAY_COLUMNS = (
    "  seq            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,\n"
    "  sent_at        DATETIME(6) NULL,\n"
)
RELAY_KEYS = ",\n  UNIQUE KEY ux_outbox_seq (seq),\n  KEY ix_outbox_unsent (sent_at, seq)"


def outbox_ddl(table: str = "outbox", *, relay: bool = False, engine: str = "InnoDB") -> str:
    """CREATE TABLE statement of an outbox table named `table` (see outbox.sql).

    `relay`: with the columns the polling relay needs (`seq`, `sent_at`). `engine="BLACKHOLE"`
    (MySQL; the binlog path only): rows reach the binlog and are never stored."""
    if not re.match(r"^[A-Za-z]+$", engine):
        raise ValueError(f"not a storage engine name: {engine!r}")
    sql = resources.files("binlog_tailer").joinpath("outbox.sql").read_text(encoding="utf-8")
    statement = sql[sql.index("CREATE TABLE") :].strip().rstrip(";")
    if relay:
        head, _, rest = statement.partition("  PRIMARY KEY")
        statement = f"{head}{RELAY_COLUMNS}  PRIMARY KEY{rest}"
        keys_end = statement.index("\n) ENGINE=")
        statement = statement[:keys_end] + RELAY_KEYS + statement[keys_end:]
    statement = statement.replace("ENGINE=InnoDB", f"ENGINE={engine}")
    return statement.replace(
        "CREATE TABLE IF NOT EXISTS outbox", f"CREATE TABLE IF NOT EXISTS {_quote(table)}"
    )


def new_event_id() -> str:
    """A time-ordered, unique event id (UUIDv7)."""
    return str(_uuid7())


def write_event(
    cursor: Cursor,
    aggregate_type: str,
    aggregate_id: object,
    event_type: str,
    payload: Any,
    *,
    event_id: str | uuid.UUID | None = None,
    table: str = "outbox",
    created_at: dt.datetime | None = None,
    delete_after: bool = False,
) -> str:
    """Insert one event into the outbox inside the caller's open transaction; returns its id.

    `payload` is JSON text (str or bytes, passed as is) or any JSON-serialisable value.
    With `delete_after`, the row is deleted again in the same transaction: the table stays
    empty, and binlog-tailer still publishes the event from the binlog.
    Nothing is committed here: the caller's commit decides.
    """
    if not aggregate_type or aggregate_id is None or not event_type:
        raise ValueError("aggregate_type, aggregate_id and event_type are required")
    eid = str(event_id) if event_id is not None else new_event_id()
    if isinstance(payload, bytes):
        body: str | bytes = payload
    elif isinstance(payload, str):
        body = payload
    else:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    name = _quote(table)
    if created_at is None:
        cursor.execute(
            f"INSERT INTO {name} (id, aggregate_type, aggregate_id, event_type, payload)"
            " VALUES (%s, %s, %s, %s, %s)",
            (eid, aggregate_type, str(aggregate_id), event_type, body),
        )
    else:
        cursor.execute(
            f"INSERT INTO {name} (id, aggregate_type, aggregate_id, event_type, payload,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (eid, aggregate_type, str(aggregate_id), event_type, body, created_at),
        )
    if delete_after:
        cursor.execute(f"DELETE FROM {name} WHERE id = %s", (eid,))
    return eid


def _quote(table: str) -> str:
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(f"not a plain table name: {table!r}")
    return ".".join(f"`{p}`" for p in parts)
