"""Which tables are captured, decided from `db.table` alone, before rows are decoded."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")


class TableFilter:
    """Include/exclude patterns over ``db.table``.

    Patterns are shell-style wildcards (``*``, ``?``, ``[abc]``), matched case-sensitively
    against ``db.table``: ``shop.*``, ``*.outbox``, ``app.order_?``. A table is captured when it
    matches an include pattern and no exclude pattern. System schemas are never captured.
    Decisions are cached: the per-event cost is one dict lookup.
    """

    def __init__(self, include: Iterable[str] = ("*.*",), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._include = _compile(self.include)
        self._exclude = _compile(self.exclude)
        self._cache: dict[tuple[str, str], bool] = {}

    def __call__(self, db: str, table: str) -> bool:
        key = (db, table)
        hit = self._cache.get(key)
        if hit is None:
            name = f"{db}.{table}"
            hit = (
                db not in SYSTEM_SCHEMAS
                and self._include.match(name) is not None
                and self._exclude.match(name) is None
            )
            self._cache[key] = hit
        return hit


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
