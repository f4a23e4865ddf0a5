"""Whether an outbox table can be relayed: it exists, stores rows, has the columns needed."""

from __future__ import annotations

import pymysql

from binlog_tailer.relay.table import RelayTable, quoted
from binlog_tailer.server import PRIVILEGE_DENIED


def table_problems(conn: pymysql.Connection, table: RelayTable) -> list[str]:
    """What keeps the relay from reading `table` (empty: nothing), each with its remedy."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = %s",
            (table.db, table.table),
        )
        row = cur.fetchone()
        if row is None:
            return [
                f"outbox table {table.name} does not exist (or the relay's user may not see"
                " it): create it with binlog_tailer.outbox.outbox_ddl(table, relay=True), or"
                " grant the user SELECT on it"
            ]
        if str(row[0]).upper() == "BLACKHOLE":
            return [
                f"outbox table {table.name} is a BLACKHOLE table: it stores no rows for a relay"
                " to read; publish it from the binlog (outbox.source = binlog)"
            ]
        cur.execute(
            "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = %s",
            (table.db, table.table),
        )
        extra = {str(name).lower(): str(x or "").lower() for name, x in cur.fetchall()}
    problems = []
    missing = [c for c in table.columns() if c.lower() not in extra]
    seq = table.sequence_column
    if seq.lower() in extra and "auto_increment" not in extra[seq.lower()]:
        problems.append(
            f"column {seq} of {table.name} is not AUTO_INCREMENT: the relay publishes in the"
            " order the server assigns at insert (relay.sequence_column)"
        )
    if seq in missing:
        missing.remove(seq)
        problems.append(
            f"outbox table {table.name} has no sequence column {seq} (relay.sequence_column):"
            f" ALTER TABLE {quoted(table.db)}.{quoted(table.table)} ADD COLUMN {quoted(seq)}"
            f" BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY ({quoted(seq)})"
        )
    sent = table.sent_column
    if sent is not None and sent.lower() not in extra:
        problems.append(
            f"outbox table {table.name} has no column {sent} to mark rows sent"
            f" (relay.after_publish = mark, relay.sent_column): ALTER TABLE"
            f" {quoted(table.db)}.{quoted(table.table)} ADD COLUMN {quoted(sent)} DATETIME(6)"
            f" NULL, ADD KEY ({quoted(sent)}, {quoted(seq)})"
        )
    if missing:
        problems.append(
            f"outbox table {table.name} has no column(s) {', '.join(missing)} (it has"
            f" {', '.join(sorted(extra))}); set the outbox.*_column settings to its column names"
        )
    return problems


def privilege_problem(conn: pymysql.Connection, table: RelayTable) -> str | None:
    """Whether the user may remove published rows: the removing statement, on no row (it
    changes nothing and writes nothing to the binlog)."""
    t = f"{quoted(table.db)}.{quoted(table.table)}"
    if table.sent_column:
        sent = quoted(table.sent_column)
        sql, grant = f"UPDATE {t} SET {sent} = {sent} WHERE 1 = 0", "SELECT, UPDATE"
    else:
        sql, grant = f"DELETE FROM {t} WHERE 1 = 0", "SELECT, DELETE"
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    except pymysql.err.MySQLError as exc:
        if not exc.args or exc.args[0] not in PRIVILEGE_DENIED:
            raise
        return (
            f"the relay cannot remove published rows of {table.name} ({exc.args[-1]}):"
            f" GRANT {grant} ON {t} TO <the relay's user>"
        )
    return None
