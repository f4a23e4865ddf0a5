"""What a QUERY event's statement means for change capture: transaction control, or a change
logged as SQL text instead of row images (binlog_format=STATEMENT or MIXED, per session too).

Only the statement's head is read: enough to tell the kind, and for DML the table it changes.
A DML statement whose target cannot be read is reported with no targets, which callers treat
as touching every table (refusing is safe; guessing is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    BEGIN = "begin"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SAVEPOINT = "savepoint"
    ROLLBACK_TO_SAVEPOINT = "rollback to savepoint"
    XA = "xa"
    DML = "dml"
    TRUNCATE = "truncate"
    OTHER = "other"  # DDL and the rest


@dataclass(frozen=True)
class Statement:
    kind: Kind
    verb: str = ""  # DML: INSERT, REPLACE, UPDATE, DELETE, LOAD DATA
    targets: tuple[tuple[str | None, str], ...] = ()  # DML: (db or None, table); () = unknown


_LEADING = re.compile(rb"\A(?:\s+|/\*(?!!).*?\*/|--[^\n]*\n|#[^\n]*\n)*", re.S)
_NAME = rb"(?:`((?:[^`]|``)+)`|(\w+))"
_QUALIFIED = rb"(?:" + _NAME + rb"\s*\.\s*)?" + _NAME
_CONTROL = (
    (re.compile(rb"BEGIN\b|START\s+TRANSACTION\b", re.I), Kind.BEGIN),
    (re.compile(rb"COMMIT\b", re.I), Kind.COMMIT),
    (re.compile(rb"ROLLBACK\s+(?:WORK\s+)?TO\b", re.I), Kind.ROLLBACK_TO_SAVEPOINT),
    (re.compile(rb"ROLLBACK\b", re.I), Kind.ROLLBACK),
    (re.compile(rb"SAVEPOINT\b", re.I), Kind.SAVEPOINT),
    (re.compile(rb"XA\b", re.I), Kind.XA),
)
_TRUNCATE = re.compile(rb"TRUNCATE\s+(?:TABLE\s+)?" + _QUALIFIED, re.I)
_DML = (
    ("INSERT", rb"INSERT\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?"),
    ("REPLACE", rb"REPLACE\s+(?:(?:LOW_PRIORITY|DELAYED)\s+)*(?:INTO\s+)?"),
    ("UPDATE", rb"UPDATE\s+(?:(?:LOW_PRIORITY|IGNORE)\s+)*"),
    ("DELETE", rb"DELETE\s+(?:(?:LOW_PRIORITY|QUICK|IGNORE)\s+)*FROM\s+"),
    ("LOAD DATA", rb"LOAD\s+(?:DATA|XML)\b.*?\bINTO\s+TABLE\s+"),
)
_DML_PATTERNS = tuple(
    (
        verb,
        re.compile(head + _QUALIFIED, re.I | re.S),
        re.compile(verb.replace(" DATA", r"\s+(?:DATA|XML)").encode() + rb"\b", re.I),
    )
    for verb, head in _DML
)
# what may follow a single target table; anything else (a join, a list) means "unknown"
_SINGLE_TARGET_END = re.compile(
    rb"\s*(?:$|\(|VALUES?\b|SET\b|SELECT\b|WHERE\b|PARTITION\b|ORDER\b|LIMIT\b|"
    rb"(?:AS\s+)?\w+\s+(?:SET|WHERE)\b|FIELDS\b|COLUMNS\b|LINES\b|IGNORE\b|CHARACTER\b)",
    re.I,
)


def classify(sql: bytes) -> Statement:
    """The kind of a statement, and for DML the table(s) it changes when they can be read."""
    text = sql[_LEADING.match(sql).end() :]  # type: ignore[union-attr]
    for pattern, kind in _CONTROL:
        if pattern.match(text):
            return Statement(kind)
    m = _TRUNCATE.match(text)
    if m is not None:
        return Statement(Kind.TRUNCATE, "TRUNCATE", (_target(m),))
    for verb, full, head in _DML_PATTERNS:
        if not head.match(text):
            continue
        m = full.match(text)
        if m is None or not _SINGLE_TARGET_END.match(text, m.end()):
            return Statement(Kind.DML, verb)
        return Statement(Kind.DML, verb, (_target(m),))
    return Statement(Kind.OTHER)


def _target(m: re.Match[bytes]) -> tuple[str | None, str]:
    table = _unquote(m.group(3) or m.group(4))
    assert table is not None
    return _unquote(m.group(1) or m.group(2)), table


def _unquote(name: bytes | None) -> str | None:
    if name is None:
        return None
    return name.replace(b"``", b"`").decode("utf-8", "replace")
