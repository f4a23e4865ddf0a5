"""Command line: argument parsing, logging set-up, signals, exit codes (the only place that exits).

Exit codes: 0 success (also after a clean SIGTERM/SIGINT drain), 1 runtime error
(MySQL, Kafka, checkpoint), 2 invalid settings or arguments, 3 a preflight check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from binlog_tailer import __version__
from binlog_tailer.checkpoint import CheckpointStore
from binlog_tailer.errors import BinlogTailerError, ConfigError
from binlog_tailer.heap import freeze_startup_objects
from binlog_tailer.logs import ConsoleHandler, setup_logging
from binlog_tailer.position import BinlogPosition, parse_position, parse_time
from binlog_tailer.settings import Settings, load_settings

if TYPE_CHECKING:
    from binlog_tailer.health import Health
    from binlog_tailer.pipeline import Pipeline
    from binlog_tailer.relay.relay import Relay
    from binlog_tailer.source import BinlogSource

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_CHECK_FAILED = 3

log = logging.getLogger("binlog_tailer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="binlog-tailer",
        description="Tail the MySQL/MariaDB binlog and publish committed changes to Kafka.",
        epilog="Settings come from BINLOG_TAILER_* environment variables and an optional"
        " --config TOML file; see the README.",
    )
    parser.add_argument("--version", action="version", version=f"binlog-tailer {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the service")
    run.add_argument(
        "--from",
        dest="start",
        metavar="POSITION",
        help="replay from FILE:OFFSET, a GTID set, a time (2026-11-25T09:00:00Z: the first"
        " transaction committed at or after it), 'earliest' or 'latest' instead of the stored"
        " checkpoint",
    )

    offsets = sub.add_parser("offsets", help="show, set or reset the stored position")
    osub = offsets.add_subparsers(dest="action", metavar="ACTION", required=True)
    osub.add_parser("show", help="print the stored position as JSON")
    oset = osub.add_parser(
        "set", help="store POSITION (FILE:OFFSET, a GTID set, or a time: 2026-11-25T09:00:00Z)"
    )
    oset.add_argument("position")
    osub.add_parser("reset", help="forget the stored position")

    _add_outbox_parser(sub)
    _add_snapshot_parser(sub)
    sub.add_parser(
        "relay",
        help="run the polling relay of the outbox tables (run with outbox.source = poll)",
    )
    sub.add_parser("check", help="preflight: server settings, privileges, Kafka")
    sub.add_parser("settings", help="print the effective settings as JSON, secrets masked")
    return parser


def _add_outbox_parser(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="outbox housekeeping")
    xsub = outbox.add_subparsers(dest="action", metavar="ACTION", required=True)
    prune = xsub.add_parser(
        "prune",
        help="delete outbox rows older than prune.retention_hours that are published",
    )
    prune.add_argument("--dry-run", action="store_true", help="count the rows, delete nothing")
    prune.add_argument(
        "--wait",
        dest="wait_seconds",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the checkpoint to pass the rows (binlog path; default 60)",
    )


def _add_snapshot_parser(sub: Any) -> None:
    snap = sub.add_parser(
        "snapshot",
        help="ask the running service to read tables now (on-demand snapshot); 'snapshot"
        " status' shows progress, 'snapshot stop' ends it",
    )
    snap.add_argument("tables", nargs="+", metavar="TABLE", help="db.table, or: status, stop")
    snap.add_argument("--where", metavar="SQL", help="read only the rows matching this condition")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"not a number of seconds (0-86400): {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return EXIT_OK
    try:
        overrides = {"outbox": {"source": "poll"}} if args.command == "relay" else {}
        settings = load_settings(args.config, **overrides)
        console = setup_logging(settings.log_level, settings.log_format)
        if args.command == "run":
            return _run(settings, args.start, console)
        if args.command == "relay":
            return _relay(settings)
        if args.command == "offsets":
            return _offsets(settings, args)
        if args.command == "check":
            return _check(settings)
        if args.command == "outbox":
            return _prune(settings, args.dry_run, args.wait_seconds)
        if args.command == "snapshot":
            return _snapshot(settings, args.tables, args.where)
        if args.command == "settings":
            print(json.dumps(settings.masked(), indent=2))
            return EXIT_OK
    except ConfigError as exc:
        print(f"binlog-tailer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BinlogTailerError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    parser.error(f"unknown command {args.command}")
    return EXIT_CONFIG  # not reached


def _store(settings: Settings) -> CheckpointStore:
    from binlog_tailer.service import checkpoint_store

    return checkpoint_store(settings)


def _offsets(settings: Settings, args: argparse.Namespace) -> int:
    if settings.outbox.source == "poll":
        raise ConfigError(
            "the polling relay (outbox.source = poll) stores no position: the rows still in"
            " the outbox table (relay.after_publish = mark: not yet sent) are what it publishes"
        )
    store = _store(settings)
    if args.action == "show":
        pos = store.load()
        print(json.dumps({"store": store.describe(), "position": pos.to_dict() if pos else None}))
    elif args.action == "set":
        stored = store.load()
        pos = _position(settings, args.position)
        if stored is not None and stored.signals is not None:  # signals applied stay applied
            pos = dataclasses.replace(pos, signals=stored.signals)
        store.save(pos)
        print(f"stored {pos} in {store.describe()}")
    else:
        store.reset()
        print(f"reset {store.describe()}")
    return EXIT_OK


def _snapshot(settings: Settings, tables: list[str], where: str | None) -> int:
    from binlog_tailer.snapshot import command

    if tables == ["status"]:
        print(command.status(settings, _store(settings)))
    elif tables == ["stop"]:
        print(command.request(settings, "stop", (), None))
    else:
        print(command.request(settings, "snapshot", tuple(tables), where))
    return EXIT_OK


def _prune(settings: Settings, dry_run: bool, wait_seconds: float) -> int:
    from binlog_tailer.prune import Pruner

    store = _store(settings) if settings.outbox.source == "binlog" else None
    pruner = Pruner(settings, store, dry_run=dry_run, wait_seconds=wait_seconds)
    pruner.run(lambda pruned: print(pruned, flush=True))
    return EXIT_OK


def _check(settings: Settings) -> int:
    from binlog_tailer.preflight import run_checks

    findings = run_checks(settings, _store(settings))
    for f in findings:
        print(f)
    failed = sum(not f.ok for f in findings)
    print(f"{failed} problem(s) found" if failed else "all checks passed")
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _start_position(
    settings: Settings, start: str | None, stored: BinlogPosition | None
) -> BinlogPosition:
    from binlog_tailer.server import connect, earliest_position, latest_position

    snapshot = _snapshot_start(settings, start, stored)
    if snapshot is not None:
        return snapshot
    if stored is not None and stored.snapshot is not None and settings.snapshot.mode == "never":
        log.warning("snapshot.mode = never: the unfinished %s is dropped", stored.snapshot)
        stored = dataclasses.replace(stored, snapshot=None)
    choice = start or (None if stored is not None else settings.initial_position)
    if choice is None:
        assert stored is not None
        return stored
    if choice in ("earliest", "latest"):
        with connect(settings.mysql) as conn:
            chosen = earliest_position(conn) if choice == "earliest" else latest_position(conn)
    else:
        chosen = _position(settings, choice)
    if stored is not None and stored.signals is not None:  # signals applied stay applied
        chosen = dataclasses.replace(chosen, signals=stored.signals)
    return chosen


def _start_reason(
    settings: Settings, start: str | None, stored: BinlogPosition | None, position: BinlogPosition
) -> str:
    """Why the run starts where it does, for the log."""
    if start:
        return "--from"
    if position.snapshot is not None and (stored is None or stored.snapshot is None):
        return f"the end of the binlog: snapshot.mode={settings.snapshot.mode}"
    if stored is not None:
        return "checkpoint"
    return f"initial_position={settings.initial_position}"


def _snapshot_start(
    settings: Settings, start: str | None, stored: BinlogPosition | None
) -> BinlogPosition | None:
    """Where a run starts that begins a snapshot (None: it begins none): the end of the binlog
    now, with every captured data table to read. On a first run with snapshot.mode initial or
    when_needed; with when_needed also when the server no longer has the stored position."""
    from binlog_tailer.filtering import TableFilter
    from binlog_tailer.server import binlog_files, connect, latest_position
    from binlog_tailer.snapshot.reader import ChunkReader
    from binlog_tailer.snapshot.state import SnapshotState

    mode = settings.snapshot.mode
    if mode == "never" or start is not None:
        return None
    with connect(settings.mysql) as conn:
        if stored is not None:
            if mode != "when_needed" or stored.file is None or stored.file in binlog_files(conn):
                return None
            log.warning(
                "THE STORED POSITION %s IS GONE: the server purged %s. snapshot.mode ="
                " when_needed: every captured data table is read again, and streaming goes on"
                " from the end of the binlog. Changes made while the position was gone reach"
                " Kafka only as the rows' current state (rows deleted meanwhile are not seen).",
                stored,
                stored.file,
            )
        position = latest_position(conn)
    reader = ChunkReader(settings.mysql, settings.snapshot.chunk_size, settings.snapshot.keys)
    try:
        include, exclude = settings.captured_tables()
        tables = reader.tables(TableFilter(include, exclude), TableFilter(settings.outbox.tables))
    finally:
        reader.close()
    if not tables:
        log.warning("snapshot.mode = %s, but no captured data table exists to read", mode)
        return position
    log.info("snapshot: %d table(s) to read: %s", len(tables), ", ".join(tables))
    signals = stored.signals if stored is not None else None
    return dataclasses.replace(position, snapshot=SnapshotState(tuple(tables)), signals=signals)


def _position(settings: Settings, text: str) -> BinlogPosition:
    """FILE:OFFSET, a GTID set, or a time: the boundary before the first transaction committed
    at or after it (found in the binlog, said in the log)."""
    when = parse_time(text)
    if when is None:
        return parse_position(text)
    from binlog_tailer.timestart import describe, position_at

    found = position_at(settings.mysql, when)
    log.info("%s", describe(when, found))
    return found.position


def _server_ready(settings: Settings) -> bool:
    """The checks of `check` on the server's version and global settings, before streaming.
    An unreachable server is left to the stream's reconnect policy."""
    from binlog_tailer.errors import SourceUnavailable
    from binlog_tailer.preflight import server_setting_findings
    from binlog_tailer.server import connect

    try:
        with connect(settings.mysql) as conn:
            failed = [f for f in server_setting_findings(conn, settings) if not f.ok]
    except SourceUnavailable as exc:
        log.warning("cannot check the server's settings now (%s); streaming will retry", exc)
        return True
    for finding in failed:
        log.error("the server is not set up for change data capture: %s", finding)
    return not failed


def _stop_on_signals(source: BinlogSource, pipeline: Pipeline) -> None:
    """SIGTERM/SIGINT: drain and checkpoint; a second one: exit at once."""
    signals = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            os._exit(130)  # second signal: stop now, the checkpoint is still consistent
        log.info("%s: draining and checkpointing", signal.Signals(signum).name)
        source.stop()  # ends the stream at the next transaction boundary
        pipeline.stop()  # unless Kafka's full queue holds that up: then at once

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


@contextlib.contextmanager
def _endpoints(settings: Settings) -> Iterator[Health]:
    """/metrics, /healthz and /readyz from the start (a port in use fails at once)."""
    from binlog_tailer.health import Health

    health = Health(settings)
    m = settings.http
    if not m.enabled:
        yield health
        return
    from binlog_tailer.endpoints import Endpoints
    from binlog_tailer.metrics import registry

    endpoints = Endpoints(m.host, m.port, health, registry(health))
    endpoints.start()
    try:
        yield health
    finally:
        endpoints.close()


@contextlib.contextmanager
def _watched(
    settings: Settings,
    health: Health,
    pipeline: Pipeline,
    source: BinlogSource,
    start: BinlogPosition,
    console: ConsoleHandler,
) -> Iterator[None]:
    """The side sampler behind metrics and readiness, and the progress line or log."""
    from binlog_tailer.health import Running
    from binlog_tailer.monitor import Monitor
    from binlog_tailer.progress import Progress

    live = sys.stderr.isatty() and settings.log_format == "text"
    interval = settings.http.sample_interval_seconds
    monitor = None
    if settings.http.enabled or live or settings.progress_log_seconds > 0:
        monitor = Monitor(
            settings.mysql,
            settings.kafka,
            min(interval, 1.0) if live else interval,
            source.read_position,
            health.checkpoint,
        )
    health.attach(Running(pipeline, source, monitor, start))
    progress = Progress(pipeline, monitor, console if live else None, settings.progress_log_seconds)
    if monitor is not None:
        monitor.start()
    progress.start()
    try:
        yield
    finally:
        progress.stop()
        if monitor is not None:
            monitor.stop()


def _run(settings: Settings, start: str | None, console: ConsoleHandler) -> int:
    if settings.outbox.source == "poll":
        if start is not None:
            raise ConfigError(
                "--from is a binlog position: the polling relay (outbox.source = poll) always"
                " publishes the rows still in the outbox table"
            )
        return _relay(settings)
    if start is not None and start not in ("earliest", "latest") and parse_time(start) is None:
        parse_position(start)  # a bad --from is a usage error before anything connects
    with _endpoints(settings) as health:
        return _stream(settings, start, console, health)


@contextlib.contextmanager
def _relay_endpoints(settings: Settings, relay: Relay) -> Iterator[None]:
    m = settings.http
    if not m.enabled:
        yield
        return
    from binlog_tailer.endpoints import Endpoints
    from binlog_tailer.relay.observe import RelayHealth, relay_registry

    # the loop's longest silences: a connect, a wait for every acknowledgement of a batch
    bound = 30 + settings.mysql.connect_timeout_seconds + relay.ack_timeout
    health = RelayHealth(relay, bound + settings.relay.standby_check_seconds)
    endpoints = Endpoints(m.host, m.port, health, relay_registry(relay, health))
    endpoints.start()
    try:
        yield
    finally:
        endpoints.close()


def _relay(settings: Settings) -> int:
    from binlog_tailer.service import build_relay

    relay = build_relay(settings)
    signals = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            os._exit(130)  # second signal: stop now; unremoved rows are published again
        log.info("%s: finishing the batch in hand", signal.Signals(signum).name)
        relay.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "binlog-tailer %s: polling relay of %s (outbox.source = poll)",
        __version__,
        ", ".join(settings.outbox.tables),
    )
    with _relay_endpoints(settings, relay):
        freeze_startup_objects()
        relay.run()
    relay.publisher.flush(10)
    log.info(
        "stopped: %d rows relayed in %d batches, %d records (%d dead letters)",
        relay.rows,
        relay.batches,
        relay.records,
        relay.dead_lettered,
    )
    return EXIT_OK


def _stream(settings: Settings, start: str | None, console: ConsoleHandler, health: Health) -> int:
    from binlog_tailer.service import build, new_publisher

    store = _store(settings)
    # Exactly-once: fence an older instance before reading the position, so that no commit
    # of it can follow the read.
    publisher = new_publisher(settings) if settings.delivery == "exactly_once" else None
    stored = store.load()
    if not _server_ready(settings):
        return EXIT_CHECK_FAILED
    position = _start_position(settings, start, stored)
    if position != stored and publisher is None:
        # Where this run starts ('latest' is resolved to a position now) is stored before
        # anything is read: a stop before the first checkpoint must not let the next run
        # resolve 'latest' again, past whatever was committed in between. (Exactly-once
        # commits it in a first Kafka transaction of its own.)
        store.save(position)
    pipeline, source = build(settings, position, store, publisher, stored)
    _stop_on_signals(source, pipeline)
    try:
        pipeline.prepare()  # exactly-once: the start position is committed before streaming
    except BaseException:
        source.close()
        raise
    log.info(
        "binlog-tailer %s: streaming from %s (%s), include=%s exclude=%s",
        __version__,
        position,
        _start_reason(settings, start, stored, position),
        *settings.captured_tables(),
    )
    try:
        with _watched(settings, health, pipeline, source, position, console):
            freeze_startup_objects()
            pipeline.run()
    finally:
        source.close()
        if pipeline.snapshot is not None:
            pipeline.snapshot.close()
    log.info(
        "stopped: %d rows, %d records (%d dead letters), checkpoint %s",
        pipeline.rows,
        pipeline.records,
        pipeline.dead_lettered,
        pipeline.saved or position,
    )
    txns = pipeline.transactions
    if txns is not None:
        log.info(
            "exactly-once: %d Kafka transactions (%d split a MySQL transaction), %.1f s waiting"
            " for their commits",
            txns.commits,
            txns.splits,
            txns.commit_seconds,
        )
    return EXIT_OK
