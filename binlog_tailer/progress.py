"""Progress where a person watches: a live line on a terminal while the service catches up
(rows/s, lag, bytes behind, ETA), cleared when it has; off a terminal, a periodic log line."""

from __future__ import annotations

import logging
import threading
import time

from binlog_tailer.logs import ConsoleHandler
from binlog_tailer.monitor import Monitor
from binlog_tailer.pipeline import Pipeline

log = logging.getLogger("binlog_tailer.progress")

# catching up: this far behind the server's end of binlog, or this much lag
CATCHUP_BYTES = 256 << 10
CATCHUP_LAG_SECONDS = 5.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # not reached


def human_seconds(s: float) -> str:
    s = int(s + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def eta_seconds(behind: int | None, read_rate: float | None) -> float | None:
    if not behind or not read_rate or read_rate <= 0:
        return None
    return behind / read_rate


def live_line(rows_per_s: float, lag: float, behind: int | None, eta: float | None) -> str:
    parts = [f"catching up: {rows_per_s:,.0f} rows/s", f"lag {lag:.1f} s"]
    if behind is not None:
        parts.append(f"{human_bytes(behind)} behind")
    parts.append(f"ETA {human_seconds(eta)}" if eta is not None else "ETA ?")
    return ", ".join(parts)


class Progress:
    def __init__(
        self,
        pipeline: Pipeline,
        monitor: Monitor | None,
        console: ConsoleHandler | None,
        log_every: float,
    ) -> None:
        self.pipeline = pipeline
        self.monitor = monitor
        self.console = console  # None: off a terminal, log lines instead
        self.every = 1.0 if console is not None else log_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-tailer-progress")
        self._thread.daemon = True
        self._last = (time.monotonic(), 0, 0)  # (when, rows, records)
        self._catching_since: tuple[float, int] | None = None

    def start(self) -> None:
        if self.every > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self.console is not None:
            self.console.show("")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception:  # a progress line is not worth a traceback, nor a stop
                log.debug("progress failed", exc_info=True)

    def tick(self) -> None:
        p, m = self.pipeline, self.monitor
        now, rows, records = time.monotonic(), p.rows, p.records
        then, rows0, records0 = self._last
        self._last = (now, rows, records)
        rate = (rows - rows0) / (now - then) if now > then else 0.0
        lag = p.stats.lag_seconds(time.time() * 1000)
        behind = m.behind if m is not None else None
        if self.console is None:
            if rows != rows0 or records != records0:
                log.info(
                    "progress: %d rows (%.0f/s), %d records, lag %.1f s, %s behind,"
                    " checkpoint %s",
                    rows, rate, records, lag,
                    human_bytes(behind) if behind is not None else "? bytes",
                    p.checkpoint or "not saved yet",
                )  # fmt: skip
            return
        snapshot = p.snapshot.progress if p.snapshot is not None else None
        if snapshot is not None and snapshot.table:
            self.console.show(snapshot.line())
            return
        if (behind or 0) > CATCHUP_BYTES or lag > CATCHUP_LAG_SECONDS:
            if self._catching_since is None:
                self._catching_since = (now, rows0)
            eta = eta_seconds(behind, m.read_rate if m is not None else None)
            self.console.show(live_line(rate, lag, behind, eta))
        elif self._catching_since is not None:
            began, rows_then = self._catching_since
            self._catching_since = None
            self.console.show("")
            log.info("caught up: %d rows in %.0f s", rows - rows_then, now - began)
