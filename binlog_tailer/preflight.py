"""`binlog-tailer check`: is the server set up for CDC, can we read it, is Kafka there?"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import pymysql

from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import BinlogTailerError, CheckpointError
from binlog_tailer.position import BinlogPosition, MariadbGtidPos, MysqlGtidSet
from binlog_tailer.publisher import KafkaPublisher
from binlog_tailer.server import binlog_files, connect, server_info, variables
from binlog_tailer.settings import Settings
from binlog_tailer.topic_check import captured_tables, topic_findings


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
    stored, store_finding = _store_check(store)
    s = settings.mysql
    conn: pymysql.Connection | None = None
    try:
        conn = connect(s)
    except BinlogTailerError as exc:
        out.append(
            Finding(
                False,
                f"connect to MySQL at {s.host}:{s.port} as {s.user!r}: {exc}",
                "check mysql.host, mysql.port, mysql.user, mysql.password"
                + (", mysql.ssl_mode, mysql.ssl_ca" if "TLS" in str(exc) else ""),
            )
        )
    tables: list[tuple[str, str]] | None = None
    if conn is not None and settings.outbox.source == "poll":
        with conn:
            out.append(_tls_finding(conn, settings))
            out += _relay_findings(conn, settings)
        out.append(_kafka_check(settings))
        return out
    if conn is not None:
        with conn:
            out.append(_tls_finding(conn, settings))
            try:
                out += _server_checks(conn, settings, stored)
                tables = captured_tables(conn, settings)
            except BinlogTailerError as exc:  # e.g. a privilege the user lacks
                out.append(Finding(False, str(exc), "see the privileges the README lists"))
    kafka = _kafka_check(settings)
    out.append(kafka)
    if kafka.ok:
        out += [Finding(f.ok, f.what, f.fix) for f in topic_findings(settings, tables)]
    out.append(store_finding)
    return out


def _relay_findings(conn: pymysql.Connection, settings: Settings) -> list[Finding]:
    """The polling relay (outbox.source = poll): each outbox table can be read and its
    published rows removed. No binlog privilege is needed."""
    from binlog_tailer.relay.checks import privilege_problem, table_problems
    from binlog_tailer.service import relay_tables

    out = []
    for table in relay_tables(settings):
        problems = table_problems(conn, table)
        if not problems:
            problem = privilege_problem(conn, table)
            problems = [problem] if problem else []
        out += [Finding(False, p) for p in problems]
        if not problems:
            out.append(Finding(True, f"relay: rows of {table.name} can be read and removed"))
    return out


def _tls_finding(conn: pymysql.Connection, settings: Settings) -> Finding:
    sock = conn._sock
    mode = settings.mysql.ssl_mode
    if isinstance(sock, ssl.SSLSocket):
        cipher = sock.cipher()
        return Finding(
            True,
            f"MySQL connection encrypted ({sock.version()}, {cipher[0] if cipher else '?'};"
            f" mysql.ssl_mode = {mode})",
        )
    return Finding(True, f"MySQL connection NOT encrypted (mysql.ssl_mode = {mode})")


def _store_check(store: CheckpointStore) -> tuple[BinlogPosition | None, Finding]:
    """The stored position (None when unreadable) and what `check` says of the store."""
    try:
        found = store.check()
        stored = store.load()
    except CheckpointError as exc:
        return None, Finding(False, f"checkpoint store: {exc}")
    return stored, Finding(True, f"checkpoint store {found}; stored position: {stored or 'none'}")


def version_finding(version: str, is_mariadb: bool) -> Finding:
    """Servers whose binlog cannot name columns (binlog_row_metadata) are not supported."""
    flavor = "MariaDB" if is_mariadb else "MySQL"
    try:
        major, minor, patch = (int(x) for x in version.split("-")[0].split(".")[:3])
    except ValueError:
        return Finding(True, f"connected to {flavor} {version} (version not recognised)")
    oldest = (10, 5, 0) if is_mariadb else (8, 0, 14)
    if (major, minor, patch) >= oldest:
        return Finding(True, f"connected to {flavor} {version}")
    return Finding(
        False,
        f"{flavor} {version} is not supported: its binlog cannot carry column names"
        f" (binlog_row_metadata=FULL needs {flavor} {'.'.join(map(str, oldest))}+)",
        "upgrade the server (MySQL 8.4 LTS or MariaDB 10.11 LTS and later are tested); names"
        " read from today's schema would be wrong for rows written before an ALTER TABLE",
    )


def stored_gtid_finding(stored: BinlogPosition | None, is_mariadb: bool) -> Finding | None:
    """A stored GTID position of the other server's dialect cannot be resumed from."""
    if stored is None or stored.gtid is None:
        return None
    want = MariadbGtidPos if is_mariadb else MysqlGtidSet
    if isinstance(stored.gtid, want):
        return None
    flavor = "MariaDB" if is_mariadb else "MySQL"
    return Finding(
        False,
        f"stored position {stored} is a GTID position of the other dialect, not {flavor}'s",
        "is mysql.host the server this checkpoint came from? Otherwise store a position of"
        " this server: 'binlog-tailer offsets set FILE:OFFSET' or its GTID set",
    )


def _server_checks(
    conn: pymysql.Connection, settings: Settings, stored: BinlogPosition | None
) -> list[Finding]:
    info = server_info(conn)
    out = server_setting_findings(conn, settings)
    out.append(_grants(conn))
    dialect = stored_gtid_finding(stored, info.is_mariadb)
    if dialect is not None:
        out.append(dialect)
    if stored is not None and stored.file is not None:
        try:
            files = binlog_files(conn)
        except BinlogTailerError as exc:
            out.append(Finding(False, f"cannot look for the stored position: {exc}"))
            return out
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


def server_setting_findings(conn: pymysql.Connection, settings: Settings) -> list[Finding]:
    """The server's version and global binlog settings: what `check` reports and what `run`
    refuses to start without (a session can still override some; the stream refuses those)."""
    info = server_info(conn)
    out = [version_finding(info.version, info.is_mariadb)]
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
            ok = have.upper() == want
            out.append(Finding(ok, f"{name} = {have} (need {want})", "" if ok else fix))
    server_id = int(vars_.get("server_id") or 0)
    if server_id == 0:
        out.append(Finding(False, "server_id is 0", "[mysqld] server_id=1 (any non-zero id)"))
    if settings.mysql.server_id == server_id:
        out.append(
            Finding(
                False,
                f"mysql.server_id {settings.mysql.server_id} equals the server's own id",
                "set mysql.server_id to an id no other server or replica uses",
            )
        )
    if (vars_.get("binlog_transaction_compression") or "OFF").upper() == "ON":
        out.append(Finding(True, "binlog_transaction_compression = ON (decoded: zstd)"))
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
        refused = "TLS" in str(exc) or "SASL" in str(exc)  # the line names the settings
        return Finding(
            False, str(exc), "" if refused else "start the broker or fix kafka.bootstrap_servers"
        )
    if settings.delivery == "exactly_once":
        return _transactions_check(settings)
    return Finding(True, f"Kafka reachable at {settings.kafka.bootstrap_servers}")


def _transactions_check(settings: Settings) -> Finding:
    """Kafka transactions work, tried under a transactional.id of their own: the service's
    own would fence a running instance."""
    probe = f"{settings.transactional_id}.check"
    try:
        publisher = KafkaPublisher(
            settings.kafka, on_ack=lambda seq: None, transactional_id=probe, name=probe
        )
        publisher.init_transactions(settings.checkpoint.timeout_seconds)
    except BinlogTailerError as exc:
        return Finding(
            False,
            f"Kafka transactions (delivery = exactly_once): {exc}",
            "exactly-once needs a Kafka cluster with transactions (its transaction state log"
            f" replicated as configured) and Write, Describe on transactional id"
            f" {settings.transactional_id}",
        )
    return Finding(
        True,
        f"Kafka reachable at {settings.kafka.bootstrap_servers}, transactions available"
        f" (transactional.id {settings.transactional_id})",
    )
