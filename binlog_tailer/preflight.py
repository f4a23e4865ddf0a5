"""`binlog-tailer check`: is the server set up for CDC, can we read it, is Kafka there?"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import BinlogTailerError
from binlog_tailer.publisher import KafkaPublisher
from binlog_tailer.server import binlog_files, connect, server_info, variables
from binlog_tailer.settings import Settings


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}" + (
            f"\n      fix: {self.fix}" if self.fix else ""
        )


EXPECTED = {
    "log_bin": ("ON", "enable the binary log: [mysqld] log_bin=mysql-bin (restart needed)"),
    "binlog_format": ("ROW", "[mysqld] binlog_format=ROW"),
    "binlog_row_image": ("FULL", "[mysqld] binlog_row_image=FULL"),
    "binlog_row_metadata": (
        "FULL",
        "[mysqld] binlog_row_metadata=FULL (MySQL 8.0.14+ / MariaDB 10.5+): column names come"
        " from the binlog, not from today's schema",
    ),
}


def run_checks(settings: Settings, store: CheckpointStore) -> list[Finding]:
    out: list[Finding] = []
    s = settings.mysql
    try:
        conn = connect(s)
    except BinlogTailerError as exc:
        out.append(
            Finding(
                False,
                f"connect to MySQL at {s.host}:{s.port} as {s.user!r}: {exc}",
                "check mysql.host, mysql.port, mysql.user, mysql.password",
            )
        )
    else:
        with conn:
            out += _server_checks(conn, settings, store)
    out.append(_kafka_check(settings))
    return out


def _server_checks(
    conn: pymysql.Connection, settings: Settings, store: CheckpointStore
) -> list[Finding]:
    out: list[Finding] = []
    info = server_info(conn)
    out.append(
        Finding(True, f"connected to {'MariaDB' if info.is_mariadb else 'MySQL'} {info.version}")
    )
    vars_ = variables(
        conn,
        *EXPECTED,
        "server_id",
        "binlog_transaction_compression",
        "log_bin_compress",
        "binlog_row_value_options",
    )
    for name, (want, fix) in EXPECTED.items():
        have = vars_.get(name)
        if have is None:
            out.append(Finding(False, f"{name} is not supported by this server", fix))
        else:
            out.append(
                Finding(
                    have.upper() == want,
                    f"{name} = {have} (need {want})",
                    "" if have.upper() == want else fix,
                )
            )
    if vars_.get("server_id") in (None, "0"):
        out.append(Finding(False, "server_id is 0", "[mysqld] server_id=1 (any non-zero id)"))
    if settings.mysql.server_id == int(vars_.get("server_id") or 0):
        out.append(
            Finding(
                False,
                f"mysql.server_id {settings.mysql.server_id} equals the server's own id",
                "set mysql.server_id to an id no other server or replica uses",
            )
        )
    compression = vars_.get("binlog_transaction_compression")
    if compression is not None:
        ok = compression.upper() == "OFF"
        out.append(
            Finding(
                ok,
                f"binlog_transaction_compression = {compression} (need OFF)",
                ""
                if ok
                else "[mysqld] binlog_transaction_compression=OFF: compressed "
                "transaction payloads cannot be decoded",
            )
        )
    if (vars_.get("log_bin_compress") or "OFF").upper() == "ON":
        out.append(
            Finding(
                False,
                "log_bin_compress = ON (need OFF)",
                "[mysqld] log_bin_compress=OFF: compressed events cannot be decoded",
            )
        )
    if "PARTIAL_JSON" in (vars_.get("binlog_row_value_options") or "").upper():
        out.append(
            Finding(
                False,
                "binlog_row_value_options = PARTIAL_JSON (need empty)",
                "[mysqld] binlog_row_value_options='': partial JSON updates carry"
                " diffs, not values",
            )
        )
    out.append(_grants(conn))
    stored = store.load()
    if stored is not None and stored.file is not None:
        files = binlog_files(conn)
        ok = stored.file in files
        out.append(
            Finding(
                ok,
                f"stored position {stored} is {'on' if ok else 'NOT on'} the server",
                ""
                if ok
                else "the binlog was purged past the checkpoint: replay with "
                "'binlog-tailer run --from earliest' (and accept the gap) or re-snapshot",
            )
        )
    return out


def _grants(conn: pymysql.Connection) -> Finding:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = " ".join(r[0] for r in cur.fetchall()).upper()
    if "ALL PRIVILEGES ON *.*" in grants:
        return Finding(True, "privileges: ALL (more than needed)")
    missing = []
    if "REPLICATION SLAVE" not in grants and "REPLICATION REPLICA" not in grants:
        missing.append("REPLICATION SLAVE")
    if not any(g in grants for g in ("REPLICATION CLIENT", "BINLOG MONITOR")):
        missing.append("REPLICATION CLIENT")
    if "SELECT" not in grants:
        missing.append("SELECT")
    if missing:
        return Finding(
            False,
            f"privileges: missing {', '.join(missing)}",
            f"GRANT {', '.join(missing)} ON *.* TO <the CDC user>",
        )
    return Finding(True, "privileges: REPLICATION SLAVE, REPLICATION CLIENT, SELECT")


def _kafka_check(settings: Settings) -> Finding:
    try:
        KafkaPublisher(settings.kafka, on_ack=lambda seq: None).check_reachable()
    except BinlogTailerError as exc:
        return Finding(False, str(exc), "start the broker or fix kafka.bootstrap_servers")
    return Finding(True, f"Kafka reachable at {settings.kafka.bootstrap_servers}")
