"""The active relay's lock: a named lock on the source server (GET_LOCK).

A named lock belongs to a session: the server frees it when that session ends, also when the
relay holding it is killed (the kernel closes its socket). Standby relays ask for it every few
seconds and the first to get it becomes the active one. The relay reads and deletes on that
same session, so it cannot go on removing rows once it lost the lock.
"""

from __future__ import annotations

import hashlib

import pymysql

# MySQL refuses lock names longer than 64 characters
_MAX_NAME = 64


def lock_name(connector: str) -> str:
    name = f"binlog-tailer.relay.{connector}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(connector.encode()).hexdigest()[:16]
    return f"{name[: _MAX_NAME - 17]}.{digest}"


def try_acquire(conn: pymysql.Connection, name: str, wait_seconds: float) -> bool:
    """Whether this session got the lock within `wait_seconds`."""
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s)", (name, wait_seconds))
        row = cur.fetchone()
    return bool(row and row[0] == 1)


def holder(conn: pymysql.Connection, name: str) -> int | None:
    """The connection id of the session holding the lock (None: free)."""
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (name,))
        row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None
