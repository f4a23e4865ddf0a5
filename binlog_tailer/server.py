"""Plain SQL questions to the source server: flavor, positions, binlog files, variables."""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pymysql

from binlog_tailer.errors import ConfigError, SourceError, SourceUnavailable
from binlog_tailer.position import BinlogPosition, MariadbGtidPos, MysqlGtidSet
from binlog_tailer.settings import MysqlSettings

ACCESS_DENIED = 1045
SSL_CONNECTION_ERROR = 2026  # PyMySQL: TLS required, the server does not offer it
# unreachable, or busy for now: too many connections (1040), shutting down (1053), connection
# killed (MariaDB 1927), socket (2002), server gone or lost (2003, 2005, 2006, 2013)
CANNOT_CONNECT = (1040, 1053, 1927, 2002, 2003, 2005, 2006, 2013)
# denied: a privilege (1227), a table (1142), a database (1044), a routine (1370)
PRIVILEGE_DENIED = (1227, 1142, 1044, 1370)


def connection_kwargs(s: MysqlSettings) -> dict[str, object]:
    """PyMySQL's arguments for every connection to the server, the replication one included."""
    return {
        "host": s.host,
        "port": s.port,
        "user": s.user,
        "password": s.password.get_secret_value(),
        "connect_timeout": s.connect_timeout_seconds,
        "charset": "utf8mb4",
        **tls_kwargs(s),
    }


def tls_kwargs(s: MysqlSettings) -> dict[str, object]:
    """mysql.ssl_mode as PyMySQL's arguments. Without any, PyMySQL (1.2+) uses TLS when the
    server offers it (preferred); with a context it refuses a server that does not."""
    if s.ssl_mode == "disabled":
        return {"ssl_disabled": True}
    if s.ssl_mode == "preferred":
        return {}
    verify = s.ssl_mode.startswith("verify_")
    ctx = ssl.create_default_context(cafile=str(s.ssl_ca) if s.ssl_ca else None)
    ctx.check_hostname = s.ssl_mode == "verify_identity"
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if s.ssl_cert is not None:
        ctx.load_cert_chain(str(s.ssl_cert), str(s.ssl_key) if s.ssl_key else None)
    return {"ssl": ctx}


def require_tls(conn: pymysql.Connection, s: MysqlSettings) -> None:
    """Under ssl_mode required and stricter, refuse a connection that is not encrypted (a
    PyMySQL that sent the credentials in plaintext to a server not offering TLS)."""
    if s.ssl_mode in ("disabled", "preferred") or isinstance(conn._sock, ssl.SSLSocket):
        return
    conn.close()
    raise SourceError(_no_tls(s))


def _tls_failure(exc: ssl.SSLError, s: MysqlSettings) -> str:
    where = f"TLS to MySQL at {s.host}:{s.port} failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
            return (
                f"{where}: the server's certificate does not name {s.host!r} ({reason}):"
                " connect by a name the certificate has (mysql.host) or use"
                " mysql.ssl_mode = verify_ca"
            )
        return (
            f"{where}: the server's certificate is not trusted ({reason}): set mysql.ssl_ca"
            " to the CA that signed it"
        )
    return f"{where}: {exc.reason or exc}: check the server's TLS setup and mysql.ssl_*"


def _no_tls(s: MysqlSettings) -> str:
    return (
        f"MySQL at {s.host}:{s.port} does not offer TLS, and mysql.ssl_mode = {s.ssl_mode}"
        " refuses plaintext: give the server a certificate (ssl_cert, ssl_key) or lower"
        " mysql.ssl_mode"
    )


def connect(s: MysqlSettings) -> pymysql.Connection:
    try:
        conn = pymysql.connect(**connection_kwargs(s), autocommit=True)  # type: ignore[arg-type]
    except pymysql.err.OperationalError as exc:
        raise translate(exc, s) from exc
    require_tls(conn, s)
    return conn


def translate(exc: pymysql.err.MySQLError, s: MysqlSettings) -> SourceError:
    code = exc.args[0] if exc.args else None
    where = f"MySQL at {s.host}:{s.port}"
    if code == ACCESS_DENIED:
        return SourceError(
            f"{where} refused user {s.user!r} (access denied): check mysql.user / mysql.password"
            + (" (and whether the user must connect over TLS)" if s.ssl_mode == "disabled" else "")
        )
    if code == SSL_CONNECTION_ERROR:
        return SourceError(_no_tls(s))
    tls_failure = getattr(exc, "original_exception", None)
    if isinstance(tls_failure, ssl.SSLError):  # not transient: never retried
        return SourceError(_tls_failure(tls_failure, s))
    if code in CANNOT_CONNECT:
        return SourceUnavailable(f"cannot reach {where}: {exc.args[-1]}")
    return SourceError(f"{where}: {exc.args[-1] if exc.args else exc}")


@contextlib.contextmanager
def asking(what: str) -> Iterator[None]:
    """Translate the server's errors while asking `what` into one clear SourceError."""
    try:
        yield
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        message = exc.args[-1] if exc.args else exc
        if code in CANNOT_CONNECT:
            raise SourceUnavailable(f"lost MySQL while asking {what}: {message}") from exc
        hint = ""
        if code in PRIVILEGE_DENIED:
            hint = (
                "; the CDC user needs REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: BINLOG"
                " MONITOR) and SELECT on *.* ('binlog-tailer check' lists what is missing)"
            )
        raise SourceError(f"MySQL refused {what}: {message}{hint}") from exc


@dataclass(frozen=True)
class ServerInfo:
    version: str
    is_mariadb: bool


def server_info(conn: pymysql.Connection) -> ServerInfo:
    with asking("its version"), conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        (version,) = cur.fetchone()
    return ServerInfo(version=version, is_mariadb="mariadb" in version.lower())


def variables(conn: pymysql.Connection, *names: str) -> dict[str, str]:
    with asking("its variables"), conn.cursor() as cur:
        cur.execute(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ",".join(["%s"] * len(names)) + ")",
            names,
        )
        return {k.lower(): v for k, v in cur.fetchall()}


def collation_charsets(conn: pymysql.Connection) -> dict[int, str]:
    """The server's collation ids and their character sets ({} when it will not say)."""
    out: dict[int, str] = {}
    queries = (
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS",
        # MariaDB 10.10+: UCA 14.0 collations, one id per character set, listed only here
        "SELECT ID, CHARACTER_SET_NAME"
        " FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
    )
    with conn.cursor() as cur:
        for sql in queries:
            try:
                cur.execute(sql)
            except pymysql.err.MySQLError:  # no such table or column here: ranges decide
                continue
            out.update({int(i): str(name) for i, name in cur.fetchall() if i is not None})
    return out


_JSON_CHECK = re.compile(r"json_valid\(`([^`]+)`\)", re.IGNORECASE)


def mariadb_json_columns(conn: pymysql.Connection, db: str, table: str) -> frozenset[str]:
    """MariaDB's JSON is LONGTEXT plus a json_valid() check: the columns that have one."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
            " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (db, table),
        )
        return frozenset(m for (c,) in cur.fetchall() for m in _JSON_CHECK.findall(c))


def binlog_files(conn: pymysql.Connection) -> list[str]:
    with asking("the list of its binary logs (SHOW BINARY LOGS)"), conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [row[0] for row in cur.fetchall()]


def latest_position(conn: pymysql.Connection) -> BinlogPosition:
    """The server's current end of binlog: where a new transaction will start."""
    info = server_info(conn)
    with asking("the end of its binary log (SHOW BINARY LOG STATUS)"), conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError as exc:  # MySQL 8.4 renamed it
            if exc.args and exc.args[0] in PRIVILEGE_DENIED:
                raise
            cur.execute("SHOW BINARY LOG STATUS")
        row = cur.fetchone()
        if row is None:
            raise ConfigError("the server's binary log is off: set log_bin (check with 'check')")
        file, pos = row[0], int(row[1])
        if info.is_mariadb:  # the state at that very offset (a commit may follow meanwhile)
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            (text,) = cur.fetchone()
            gtid = MariadbGtidPos.parse(text) if text else None
            return BinlogPosition(file=file, pos=pos, gtid=gtid)
        executed = (row[4] if len(row) > 4 else "") or ""
        return BinlogPosition(
            file=file, pos=pos, gtid=MysqlGtidSet.parse(executed) if executed else None
        )


def earliest_position(conn: pymysql.Connection) -> BinlogPosition:
    """The first event of the oldest binlog file the server still has."""
    files = binlog_files(conn)
    if not files:
        raise ConfigError("the server has no binary logs: set log_bin (check with 'check')")
    return BinlogPosition(file=files[0], pos=4)
