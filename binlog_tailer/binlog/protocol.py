"""The replication connection: asks the server for its binlog and reads raw event packets."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.connections

from binlog_tailer.errors import SourceError
from binlog_tailer.position import BinlogPosition, MariadbGtidPos, MysqlGtidSet

COM_BINLOG_DUMP = 0x12
COM_BINLOG_DUMP_GTID = 0x1E
LOST_CONNECTION = (2006, 2013)


class ConnectionLost(Exception):
    """The replication connection broke, or the server ended the stream.

    Deliberately not a pymysql error: the caller reopens from a transaction boundary."""


class _Connection(pymysql.connections.Connection):
    def _read_packet(self, packet_type=pymysql.connections.MysqlPacket):  # type: ignore[no-untyped-def]
        try:
            return super()._read_packet(packet_type)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in LOST_CONNECTION:
                raise ConnectionLost(str(exc)) from exc
            raise
        except (OSError, struct.error) as exc:
            raise ConnectionLost(str(exc)) from exc


class BinlogConnection:
    """One dump session. `read()` returns each event as bytes: the OK byte, the 19-byte header
    and the body, without the checksum (`end` tells where the body stops)."""

    def __init__(
        self,
        connect_kwargs: dict[str, object],
        server_id: int,
        heartbeat_seconds: float,
        is_mariadb: bool,
        on_connect: Callable[[pymysql.Connection], None] = lambda conn: None,
    ) -> None:
        self.connect_kwargs = connect_kwargs
        self.on_connect = on_connect  # e.g. refuses a connection that is not encrypted
        self.server_id = server_id
        self.heartbeat_seconds = heartbeat_seconds
        self.is_mariadb = is_mariadb
        self.checksum = 0  # bytes of checksum at the end of each event
        self._conn: _Connection | None = None
        self._rfile: Any = None

    def open(self, start: BinlogPosition) -> None:
        conn = _Connection(**self.connect_kwargs, autocommit=True)  # type: ignore[arg-type]
        self._conn = conn
        self.on_connect(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.binlog_checksum")
            (checksum,) = cur.fetchone()
            self.checksum = 0 if str(checksum).upper() == "NONE" else 4
            cur.execute("SET @master_binlog_checksum = @@GLOBAL.binlog_checksum")
            cur.execute("SET @source_binlog_checksum = @@GLOBAL.binlog_checksum")
            # MariaDB: send GTID events as GTID events (not as BEGIN queries)
            cur.execute("SET @mariadb_slave_capability = 4")
            cur.execute("SET @master_heartbeat_period = %s", (int(self.heartbeat_seconds * 1e9),))
            if start.file is None and self.is_mariadb:
                cur.execute("SET @slave_connect_state = %s", (str(start.gtid),))
                cur.execute("SET @slave_gtid_strict_mode = 0")
                cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        if start.file is not None:
            assert start.pos is not None
            payload = struct.pack("<IHI", start.pos, 0, self.server_id) + start.file.encode()
            conn._execute_command(COM_BINLOG_DUMP, payload)
        elif self.is_mariadb:
            if not isinstance(start.gtid, MariadbGtidPos):
                raise SourceError(
                    f"cannot resume from MySQL GTID set {start.gtid} on a MariaDB server: give"
                    " a MariaDB GTID position (domain-server-seq) or FILE:OFFSET"
                )
            # the position comes from @slave_connect_state; file and offset are ignored
            conn._execute_command(COM_BINLOG_DUMP, struct.pack("<IHI", 4, 0, self.server_id))
        else:
            if not isinstance(start.gtid, MysqlGtidSet):
                raise SourceError(
                    f"cannot resume from MariaDB GTID position {start.gtid} on a MySQL server:"
                    " give a MySQL GTID set (uuid:1-150) or FILE:OFFSET"
                )
            gtids = start.gtid.encode()
            payload = (
                struct.pack("<HII", 0, self.server_id, 0)
                + struct.pack("<Q", 4)
                + struct.pack("<I", len(gtids))
                + gtids
            )
            conn._execute_command(COM_BINLOG_DUMP_GTID, payload)
        self._rfile = conn._rfile

    def read(self) -> bytes:
        """The next event; raises ConnectionLost, or the pymysql error the server sends.

        Reads the MySQL packet framing (3-byte length, sequence id) straight from the
        connection's buffered socket file: pymysql's generic packet reader cost more than all
        of our event parsing."""
        assert self._rfile is not None
        read = self._rfile.read
        try:
            header = read(4)
            if len(header) < 4:
                raise ConnectionLost("the server closed the connection")
            size = header[0] | header[1] << 8 | header[2] << 16
            data: bytes = read(size)
            if len(data) < size:  # cut off: never decode a shorter event
                raise ConnectionLost(f"the connection closed inside a {size}-byte packet")
            if size == 0xFFFFFF:  # a payload of 16 MiB or more continues in more packets
                data = self._continued(read, data)
        except OSError as exc:  # includes the socket timeout (no heartbeat for read_timeout)
            raise ConnectionLost(str(exc)) from exc
        if len(data) < 20:
            if data[:1] == b"\xff":
                pymysql.err.raise_mysql_exception(data)
            if data[:1] == b"\xfe":  # EOF: the server ended the stream
                raise ConnectionLost("the server ended the binlog stream")
            raise ConnectionLost(f"short packet from the server ({len(data)} bytes)")
        if data[0] == 0xFF:
            pymysql.err.raise_mysql_exception(data)
        return data

    @staticmethod
    def _continued(read: Any, first: bytes) -> bytes:
        parts, size = [first], 0xFFFFFF
        while size == 0xFFFFFF:
            header = read(4)
            if len(header) < 4:
                raise ConnectionLost("the connection closed inside a continued packet")
            size = header[0] | header[1] << 8 | header[2] << 16
            part = read(size)
            if len(part) < size:
                raise ConnectionLost(f"the connection closed inside a {size}-byte packet")
            parts.append(part)
        return b"".join(parts)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close; nothing to keep
                self._conn._force_close()
            self._conn = None
            self._rfile = None
