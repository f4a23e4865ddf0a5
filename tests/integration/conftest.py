"""Fixtures for tests against the real local stack (scripts/dev-up).

A server that does not answer fails the run: these tests are never skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.stack import SERVERS, Stack, unique_name


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _shared_servers_guard(request) -> Iterator[None]:
    """Tests run in parallel workers against shared servers. A test that purges a server's
    binary logs or changes its global settings (marked `purges_binlogs`,
    `changes_server_globals`) runs alone on that server; one that stops Kafka (`stops_kafka`)
    runs alone. Every other test holds both locks shared."""
    names = request.fixturenames
    if "stack" not in names and "kafka_bootstrap" not in names:
        yield
        return
    if "kafka_bootstrap" in names:  # set up before the locks: it takes Kafka's briefly
        request.getfixturevalue("kafka_bootstrap")
    locks = [(_KAFKA_LOCK, ("stops_kafka",))]
    if "stack" in names:
        port = str(request.getfixturevalue("stack").mysql_port)
        locks.append((port, ("purges_binlogs", "changes_server_globals")))
    with contextlib.ExitStack() as held:
        for name, markers in locks:
            exclusive = any(request.node.get_closest_marker(m) is not None for m in markers)
            held.enter_context(_server_lock(name, exclusive))
        yield


# One per broker: test runs against stacks of their own (other ports) do not wait for each other
_KAFKA_LOCK = "kafka-" + Stack().kafka_bootstrap.rsplit(":", 1)[1]


@contextlib.contextmanager
def _server_lock(name: str, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock between processes (flock), writer first: once a test waits for
    it exclusively, new tests wait behind it, so it waits only for the tests already running."""
    base = Path(tempfile.gettempdir()) / f"binlog-tailer-tests-{name}"
    with open(f"{base}.turnstile", "a") as turnstile, open(f"{base}.lock", "a") as lock:
        if exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def checked_stack(server: str) -> Stack:
    """The local stack with `server` as its source; fails (never skips) when it is down."""
    s = Stack(server=server)
    with _server_lock(_KAFKA_LOCK, exclusive=False):  # not while a test has stopped Kafka
        down = _not_answering(s)
    if down:
        pytest.fail(f"{', '.join(down)} not answering: start the local stack with scripts/dev-up")
    return s


def _not_answering(s: Stack) -> list[str]:
    return [
        f"{name} on 127.0.0.1:{port}"
        for name, port in (
            (s.server, s.mysql_port),
            ("Kafka", int(s.kafka_bootstrap.rsplit(":", 1)[1])),
        )
        if not _port_answers(port)
    ]


@pytest.fixture(scope="session", params=SERVERS)
def stack(request) -> Stack:
    """The local stack with one of its source servers: every test using it runs on each."""
    return checked_stack(request.param)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The local Kafka broker alone (tests of Kafka itself need no source server)."""
    bootstrap = Stack().kafka_bootstrap
    with _server_lock(_KAFKA_LOCK, exclusive=False):  # not while a test has stopped Kafka
        answers = _port_answers(int(bootstrap.rsplit(":", 1)[1]))
    if not answers:
        pytest.fail(
            f"Kafka on {bootstrap} not answering: start the local stack with scripts/dev-up"
        )
    return bootstrap


@pytest.fixture
def database(stack: Stack) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = unique_name("t")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield name
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.list_topics(timeout=30)  # fails here, clearly, if the broker is not serving metadata
    return admin


@pytest.fixture
def new_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Create fresh topics for one test (deleted afterwards): new_topic(partitions=1), or with
    a given name and topic configs: new_topic(name="x", config={"max.message.bytes": "20000"})."""
    created: list[str] = []

    def make(
        partitions: int = 1,
        prefix: str = "t",
        name: str | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        name = name or unique_name(prefix)
        topic = NewTopic(name, partitions, 1, config=config or {})
        futures = kafka_admin.create_topics([topic], operation_timeout=30)
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for f in kafka_admin.delete_topics(created, operation_timeout=30).values():
            f.result(timeout=30)


@pytest.fixture
def tailer(stack: Stack, database: str, tmp_path):
    """A binlog-tailer service capturing `database`, run as a real subprocess."""
    from tests.integration.tailer import Tailer

    t = Tailer(stack, tmp_path, database)
    yield t
    t.close()
