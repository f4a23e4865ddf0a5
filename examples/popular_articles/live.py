"""The popular-articles example as a long-running service (docker/compose.yaml runs it).

The board writes views, likes and comments, each with its outbox event in one transaction, at
a steady rate; binlog-tailer, running apart, publishes the events; the consumer keeps the
ranking from them and prints it every few seconds with the events written and consumed.
Settings from the environment: BOARD_MYSQL_HOST, _PORT, _USER, _PASSWORD, _DATABASE (the
database holding the outbox table binlog-tailer captures), BOARD_KAFKA_BOOTSTRAP_SERVERS and
BOARD_TOPIC (where binlog-tailer publishes the article events).

With --writes N it stops after N writes, waits until every event in the outbox table has
been consumed, and exits 0 if all were (1 if not): the check the tests run.

With --relay the outbox table gets the polling relay's columns (binlog-tailer then runs apart
with outbox.source = poll); the relay deletes the rows it published, so --writes N checks the
events this run committed instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import threading
import time

import pymysql

from examples.popular_articles.board import Board, create_schema
from examples.popular_articles.consumer import RankingConsumer


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def connect() -> pymysql.Connection:
    env = os.environ.get
    return pymysql.connect(
        host=env("BOARD_MYSQL_HOST", "127.0.0.1"),
        port=int(env("BOARD_MYSQL_PORT", "3306")),
        user=env("BOARD_MYSQL_USER", "board"),
        password=env("BOARD_MYSQL_PASSWORD", ""),
        database=env("BOARD_MYSQL_DATABASE", "board"),
        charset="utf8mb4",
    )


def ensure_articles(
    conn: pymysql.Connection, board: Board, count: int, relay: bool = False
) -> list[int]:
    """The board's articles, created (each with its event) on the first run."""
    create_schema(conn, relay=relay)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM articles ORDER BY id")
        ids = [int(r[0]) for r in cur.fetchall()]
    conn.commit()
    ids += [board.create_article(f"article #{i}") for i in range(len(ids), count)]
    return ids


def report(consumer: RankingConsumer, written: int, top: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with consumer.lock:
        ranking = consumer.ranking.top(top, now)
        titles = dict(consumer.ranking.titles)
        consumed, duplicates = consumer.consumed, consumer.duplicates
    best = ", ".join(f"{titles.get(a, a)} ({s})" for a, s in ranking) or "none yet"
    say(
        f"{written} business writes, {consumed} events consumed ({duplicates} duplicates ignored);"
        f" popular: {best}"
    )


def reset(conn: pymysql.Connection) -> None:
    """After a failed write: roll back, or reconnect when the connection was lost."""
    try:
        conn.rollback()
        conn.ping(reconnect=True)
    except pymysql.MySQLError:
        pass  # the server is away: the next write fails and tries again


def outbox_ids(conn: pymysql.Connection) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM outbox")
        ids = {r[0] for r in cur.fetchall()}
    conn.commit()
    return ids


# A little over 60 lines: an example read top to bottom (options, board, loop, verdict).
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--articles", type=int, default=12)
    p.add_argument("--rate", type=float, default=5.0, help="business writes per second")
    p.add_argument("--writes", type=int, default=0, help="stop after this many (0: never)")
    p.add_argument("--report-seconds", type=float, default=10.0)
    p.add_argument("--wait-seconds", type=float, default=120.0, help="for the events, at the end")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--relay", action="store_true", help="an outbox table for the polling relay")
    args = p.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    conn = connect()
    board = Board(conn, remember_events=args.relay)
    articles = ensure_articles(conn, board, args.articles, args.relay)
    consumer = RankingConsumer(
        os.environ.get("BOARD_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        os.environ.get("BOARD_TOPIC", "outbox.event.article"),
    )
    consumer.start()
    say(f"{len(articles)} articles; writing {args.rate:g} views, likes and comments a second")
    rng = random.Random()
    popularity = [1.0 / (i + 1) for i in range(len(articles))]  # a few are much more popular
    written, next_report = 0, 0.0
    try:
        while not stop.is_set() and (args.writes == 0 or written < args.writes):
            article, user = rng.choices(articles, popularity)[0], f"user{rng.randrange(100)}"
            kind = rng.random()
            try:
                if kind < 0.7:
                    board.view(article, user)
                elif kind < 0.9:
                    board.like(article, user)
                else:
                    board.comment(article, user, "좋은 글이네요")
                written += 1
            except pymysql.MySQLError as exc:
                say(f"business write failed: {exc}")
                reset(conn)
            if time.monotonic() >= next_report:
                report(consumer, written, args.top)
                next_report = time.monotonic() + args.report_seconds
            stop.wait(1.0 / args.rate)  # pacing of the simulated users
        if args.writes == 0:
            return 0
        # the relay deletes the rows it published: the events this run committed
        expected = set(board.events) if args.relay else outbox_ids(conn)
        deadline = time.monotonic() + args.wait_seconds
        while not expected <= consumer.seen() and not stop.wait(0.5):  # polling the consumer
            if time.monotonic() > deadline:
                break
        lost = len(expected - consumer.seen())
        report(consumer, written, args.top)
        what = "events written" if args.relay else "events in the outbox"
        say(f"{what} {len(expected)}, not consumed {lost}")
        return 0 if lost == 0 else 1
    finally:
        consumer.stop()
        conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
