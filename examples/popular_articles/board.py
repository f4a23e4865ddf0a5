"""A tiny board service: every business write also writes an outbox event, in one transaction.

This is the design note's case: the service never talks to Kafka. If Kafka is down, nothing
here fails; binlog-tailer publishes the events once it is back (from the binlog, or, with a
relay-shaped outbox table, as the polling relay that reads and deletes the rows).
"""

from __future__ import annotations

import datetime as dt

import pymysql

from binlog_tailer.outbox import outbox_ddl, write_event

TABLES = [
    """CREATE TABLE IF NOT EXISTS articles (
         id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL,
         views INT NOT NULL DEFAULT 0, likes INT NOT NULL DEFAULT 0,
         created_at DATETIME(6) NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS comments (
         id INT AUTO_INCREMENT PRIMARY KEY, article_id INT NOT NULL, author VARCHAR(50),
         body TEXT, created_at DATETIME(6) NOT NULL, KEY (article_id))""",
]


def create_schema(conn: pymysql.Connection, relay: bool = False) -> None:
    """The board's tables and its outbox (`relay`: with the polling relay's columns)."""
    with conn.cursor() as cur:
        for statement in [*TABLES, outbox_ddl(relay=relay)]:
            cur.execute(statement)
    conn.commit()


class Board:
    def __init__(self, conn: pymysql.Connection, remember_events: bool = False) -> None:
        self.conn = conn
        # `remember_events`: the ids of the events committed, to check that each arrived
        # when the outbox table cannot tell (the polling relay deletes the rows it published)
        self.remember_events = remember_events
        self.events: list[str] = []

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def create_article(self, title: str) -> int:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO articles (title, created_at) VALUES (%s, %s)", (title, now))
            article_id = int(cur.lastrowid)
            event_id = write_event(
                cur,
                "article",
                article_id,
                "ArticleCreated",
                {"article_id": article_id, "title": title, "at": now.isoformat()},
            )
        self.conn.commit()
        self._committed(event_id)
        return article_id

    def view(self, article_id: int, user: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("UPDATE articles SET views = views + 1 WHERE id = %s", (article_id,))
            event_id = write_event(
                cur,
                "article",
                article_id,
                "ArticleViewed",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()
        self._committed(event_id)

    def like(self, article_id: int, user: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("UPDATE articles SET likes = likes + 1 WHERE id = %s", (article_id,))
            event_id = write_event(
                cur,
                "article",
                article_id,
                "ArticleLiked",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()
        self._committed(event_id)

    def comment(self, article_id: int, user: str, body: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO comments (article_id, author, body, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (article_id, user, body, now),
            )
            event_id = write_event(
                cur,
                "article",
                article_id,
                "ArticleCommented",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()
        self._committed(event_id)

    def _committed(self, event_id: str) -> None:
        if self.remember_events:
            self.events.append(event_id)
