"""A background writer for load and fault tests: committed transactions of a few rows each."""

from __future__ import annotations

import random
import threading

from tests.integration.stack import Stack


class Writer(threading.Thread):
    """Inserts rows `id = 1, 2, ...` into `table`, 1-5 per transaction, until stopped or
    `max_rows` is reached. `committed` holds the ids whose transaction committed."""

    def __init__(
        self,
        stack: Stack,
        database: str,
        table: str = "events",
        max_rows: int = 20_000,
        pause: float = 0.0,
    ):
        super().__init__(daemon=True)
        self.stack, self.database, self.table, self.max_rows = stack, database, table, max_rows
        self.pause = pause  # seconds between transactions: spreads the load over the test
        self.committed: list[int] = []
        self.transactions = 0
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    @staticmethod
    def create_table(stack: Stack, database: str, table: str = "events") -> None:
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, body VARCHAR(200))")

    def run(self) -> None:
        rng = random.Random(7)
        next_id = 1
        try:
            with self.stack.admin(self.database) as conn, conn.cursor() as cur:
                while not self._stop_event.is_set() and next_id <= self.max_rows:
                    n = rng.randint(1, 5)
                    ids = list(range(next_id, next_id + n))
                    conn.begin()
                    cur.executemany(
                        f"INSERT INTO {self.table} VALUES (%s, %s)",
                        [(i, f"row {i} " + "x" * 50) for i in ids],
                    )
                    conn.commit()
                    self.committed.extend(ids)
                    self.transactions += 1
                    next_id += n
                    if self.pause:
                        self._stop_event.wait(self.pause)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def wait_rows(self, n: int, timeout: float = 60) -> None:
        from tests.integration.stack import wait_until

        # a target past max_rows is never reached: say so instead of timing out
        assert n <= self.max_rows, f"waiting for {n} rows of a writer that stops at {self.max_rows}"
        wait_until(lambda: len(self.committed) >= n or self.error is not None, timeout, f"{n} rows")

    def finish(self) -> list[int]:
        self._stop_event.set()
        self.join(60)
        assert not self.is_alive(), "writer did not stop"
        if self.error is not None:
            raise self.error
        return self.committed
