"""TLS to MySQL and TLS and SASL to Kafka, against the stack's real servers: MySQL 9.x and
MariaDB 11.x with the stack's test certificate (it names DNS:localhost only), MariaDB 10.11
without TLS, and Kafka's TLS and SASL_SSL (SCRAM-SHA-512) listeners."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.integration.conftest import checked_stack
from tests.integration.stack import SERVERS, Stack, consume, tls_facts, unique_name
from tests.integration.tailer import Tailer

TLS = tls_facts()


@pytest.fixture(scope="session", params=TLS.servers)
def stack(request) -> Stack:
    """The stack's servers with TLS, reached as `localhost`, the name their certificate has
    (overrides conftest's `stack`, so `database` and the locks work as everywhere)."""
    return dataclasses.replace(checked_stack(request.param), mysql_host="localhost")


@pytest.fixture
def tls_user(stack: Stack) -> Iterator[tuple[str, str]]:
    """A CDC user the server refuses unless the connection is encrypted (REQUIRE SSL): a run
    that streams as this user proves, on the server's side, that every connection it made
    (the binlog stream's included) was TLS."""
    user, password = unique_name("tls")[:28], "tls-user-pw-" + unique_name("p")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s REQUIRE SSL", (password,))
        cur.execute(
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'127.0.0.1'"
        )
    yield user, password
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


def mysql_tls(mode: str, ca: str | None = TLS.ca, **extra: str) -> dict[str, str]:
    env = {"BINLOG_TAILER_MYSQL__SSL_MODE": mode, **extra}
    if ca is not None:
        env["BINLOG_TAILER_MYSQL__SSL_CA"] = ca
    return env


def kafka_tls(protocol: str, ca: str = TLS.ca, password: str = TLS.sasl_password) -> dict[str, str]:
    env = {
        "BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS": TLS.kafka_ssl,
        "BINLOG_TAILER_KAFKA__SECURITY_PROTOCOL": protocol,
        "BINLOG_TAILER_KAFKA__SSL_CA_LOCATION": ca,
    }
    if protocol == "SASL_SSL":
        env |= {
            "BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS": TLS.kafka_sasl,
            "BINLOG_TAILER_KAFKA__SASL_MECHANISM": TLS.sasl_mechanism,
            "BINLOG_TAILER_KAFKA__SASL_USERNAME": TLS.sasl_user,
            "BINLOG_TAILER_KAFKA__SASL_PASSWORD": password,
        }
    return env


def one_clear_line(output: str, expected: str) -> str:
    """The one error line of a failed command; nothing else of it is an error, no traceback,
    no raw librdkafka log line."""
    assert "Traceback" not in output and "%3|" not in output, output
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output
    assert expected in errors[0], output
    return errors[0]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_a_run_verifying_every_identity_streams_rows_over_tls(
    stack: Stack, database: str, tls_user: tuple[str, str], tmp_path, protocol: str
):
    user, password = tls_user
    tailer = Tailer(stack, tmp_path, database)
    tailer.env |= {"BINLOG_TAILER_MYSQL__USER": user, "BINLOG_TAILER_MYSQL__PASSWORD": password}
    tailer.env |= mysql_tls("verify_identity") | kafka_tls(protocol)
    if protocol == "SASL_SSL":  # the Kafka checkpoint store's clients get TLS and SASL too
        tailer.use_kafka_store(unique_name("offsets"))
    with stack.admin(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    try:
        check = tailer.cli("check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "MySQL connection encrypted (TLS" in check.stdout, check.stdout
        tailer.start()
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, f"v{i}") for i in range(3)])
        got = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=3)
        assert len(got) == 3, tailer.log()
        assert tailer.stop() == 0, tailer.log()
    finally:
        tailer.close()
    if stack.server == "mysql":  # MySQL also tells each connection's transport
        with stack.admin() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM performance_schema.threads WHERE PROCESSLIST_USER = %s"
                " AND CONNECTION_TYPE <> 'SSL/TLS'",
                (user,),
            )
            assert cur.fetchone()[0] == 0
    # the user's REQUIRE SSL is what proves it: without TLS, the same run is refused
    tailer.env |= mysql_tls("disabled", ca=None)
    tailer.env.pop("BINLOG_TAILER_MYSQL__SSL_CA")
    plain = tailer.cli("run", timeout=60)
    assert plain.returncode == 1
    one_clear_line(plain.stderr, "access denied")


@pytest.mark.parametrize(
    ("mode", "host", "ca", "expected"),
    [
        ("verify_ca", "localhost", TLS.other_ca, "the server's certificate is not trusted"),
        ("verify_identity", "127.0.0.1", TLS.ca, "the server's certificate does not name"),
    ],
    ids=["wrong-ca", "wrong-host"],
)
def test_a_server_certificate_not_verified_is_one_clear_line(
    stack: Stack, tmp_path, mode: str, host: str, ca: str, expected: str
):
    tailer = Tailer(stack, tmp_path, "t_unused")
    tailer.env |= mysql_tls(mode, ca=ca) | {"BINLOG_TAILER_MYSQL__HOST": host}
    run = tailer.cli("run", timeout=60)
    assert run.returncode == 1, run.stderr
    one_clear_line(run.stderr, expected)
    check = tailer.cli("check")
    assert check.returncode == 3
    assert f"FAIL  connect to MySQL at {host}" in check.stdout and expected in check.stdout
    # the same server and name pass with the check they do satisfy
    lenient = "verify_ca" if mode == "verify_identity" else "required"
    tailer.env |= mysql_tls(lenient, ca=TLS.ca if lenient == "verify_ca" else None)
    if lenient == "required":
        tailer.env.pop("BINLOG_TAILER_MYSQL__SSL_CA")
    ok = tailer.cli("check")
    assert "MySQL connection encrypted" in ok.stdout, ok.stdout + ok.stderr


def test_required_never_falls_back_to_a_server_without_tls(kafka_bootstrap: str, tmp_path):
    plain = checked_stack("mariadb")  # MariaDB 10.11: the stack's server without TLS
    tailer = Tailer(plain, tmp_path, "t_unused")
    tailer.env |= mysql_tls("required", ca=None)
    run = tailer.cli("run", timeout=60)
    assert run.returncode == 1
    one_clear_line(run.stderr, "does not offer TLS, and mysql.ssl_mode = required refuses")
    check = tailer.cli("check")
    assert check.returncode == 3 and "does not offer TLS" in check.stdout, check.stdout
    tailer.env["BINLOG_TAILER_MYSQL__SSL_MODE"] = "preferred"
    assert "MySQL connection NOT encrypted" in tailer.cli("check").stdout


@pytest.mark.parametrize(
    ("protocol", "env", "expected"),
    [
        ("SSL", {"BINLOG_TAILER_KAFKA__SSL_CA_LOCATION": TLS.other_ca}, "TLS to Kafka at"),
        (
            "SSL",  # the broker's certificate names localhost, not 127.0.0.1
            {
                "BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS": TLS.kafka_ssl.replace(
                    "localhost", "127.0.0.1"
                )
            },
            "TLS to Kafka at 127.0.0.1",
        ),
        (
            "SASL_SSL",
            {"BINLOG_TAILER_KAFKA__SASL_PASSWORD": "not-the-password"},
            "refused SASL authentication as",
        ),
    ],
    ids=["wrong-ca", "wrong-host", "wrong-sasl-password"],
)
@pytest.mark.parametrize("store", ["file", "kafka"])
def test_kafka_refusing_tls_or_sasl_is_one_clear_line(
    kafka_bootstrap: str, tmp_path, protocol: str, env: dict[str, str], expected: str, store: str
):
    tailer = Tailer(checked_stack(SERVERS[0]), tmp_path, "t_unused")
    tailer.env |= kafka_tls(protocol) | env
    if store == "kafka":
        tailer.use_kafka_store(unique_name("offsets"))
    commands = [("run",), ("check",)] + ([("offsets", "show")] if store == "kafka" else [])
    for args in commands:
        r = tailer.cli(*args, timeout=60)
        if args == ("check",):
            assert r.returncode == 3, r.stdout + r.stderr
            fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
            assert fails and all(expected in line for line in fails), r.stdout
        else:
            assert r.returncode == 1, r.stderr
            one_clear_line(r.stderr, expected)
        assert "not-the-password" not in r.stdout + r.stderr
