"""Binlog positions: file + offset, and GTID sets in both dialects.

- MariaDB: a GTID is ``domain-server-seq``; the position is the last GTID of each domain,
  written as a comma-separated list (``0-1-150,1-2-7``), what ``@@gtid_binlog_pos`` shows.
- MySQL: a GTID is ``uuid:n``; the position is the set of executed GTIDs,
  ``uuid:1-5:7-9,uuid2:1-3``, what ``@@gtid_executed`` shows.

A ``BinlogPosition`` always names a transaction boundary: resuming there never starts inside
a transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import struct
from dataclasses import dataclass, field

from binlog_tailer.errors import ConfigError
from binlog_tailer.snapshot.state import SnapshotState

_MARIADB_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_GNO_END = (1 << 63) - 1  # MySQL's GNO_END: a GNO is below it
_TAG = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,31}$")  # MySQL 8.3+ GTID tag; stored lowercase


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
    """Executed MySQL GTIDs: {tsid: ((start, end), ...)} with inclusive, merged intervals.

    A TSID is ``uuid`` or, for tagged GTIDs (MySQL 8.3+), ``uuid:tag``; entries are sorted by
    (uuid, tag), the order MySQL uses for both the text and the binary form.
    """

    sets: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()

    @classmethod
    def parse(cls, text: str) -> MysqlGtidSet:
        """Parse ``uuid:1-5:7[:tag:1-3...][,uuid2:...]``: intervals after a tag belong to it."""
        out: dict[str, list[tuple[int, int]]] = {}
        for part in filter(None, (p.strip() for p in text.replace("\n", "").split(","))):
            for tsid, intervals in _segments(part):
                out.setdefault(tsid, []).extend(intervals)
        return cls(tuple((t, _merge(iv)) for t, iv in sorted(out.items())))

    def with_gtid(self, uuid: str, gno: int, tag: str | None = None) -> MysqlGtidSet:
        """The set plus ``uuid[:tag]:gno``; `uuid` may also be a whole TSID (``uuid:tag``)."""
        tsid = _tsid(uuid, tag)
        sets = self.sets
        for i, (t, iv) in enumerate(sets):
            if t != tsid:
                continue
            # Called at every commit: the next GTID of a source extends its last interval.
            lo, hi = iv[-1]
            if lo <= gno <= hi:
                return self
            if gno == hi + 1:
                return MysqlGtidSet((*sets[:i], (t, (*iv[:-1], (lo, gno))), *sets[i + 1 :]))
            break
        d = {t: list(iv) for t, iv in sets}
        d.setdefault(tsid, []).append((gno, gno))
        return MysqlGtidSet(tuple((t, _merge(iv)) for t, iv in sorted(d.items())))

    def __contains__(self, gtid: str) -> bool:
        tsid, _, gno = gtid.rpartition(":")
        tsid, n = _tsid(tsid, None), int(gno)
        return any(lo <= n <= hi for t, iv in self.sets if t == tsid for lo, hi in iv)

    def __str__(self) -> str:
        # MySQL's form: per uuid the untagged intervals first, then each tag (sorted) and its
        # intervals: uuid:1-5:tag_a:1:tag_b:3-4. MySQL joins uuids with ",\n"; we use ",".
        groups: dict[str, list[str]] = {}
        for tsid, iv in self.sets:
            uuid, _, tag = tsid.partition(":")
            text = "".join(f":{a}" if a == b else f":{a}-{b}" for a, b in iv)
            groups.setdefault(uuid, []).append(f":{tag}{text}" if tag else text)
        return ",".join(u + "".join(parts) for u, parts in groups.items())

    def encode(self) -> bytes:
        """The binary form COM_BINLOG_DUMP_GTID takes (MySQL's Gtid_set::encode).

        Without tags: n_sids (u64), then per uuid its 16 bytes, n_intervals (u64) and each
        interval as u64 [start, end+1). With any tag, MySQL's tagged format: n_sids is stored as
        (1 << 56) | (n_sids << 8) | 1, and every uuid (untagged ones too) is followed by its tag
        as a length-prefixed string (variable-length integer length, 0 for no tag).
        """
        tagged = any(":" in tsid for tsid, _ in self.sets)
        n = len(self.sets)
        out = [struct.pack("<Q", (1 << 56) | (n << 8) | 1 if tagged else n)]
        for tsid, iv in self.sets:
            uuid, _, tag = tsid.partition(":")
            out.append(bytes.fromhex(uuid.replace("-", "")))
            if tagged:
                out.append(_varlen_uint(len(tag)) + tag.encode("ascii"))
            out.append(struct.pack("<Q", len(iv)))
            out.extend(struct.pack("<QQ", lo, hi + 1) for lo, hi in iv)
        return b"".join(out)

    @classmethod
    def decode(cls, buf: bytes) -> MysqlGtidSet:
        """The inverse of `encode`; also reads a PREVIOUS_GTIDS_LOG_EVENT (35) body."""
        try:
            (word,) = struct.unpack_from("<Q", buf)
            tagged = word >> 56 == 1
            if word >> 56 > 1 or (tagged and word & 0xFF != 1):
                raise ValueError(f"unknown GTID set encoding {word:#018x}")
            n, pos, out = (word >> 8) & ((1 << 48) - 1) if tagged else word, 8, []
            for _ in range(n):
                tsid, pos = _decode_tsid(buf, pos, tagged)
                (count,) = struct.unpack_from("<Q", buf, pos)
                ends = struct.unpack_from(f"<{2 * count}Q", buf, pos + 8)
                pos += 8 + 16 * count
                out.append((tsid, _decoded_intervals(ends)))
        except (struct.error, IndexError, UnicodeDecodeError, ConfigError) as exc:
            raise ValueError(f"malformed GTID set encoding: {exc}") from None
        return cls(tuple(sorted(out)))


def _decoded_intervals(ends: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """[start, end) pairs, increasing and not touching, as MySQL checks them."""
    pairs = list(zip(ends[::2], ends[1::2], strict=True))
    last = 0
    for start, end in pairs:
        if start <= last or end <= start:
            raise ValueError(f"bad GTID interval [{start}, {end}) in the encoding")
        last = end
    return tuple((start, end - 1) for start, end in pairs)


def _decode_tsid(buf: bytes, pos: int, tagged: bool) -> tuple[str, int]:
    uuid = buf[pos : pos + 16].hex()
    if len(uuid) != 32:
        raise IndexError("truncated uuid")
    if not tagged:
        return _tsid(uuid, None), pos + 16
    head = buf[pos + 16]  # the tag's length, at most 32: a 1-byte varlen (length << 1)
    if head & 1:
        raise ValueError(f"bad GTID tag length byte {head:#x}")
    tag = buf[pos + 17 : pos + 17 + (head >> 1)].decode("ascii")
    return _tsid(uuid, tag or None), pos + 17 + len(tag)


def _segments(part: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """``uuid:1-5:tag:1-3`` -> [(uuid, [(1, 5)]), (uuid:tag, [(1, 3)])]."""
    uuid, *items = (x.strip() for x in part.split(":"))
    if not _UUID.match(uuid) or not items:
        raise ConfigError(f"not a MySQL GTID set (uuid[:tag]:1-5[:7-9]): {part!r}")
    segments: list[tuple[str, list[tuple[int, int]]]] = [(_uuid_text(uuid), [])]
    for item in items:
        if _TAG.match(item):
            segments.append((f"{segments[0][0]}:{item.lower()}", []))
        else:
            segments[-1][1].append(_interval(item, part))
    if not segments[0][1]:  # no untagged intervals: fine when tags follow
        segments.pop(0)
    for tsid, intervals in segments or [(uuid, [])]:
        if not intervals:
            raise ConfigError(f"GTID set names {tsid!r} without intervals: {part!r}")
    return segments


def _uuid_text(uuid: str) -> str:
    h = uuid.replace("-", "").lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.lru_cache(maxsize=1024)  # every commit names its source's uuid
def _tsid(uuid: str, tag: str | None) -> str:
    """The TSID key ``uuid`` / ``uuid:tag``, normalised the way MySQL does (lowercase)."""
    uuid, _, tsid_tag = uuid.partition(":")
    tag = tag or tsid_tag
    if tag and not _TAG.match(tag):
        raise ConfigError(f"not a GTID tag ([a-z_][a-z0-9_]{{0,31}}): {tag!r}")
    return f"{_uuid_text(uuid)}:{tag.lower()}" if tag else _uuid_text(uuid)


def _interval(item: str, part: str) -> tuple[int, int]:
    lo, _, hi = item.partition("-")
    try:
        start, end = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(f"bad GTID interval {item!r} in {part!r}") from None
    if start < 1 or end < start or end >= _GNO_END:
        raise ConfigError(f"bad GTID interval {item!r} in {part!r}")
    return start, end


def _varlen_uint(value: int) -> bytes:
    """MySQL's serialization-library variable-length unsigned integer (1-9 bytes).

    The count of trailing one bits in the first byte, plus one, is the byte count; the value
    follows those bits, little-endian (9 bytes: first byte 0xff, the value in the next 8)."""
    size = (value.bit_length() * 575 >> 12) + 1  # 7 bits a byte; 9 bytes hold all 64
    if size == 9:
        return b"\xff" + value.to_bytes(8, "little")
    return ((value << size) | ((1 << (size - 1)) - 1)).to_bytes(size, "little")


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


@dataclass(frozen=True, order=True)
class RowRef:
    """One row of a rows event: the event's file and offset, and the row's index in it (in a
    compressed MySQL transaction: the payload event's offset and the row's index in the
    whole transaction, as `RowChange` reports them)."""

    file: str
    pos: int
    row: int

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "pos": self.pos, "row": self.row}

    @classmethod
    def from_dict(cls, d: object) -> RowRef:
        if not isinstance(d, dict):
            raise TypeError(f"'done' is an object with file, pos and row, not {d!r}")
        return cls(str(d["file"]), int(d["pos"]), int(d["row"]))


@dataclass(frozen=True)
class BinlogPosition:
    """A transaction boundary in the binlog.

    ``file``/``pos`` point at the first event after the boundary; ``gtid`` is the GTID state
    including every transaction before it. Either part may be missing (a position given by
    the user as a GTID set has no file yet), never both.

    ``done`` (exactly-once delivery, a MySQL transaction too large for one Kafka transaction):
    the transaction after the boundary is published up to and including this row; resuming
    skips its rows up to there.
    """

    file: str | None = None
    pos: int | None = None
    gtid: GtidState | None = field(default=None)
    done: RowRef | None = None
    snapshot: SnapshotState | None = None  # a snapshot in progress (binlog_tailer.snapshot)
    signals: int | None = None  # the offset of the next signal to read (binlog_tailer.snapshot)

    def __post_init__(self) -> None:
        if (self.file is None) != (self.pos is None):
            raise ConfigError("a binlog position needs both a file and an offset")
        if self.file is None and self.gtid is None:
            raise ConfigError("a binlog position needs a file:offset or a GTID set")
        if self.pos is not None and self.pos < 4:
            raise ConfigError(f"binlog offset {self.pos} is before the first event (4)")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "file": self.file,
            "pos": self.pos,
            "gtid": str(self.gtid) if self.gtid else None,
        }
        if self.done is not None:
            d["done"] = self.done.to_dict()
        if self.snapshot is not None:
            d["snapshot"] = self.snapshot.to_dict()
        if self.signals is not None:
            d["signals"] = self.signals
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> BinlogPosition:
        gtid = d.get("gtid")
        pos = d.get("pos")
        file = d.get("file")
        done = d.get("done")
        snapshot = d.get("snapshot")
        signals = d.get("signals")
        return cls(
            file=str(file) if file is not None else None,
            pos=int(pos) if pos is not None else None,  # type: ignore[call-overload]
            gtid=parse_gtid(str(gtid)) if gtid else None,
            done=RowRef.from_dict(done) if done is not None else None,
            snapshot=SnapshotState.from_dict(snapshot) if snapshot is not None else None,
            signals=int(signals) if signals is not None else None,  # type: ignore[call-overload]
        )

    @property
    def boundary(self) -> BinlogPosition:
        """The transaction boundary alone (without `done`; a snapshot's progress kept)."""
        if self.done is None:
            return self
        return BinlogPosition(self.file, self.pos, self.gtid, None, self.snapshot, self.signals)

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.pos}")
        if self.gtid is not None:
            parts.append(f"gtid={self.gtid}")
        if self.done is not None:
            d = self.done
            parts.append(f"(the next transaction done up to row {d.row} at {d.file}:{d.pos})")
        if self.snapshot is not None:
            parts.append(f"[{self.snapshot}]")
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


def passed(position: BinlogPosition, target: BinlogPosition) -> bool:
    """Whether every transaction before `target` is also before `position`: a checkpoint at
    `position` has published them all.

    By file and offset when both name a file of one binlog (files ordered by their numeric
    extension), else by GTID containment: MySQL, `position`'s set holds all of `target`'s;
    MariaDB, every domain of `target` is reached (sequence numbers only grow in a domain).
    False when neither can tell (nothing is proven)."""
    if position.file is not None and target.file is not None:
        mine, theirs = _file_number(position.file), _file_number(target.file)
        if mine is not None and theirs is not None and mine[0] == theirs[0]:
            return (mine[1], position.pos or 0) >= (theirs[1], target.pos or 0)
    have, want = position.gtid, target.gtid
    if isinstance(have, MariadbGtidPos) and isinstance(want, MariadbGtidPos):
        reached = {d: seq for d, _, seq in have.domains}
        return all(reached.get(d, -1) >= seq for d, _, seq in want.domains)
    if isinstance(have, MysqlGtidSet) and isinstance(want, MysqlGtidSet):
        held = dict(have.sets)
        return all(
            any(a <= lo and hi <= b for a, b in held.get(tsid, ()))
            for tsid, intervals in want.sets
            for lo, hi in intervals
        )
    return False


def _file_number(name: str) -> tuple[str, int] | None:
    """``binlog.000012`` -> ("binlog", 12): numbers, not text, order the files (a seventh
    digit after binlog.999999)."""
    base, _, ext = name.rpartition(".")
    return (base, int(ext)) if base and ext.isdigit() else None


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time with a zone (2026-11-25T09:00:00Z, ...+09:00); None when `text` is not
    a time at all (a position); ConfigError for a time without a zone."""
    if len(text) < 10 or not text[:4].isdigit() or text[4:5] != "-":
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"not a time: {text!r} (ISO 8601 with a zone: 2026-11-25T09:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise ConfigError(
            f"the time {text!r} has no zone: add one (2026-11-25T09:00:00Z, or +09:00)"
        )
    return when
