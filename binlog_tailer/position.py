"""Binlog positions: file + offset, and GTID sets in both dialects.

- MariaDB: a GTID is ``domain-server-seq``; the position is the last GTID of each domain,
  written as a comma-separated list (``0-1-150,1-2-7``), what ``@@gtid_binlog_pos`` shows.
- MySQL: a GTID is ``uuid:n``; the position is the set of executed GTIDs,
  ``uuid:1-5:7-9,uuid2:1-3``, what ``@@gtid_executed`` shows.

A ``BinlogPosition`` always names a transaction boundary: resuming there never starts inside
a transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from binlog_tailer.errors import ConfigError

_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


@dataclass(frozen=True)
class MariadbGtidPos:
    """The last GTID of each replication domain: {domain: (server_id, seq)}."""

    domains: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def parse(cls, text: str) -> MariadbGtidPos:
        out: dict[int, tuple[int, int]] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            m = _MARIADB_GTID.match(part)
            if not m:
                raise ConfigError(f"not a MariaDB GTID (domain-server-seq): {part!r}")
            domain, server, seq = map(int, m.groups())
            if domain in out:
                raise ConfigError(f"MariaDB GTID position names domain {domain} twice: {text!r}")
            out[domain] = (server, seq)
        return cls(tuple(sorted((d, s, n) for d, (s, n) in out.items())))

    def with_gtid(self, domain: int, server: int, seq: int) -> MariadbGtidPos:
        if len(self.domains) == 1 and self.domains[0][0] == domain:  # the common case
            return MariadbGtidPos(((domain, server, seq),))
        rest = tuple(d for d in self.domains if d[0] != domain)
        return MariadbGtidPos(tuple(sorted((*rest, (domain, server, seq)))))

    def __str__(self) -> str:
        return ",".join(f"{d}-{s}-{n}" for d, s, n in self.domains)


@dataclass(frozen=True)
class MysqlGtidSet:
    """Executed MySQL GTIDs: {uuid: ((start, end), ...)} with inclusive, merged intervals."""

    sets: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        out: dict[str, list[tuple[int, int]]] = {}
        for part in filter(None, (p.strip() for p in text.replace("\n", "").split(","))):
            uuid, *ranges = part.split(":")
            if not _UUID.match(uuid) or not ranges:
                raise ConfigError(f"not a MySQL GTID set (uuid:1-5[:7-9]): {part!r}")
            uuid = uuid.lower()
            for r in ranges:
                lo, _, hi = r.partition("-")
                try:
                    start, end = int(lo), int(hi or lo)
                except ValueError:
                    raise ConfigError(f"bad GTID interval {r!r} in {part!r}") from None
                if start < 1 or end < start:
                    raise ConfigError(f"bad GTID interval {r!r} in {part!r}")
                out.setdefault(uuid, []).append((start, end))
        return cls(tuple((u, _merge(iv)) for u, iv in sorted(out.items())))

    def with_gtid(self, uuid: str, gno: int) -> MysqlGtidSet:
        uuid = uuid.lower()
        d = {u: list(iv) for u, iv in self.sets}
        d.setdefault(uuid, []).append((gno, gno))
        return MysqlGtidSet(tuple((u, _merge(iv)) for u, iv in sorted(d.items())))

    def __contains__(self, gtid: str) -> bool:
        uuid, _, gno = gtid.rpartition(":")
        n = int(gno)
        return any(lo <= n <= hi for u, iv in self.sets if u == uuid.lower() for lo, hi in iv)

    def __str__(self) -> str:
        return ",".join(
            u + "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in iv) for u, iv in self.sets
        )


def _merge(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


GtidState = MariadbGtidPos | MysqlGtidSet


def parse_gtid(text: str) -> GtidState:
    """Parse either dialect; the form tells which."""
    text = text.strip()
    if not text:
        raise ConfigError("empty GTID position")
    first = text.split(",")[0].strip()
    if _MARIADB_GTID.match(first):
        return MariadbGtidPos.parse(text)
    return MysqlGtidSet.parse(text)


@dataclass(frozen=True)
class BinlogPosition:
    """A transaction boundary in the binlog.

    ``file``/``pos`` point at the first event after the boundary; ``gtid`` is the GTID state
    including every transaction before it. Either part may be missing (a position given by
    the user as a GTID set has no file yet), never both.
    """

    file: str | None = None
    pos: int | None = None
    gtid: GtidState | None = field(default=None)

    def __post_init__(self) -> None:
        if (self.file is None) != (self.pos is None):
            raise ConfigError("a binlog position needs both a file and an offset")
        if self.file is None and self.gtid is None:
            raise ConfigError("a binlog position needs a file:offset or a GTID set")
        if self.pos is not None and self.pos < 4:
            raise ConfigError(f"binlog offset {self.pos} is before the first event (4)")

    @property
    def has_file(self) -> bool:
        return self.file is not None

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "pos": self.pos, "gtid": str(self.gtid) if self.gtid else None}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> BinlogPosition:
        gtid = d.get("gtid")
        pos = d.get("pos")
        file = d.get("file")
        return cls(
            file=str(file) if file is not None else None,
            pos=int(pos) if pos is not None else None,  # type: ignore[call-overload]
            gtid=parse_gtid(str(gtid)) if gtid else None,
        )

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.pos}")
        if self.gtid is not None:
            parts.append(f"gtid={self.gtid}")
        return " ".join(parts)


_FILE_POS = re.compile(r"^(?P<file>[^\s:]+\.\d+):(?P<pos>\d+)$")


def parse_position(text: str) -> BinlogPosition:
    """Parse a position the user gives: ``binlog.000003:1234`` or a GTID set."""
    text = text.strip()
    m = _FILE_POS.match(text)
    if m:
        return BinlogPosition(file=m["file"], pos=int(m["pos"]))
    try:
        return BinlogPosition(gtid=parse_gtid(text))
    except ConfigError as exc:
        raise ConfigError(
            f"cannot read position {text!r}: expected FILE:OFFSET (e.g. mysql-bin.000003:4),"
            f" a MariaDB GTID list (0-1-150) or a MySQL GTID set (uuid:1-150) ({exc})"
        ) from None
