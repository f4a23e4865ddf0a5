"""The consumer side: a "popular articles" ranking kept from the events alone.

score = 1 per view + 3 per like + 5 per comment, over a sliding window (default one hour).
Events are de-duplicated by their event id header, so a re-delivered event counts once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

WEIGHTS = {"ArticleViewed": 1, "ArticleLiked": 3, "ArticleCommented": 5}


class PopularArticles:
    def __init__(self, window: dt.timedelta = dt.timedelta(hours=1)) -> None:
        self.window = window
        self.seen: set[str] = set()
        self.titles: dict[int, str] = {}
        self._hits: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)

    def apply(self, event_id: str, event_type: str, payload: dict) -> bool:
        """Count one event; False when it was seen before (a duplicate delivery)."""
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        article = int(payload["article_id"])
        if event_type == "ArticleCreated":
            self.titles[article] = payload["title"]
        weight = WEIGHTS.get(event_type)
        if weight:
            self._hits[article].append((dt.datetime.fromisoformat(payload["at"]), weight))
        return True

    def scores(self, now: dt.datetime) -> dict[int, int]:
        since = now - self.window
        return {
            a: total
            for a, hits in self._hits.items()
            if (total := sum(w for at, w in hits if at >= since))
        }

    def top(self, n: int, now: dt.datetime) -> list[tuple[int, int]]:
        return sorted(self.scores(now).items(), key=lambda kv: (-kv[1], kv[0]))[:n]
