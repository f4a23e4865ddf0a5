"""End to end on the local stack: board service -> outbox -> binlog-tailer -> Kafka -> ranking.

In the middle of the writes, Kafka is stopped for a while and started again. Not one business
write fails (the service never talks to Kafka), and the ranking catches up once Kafka is back:
every event arrives, and the ranking built from events equals the one the database gives.

With --relay, the outbox table has the polling relay's columns and binlog-tailer runs as the
polling relay (outbox.source = poll) instead of reading the binlog: as a MySQL user of its own
that may only SELECT and DELETE rows of the board's outbox table (least privilege; created
here by the admin user, dropped at the end). The relay deletes each row once Kafka
acknowledged its event, so the events expected are those the board committed, and the outbox
table ends empty.

Run it with examples/popular_articles/run (it starts the local stack first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pymysql

from binlog_tailer.server import latest_position
from examples.popular_articles.board import Board, create_schema
from examples.popular_articles.consumer import RankingConsumer
from examples.popular_articles.ranking import WEIGHTS

ROOT = Path(__file__).resolve().parents[2]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stack_script(name: str, *args: str) -> None:
    r = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"scripts/{name} failed:\n{r.stderr}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--articles", type=int, default=12)
    p.add_argument("--writes", type=int, default=900, help="views, likes and comments")
    p.add_argument("--rate", type=float, default=60.0, help="business writes per second")
    p.add_argument("--outage", type=float, default=6.0, help="seconds Kafka stays down")
    p.add_argument("--top", type=int, default=5)
    p.add_argument(
        "--relay", action="store_true", help="binlog-tailer as the polling relay (no binlog)"
    )
    args = p.parse_args(argv)

    db = f"board_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(
        host=os.environ["BINLOG_TAILER_MYSQL__HOST"],
        port=int(os.environ["BINLOG_TAILER_MYSQL__PORT"]),
        user=os.environ["BT_MYSQL_ADMIN_USER"],
        password=os.environ["BT_MYSQL_ADMIN_PASSWORD"],
        charset="utf8mb4",
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
    end = latest_position(conn)
    create_schema(conn, relay=args.relay)
    workdir = Path(tempfile.mkdtemp(prefix="popular-articles-"))
    relay_user = f"{db}_relay" if args.relay else None
    command, env = _tailer_command(conn, db, workdir, relay_user, f"{end.file}:{end.pos}")
    say(f"database {db}; binlog-tailer log: {workdir / 'tailer.log'}")
    with open(workdir / "tailer.log", "wb") as log:
        tailer = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    consumer = RankingConsumer(
        os.environ["BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS"], f"{db}.article"
    )
    consumer.start()
    board = Board(conn, remember_events=args.relay)
    try:
        failures = _write_through_an_outage(board, args)
        return _report(conn, board, consumer, args, failures)
    finally:
        consumer.stop()
        tailer.send_signal(signal.SIGTERM)
        tailer.wait(60)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
            if relay_user is not None:
                cur.execute("DROP USER IF EXISTS %s@%s", (relay_user, RELAY_HOST))
        conn.close()


def _tailer_command(
    conn: pymysql.Connection, db: str, workdir: Path, relay_user: str | None, start: str
) -> tuple[list[str], dict[str, str]]:
    """binlog-tailer's command line and environment: the binlog path from `start`, or the
    polling relay as `relay_user` (created here, granted only what it needs)."""
    env = {
        **os.environ,
        "BINLOG_TAILER_OUTBOX__TABLES": f"{db}.outbox",
        "BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE": f"{db}.{{aggregate_type}}",
        "BINLOG_TAILER_CHECKPOINT__PATH": str(workdir / "offsets.json"),
        # /metrics on any free port (logged), so that runs side by side do not collide
        "BINLOG_TAILER_HTTP__PORT": os.environ.get("BINLOG_TAILER_HTTP__PORT", "0"),
    }
    command = [sys.executable, "-m", "binlog_tailer", "run"]
    if relay_user is None:  # the binlog path, from where the board starts
        return [*command, "--from", start], env
    password = secrets.token_urlsafe(18)
    say(f"binlog-tailer runs as the polling relay, as MySQL user {relay_user}:")
    for grant in create_relay_user(conn, db, relay_user, password):
        say(f"  {grant}")
    env |= {
        "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
        "BINLOG_TAILER_MYSQL__USER": relay_user,
        "BINLOG_TAILER_MYSQL__PASSWORD": password,
        "BINLOG_TAILER_NAME": db,  # one active relay per name: this run's own
    }
    return command, env


def _write_through_an_outage(board: Board, args: argparse.Namespace) -> int:
    """The simulated users' writes, with Kafka stopped a third of the way through and started
    again `args.outage` seconds later; returns how many business writes failed."""
    rng = random.Random(1)
    failures = 0
    articles = [board.create_article(f"article #{i}") for i in range(args.articles)]
    # a few articles are much more popular than the rest
    popularity = [1.0 / (i + 1) for i in range(len(articles))]
    outage_at, outage_done = args.writes // 3, threading.Event()
    outage: dict[str, float] = {}

    def kafka_outage() -> None:
        outage["down"] = time.monotonic()
        stack_script("dev-down", "kafka")
        say("Kafka is DOWN; the board keeps writing")
        time.sleep(args.outage)  # the outage itself: how long Kafka stays away
        stack_script("dev-up")
        outage["up"] = time.monotonic()
        say("Kafka is back")
        outage_done.set()

    outage_thread = threading.Thread(target=kafka_outage)
    during_outage = 0
    for n in range(args.writes):
        if n == outage_at:
            outage_thread.start()
        article = rng.choices(articles, popularity)[0]
        user = f"user{rng.randrange(100)}"
        try:
            kind = rng.random()
            if kind < 0.7:
                board.view(article, user)
            elif kind < 0.9:
                board.like(article, user)
            else:
                board.comment(article, user, "좋은 글이네요")
        except pymysql.MySQLError as exc:
            failures += 1
            say(f"business write failed: {exc}")
        if "down" in outage and not outage_done.is_set():
            during_outage += 1
        time.sleep(1.0 / args.rate)  # pacing of the simulated users, not synchronisation
    outage_done.wait(120)
    outage_thread.join(120)
    say(
        f"{args.writes} business writes done, {failures} failed,"
        f" {during_outage} of them while Kafka was down"
    )
    return failures


def _report(
    conn: pymysql.Connection,
    board: Board,
    consumer: RankingConsumer,
    args: argparse.Namespace,
    failures: int,
) -> int:
    """Waits for every event, prints the ranking and the verdict; the exit code."""
    if args.relay:  # the relay deletes what it published: the board knows its events
        expected = set(board.events)
    else:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM outbox")
            expected = {r[0] for r in cur.fetchall()}
    deadline = time.monotonic() + 180
    while not expected <= consumer.seen() and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the consumer thread's progress
    lost = expected - consumer.seen()
    say(
        f"events written {len(expected)}, consumed {consumer.consumed}"
        f" ({consumer.duplicates} duplicates ignored), lost {len(lost)}"
    )
    left = outbox_rows_left(conn, deadline) if args.relay else 0
    if args.relay:
        say(f"outbox rows left {left} (the relay deletes a row once Kafka acknowledged it)")

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.id, a.views + 3 * a.likes + 5 * (SELECT COUNT(*) FROM comments c"
            " WHERE c.article_id = a.id) FROM articles a"
        )
        truth = {a: s for a, s in cur.fetchall() if s}
    with consumer.lock:
        from_events = consumer.ranking.scores(now)
        top = consumer.ranking.top(args.top, now)
        titles = dict(consumer.ranking.titles)
    print(
        f"\npopular articles, last hour (view {WEIGHTS['ArticleViewed']},"
        f" like {WEIGHTS['ArticleLiked']}, comment {WEIGHTS['ArticleCommented']}):"
    )
    for rank, (article, score) in enumerate(top, 1):
        print(f"  {rank}. {titles.get(article, article)!s:<14} score {score}")
    agree = from_events == truth
    print(f"\nranking from events {'equals' if agree else 'DIFFERS from'} the database's")
    ok = failures == 0 and not lost and agree and left == 0
    print("RESULT: " + ("no business write failed, no event lost" if ok else "FAILED"))
    return 0 if ok else 1


RELAY_HOST = "127.0.0.1"  # where the local stack's users connect from


def create_relay_user(conn: pymysql.Connection, db: str, user: str, password: str) -> list[str]:
    """A user that may read and delete rows of `db`.outbox and nothing else: what the polling
    relay needs (with relay.after_publish = mark: SELECT and UPDATE). Its grants, as shown."""
    with conn.cursor() as cur:
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, RELAY_HOST, password))
        cur.execute(f"GRANT SELECT, DELETE ON `{db}`.`outbox` TO %s@%s", (user, RELAY_HOST))
        cur.execute("SHOW GRANTS FOR %s@%s", (user, RELAY_HOST))
        # MariaDB shows the password's hash with the USAGE grant: never printed
        return [re.sub(r" IDENTIFIED BY PASSWORD '[^']*'", "", r[0]) for r in cur.fetchall()]


def outbox_rows_left(conn: pymysql.Connection, deadline: float) -> int:
    """Rows still in the outbox once the relay deleted what it published (or at `deadline`)."""
    while True:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM outbox")
            left = int(cur.fetchone()[0])
        conn.commit()  # a fresh snapshot for the next look
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.2)  # polling the relay's progress


if __name__ == "__main__":
    raise SystemExit(main())
