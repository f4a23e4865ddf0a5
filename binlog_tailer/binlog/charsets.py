"""Character sets of string columns, by the collation id a table map names, as Python codecs.

Decoded as ``SELECT`` returns the text. The server's own collation table
(``information_schema``, read once per connection) names each id; without it, known ranges
do: PyMySQL's table of classic ids, MySQL 8's utf8mb4 ``*_0900_*`` collations (255-323),
MariaDB's NO PAD collations (1024 + the classic id) and UCA 14.0 collations (2048 + 256 per
character set). An id none of them names is not guessed: the column fails clearly when a
captured row needs it, and a table nobody captures costs nothing.
"""

from __future__ import annotations

import codecs

from pymysql.charset import charset_by_id

UNKNOWN = "unknown"  # prefix of the codec name of a collation we cannot name

# MySQL's latin1 is Windows-1252 whose five undefined bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are
# the C1 control characters of the same code: Python's cp1252 refuses them.
_MYSQL_LATIN1 = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(256))
_MYSQL_LATIN1_TABLE = codecs.charmap_build(_MYSQL_LATIN1)


def _mysql_latin1(name: str) -> codecs.CodecInfo | None:
    if name != "mysql_latin1":
        return None
    return codecs.CodecInfo(
        name="mysql_latin1",
        encode=lambda s, errors="strict": codecs.charmap_encode(s, errors, _MYSQL_LATIN1_TABLE),
        decode=lambda b, errors="strict": codecs.charmap_decode(b, errors, _MYSQL_LATIN1),
    )


codecs.register(_mysql_latin1)

CODECS = {
    "binary": "binary",
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "latin1": "mysql_latin1",
    "ascii": "ascii",
    # MySQL and MariaDB store these big-endian, without a byte-order mark
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
    "latin2": "iso8859-2",
    "latin5": "iso8859-9",
    "latin7": "iso8859-13",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "cp932": "cp932",
    "koi8r": "koi8-r",
    "koi8u": "koi8-u",
    "macroman": "mac-roman",
    "macce": "mac-latin2",
    "tis620": "tis-620",
    "gbk": "gbk",
    "gb2312": "gb2312",
    "gb18030": "gb18030",
    "big5": "big5",
    "sjis": "shift_jis",
    "ujis": "euc_jp",
    "eucjpms": "euc_jp",
    "euckr": "euc_kr",
}

# MariaDB 10.10+: UCA 14.0 collation ids are 2048 + 256 * n, n by character set
_MARIADB_UCA1400 = ("utf8mb3", "utf8mb4", "ucs2", "utf16", "utf32")


def charset_name(collation_id: int) -> str | None:
    """The character set of a collation id by the known ranges, or None when we cannot tell."""
    if collation_id == 63:
        return "binary"
    if 1024 <= collation_id < 2048:  # MariaDB NO PAD variants of the classic collations
        return charset_name(collation_id - 1024)
    if 255 <= collation_id <= 323:  # MySQL 8: the utf8mb4 *_0900_* collations
        return "utf8mb4"
    if 2048 <= collation_id < 2048 + 256 * len(_MARIADB_UCA1400):
        return _MARIADB_UCA1400[(collation_id - 2048) // 256]
    try:
        return charset_by_id(collation_id).name
    except KeyError:
        return None


class Charsets:
    """Collation id -> Python codec for one server; `server` is its own table (id -> name)."""

    def __init__(self, server: dict[int, str] | None = None) -> None:
        self.server = server or {}
        self._codecs: dict[int, str] = {}

    def codec(self, collation_id: int) -> str:
        """The codec name, or ``unknown:<id>[:<charset>]`` when there is none."""
        codec = self._codecs.get(collation_id)
        if codec is None:
            name = self.server.get(collation_id) or charset_name(collation_id)
            if name is None:
                codec = f"{UNKNOWN}:{collation_id}"
            else:
                codec = CODECS.get(name, f"{UNKNOWN}:{collation_id}:{name}")
            self._codecs[collation_id] = codec
        return codec


def unknown_message(codec: str) -> str:
    """What to tell the user about an ``unknown:...`` codec name."""
    _, cid, *name = codec.split(":")
    if name:
        return f"character set {name[0]} (collation id {cid}), which binlog-tailer cannot decode"
    return f"collation id {cid}, which neither the server nor binlog-tailer can name"
