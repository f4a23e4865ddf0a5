"""How far a snapshot got, as stored in the checkpoint (pure: no server, no Kafka).

A snapshot reads tables in primary-key chunks. After each chunk is published, the checkpoint's
position carries a `SnapshotState`: the tables still to read (the first one is being read),
the key of the last row read of it, and how many rows of it were published. A restart (even
after kill -9) reads on from the next chunk; at most the chunk in flight is read twice.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from binlog_tailer.errors import ConfigError


@dataclass(frozen=True)
class SnapshotState:
    tables: tuple[str, ...]  # "db.table" still to read; tables[0] is being read
    after: tuple[Any, ...] | None = None  # key of the last row read of tables[0]
    rows: int = 0  # rows of tables[0] read so far
    where: tuple[tuple[str, str], ...] = ()  # (table, SQL condition): only rows matching it

    def __post_init__(self) -> None:
        if not self.tables:
            raise ConfigError("a snapshot state names at least one table")

    @property
    def table(self) -> str:
        return self.tables[0]

    def condition(self) -> str | None:
        """The condition rows of tables[0] are read with (None: every row)."""
        return dict(self.where).get(self.table)

    def next_chunk(self, after: tuple[Any, ...], rows: int) -> SnapshotState:
        return SnapshotState(self.tables, after, self.rows + rows, self.where)

    def next_table(self) -> SnapshotState | None:
        """The state once tables[0] is read; None when it was the last."""
        if len(self.tables) == 1:
            return None
        rest = self.tables[1:]
        return SnapshotState(rest, where=tuple((t, w) for t, w in self.where if t in rest))

    def with_tables(self, tables: tuple[str, ...], where: str | None) -> SnapshotState:
        """More tables to read after these (one already queued is not queued twice)."""
        new = tuple(t for t in dict.fromkeys(tables) if t not in self.tables)
        conds = self.where + tuple((t, where) for t in new if where)
        return SnapshotState(self.tables + new, self.after, self.rows, conds)

    @classmethod
    def of(cls, tables: tuple[str, ...], where: str | None = None) -> SnapshotState:
        tables = tuple(dict.fromkeys(tables))
        return cls(tables, where=tuple((t, where) for t in tables) if where else ())

    def to_dict(self) -> dict[str, object]:
        after = None if self.after is None else [encode_key_value(v) for v in self.after]
        d: dict[str, object] = {"tables": list(self.tables), "after": after, "rows": self.rows}
        if self.where:
            d["where"] = [list(pair) for pair in self.where]
        return d

    @classmethod
    def from_dict(cls, d: object) -> SnapshotState:
        if not isinstance(d, dict):
            raise TypeError(f"'snapshot' is an object with tables, after and rows, not {d!r}")
        after = d.get("after")
        return cls(
            tuple(str(t) for t in d["tables"]),
            None if after is None else tuple(decode_key_value(v) for v in after),
            int(d.get("rows", 0)),
            tuple((str(t), str(w)) for t, w in d.get("where") or ()),
        )

    def __str__(self) -> str:
        where = "from its start" if self.after is None else f"after key {list(self.after)}"
        more = f" (then {len(self.tables) - 1} more)" if len(self.tables) > 1 else ""
        cond = self.condition()
        only = f" where {cond}" if cond else ""
        return f"snapshot of {self.table}{only} {where}{more}"


# A primary key value as JSON: [kind, text]. Only the kinds a key column can decode to.
def encode_key_value(v: Any) -> list[object]:
    if isinstance(v, bool | int):
        return ["int", int(v)]
    if isinstance(v, str):
        return ["str", v]
    if isinstance(v, bytes | bytearray):
        return ["bytes", base64.b64encode(v).decode("ascii")]
    if isinstance(v, decimal.Decimal):
        return ["decimal", format(v, "f")]
    if isinstance(v, float):
        return ["float", repr(v)]
    if isinstance(v, dt.datetime):
        return ["datetime", v.isoformat()]
    if isinstance(v, dt.date):
        return ["date", v.isoformat()]
    if isinstance(v, dt.timedelta):
        return ["time", v.days * 86_400_000_000 + v.seconds * 1_000_000 + v.microseconds]
    raise ConfigError(f"a snapshot cannot chunk by a key value of type {type(v).__name__}")


def decode_key_value(item: object) -> Any:
    if not isinstance(item, list) or len(item) != 2:
        raise TypeError(f"a stored key value is [kind, value], not {item!r}")
    kind, v = item
    decoders: dict[object, Callable[[Any], Any]] = {
        "int": int,
        "str": str,
        "bytes": lambda x: base64.b64decode(str(x)),
        "decimal": lambda x: decimal.Decimal(str(x)),
        "float": float,
        "datetime": lambda x: dt.datetime.fromisoformat(str(x)),
        "date": lambda x: dt.date.fromisoformat(str(x)),
        "time": lambda x: dt.timedelta(microseconds=int(x)),
    }
    if kind not in decoders:
        raise TypeError(f"unknown key value kind {kind!r}")
    return decoders[kind](v)
