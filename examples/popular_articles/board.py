"""A tiny board service: every business write also writes an outbox event, in one transaction.

This is the design note's case: the service never talks to Kafka. If Kafka is down, nothing
here fails; binlog-tailer publishes the events once it is back.
"""

from __future__ import annotations

import datetime as dt

import pymysql

from binlog_tailer.outbox import outbox_ddl, write_event

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS articles (
         id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL,
         views INT NOT NULL DEFAULT 0, likes INT NOT NULL DEFAULT 0,
         created_at DATETIME(6) NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS comments (
         id INT AUTO_INCREMENT PRIMARY KEY, article_id INT NOT NULL, author VARCHAR(50),
         body TEXT, created_at DATETIME(6) NOT NULL, KEY (article_id))""",
    outbox_ddl(),
]


def create_schema(conn: pymysql.Connection) -> None:
    with conn.cursor() as cur:
        for statement in SCHEMA:
            cur.execute(statement)
    conn.commit()


class Board:
    def __init__(self, conn: pymysql.Connection) -> None:
        self.conn = conn

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def create_article(self, title: str) -> int:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO articles (title, created_at) VALUES (%s, %s)", (title, now))
            article_id = int(cur.lastrowid)
            write_event(
                cur,
                "article",
                article_id,
                "ArticleCreated",
                {"article_id": article_id, "title": title, "at": now.isoformat()},
            )
        self.conn.commit()
        return article_id

    def view(self, article_id: int, user: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("UPDATE articles SET views = views + 1 WHERE id = %s", (article_id,))
            write_event(
                cur,
                "article",
                article_id,
                "ArticleViewed",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()

    def like(self, article_id: int, user: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute("UPDATE articles SET likes = likes + 1 WHERE id = %s", (article_id,))
            write_event(
                cur,
                "article",
                article_id,
                "ArticleLiked",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()

    def comment(self, article_id: int, user: str, body: str) -> None:
        now = self._now()
        with self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO comments (article_id, author, body, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (article_id, user, body, now),
            )
            write_event(
                cur,
                "article",
                article_id,
                "ArticleCommented",
                {"article_id": article_id, "user": user, "at": now.isoformat()},
            )
        self.conn.commit()
