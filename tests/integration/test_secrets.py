"""Secrets never leak: commands that succeed and commands that fail, at log level DEBUG, with
distinctive secret values; no byte of their output holds one, nor its base64 or hex form."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from binlog_tailer.outbox import outbox_ddl
from tests.integration.conftest import checked_stack
from tests.integration.stack import Stack, consume, tls_facts, unique_name, wait_until
from tests.integration.tailer import Tailer

TLS = tls_facts()
MYSQL_SECRET = "S3cr3t-mysql-9f1c"
SASL_SECRET = "S3cr3t-sasl-4b7e"
KEY_SECRET = "S3cr3t-keypass-51ab"
PRODUCER_SECRET = "S3cr3t-oauth-0c3d"
WRONG_MYSQL = "S3cr3t-mysql-wrong-77aa"
WRONG_SASL = "S3cr3t-sasl-wrong-e5d1"
SECRETS = (MYSQL_SECRET, SASL_SECRET, KEY_SECRET, PRODUCER_SECRET, WRONG_MYSQL, WRONG_SASL)


def encodings(secret: str) -> list[bytes]:
    raw = secret.encode()
    out = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for shift in range(3):  # base64 of the secret wherever it starts in a longer string
        encoded = base64.b64encode(b"\0" * shift + raw)[4 * ((shift + 2) // 3) :]
        out.append(encoded[: len(encoded) - 4])  # without the padded tail
    return out


def assert_no_secret(output: bytes, what: str) -> None:
    for secret in SECRETS:
        for form in encodings(secret):
            assert form not in output, f"{what}: {secret!r} leaked as {form!r}"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return dataclasses.replace(checked_stack(TLS.servers[0]), mysql_host="localhost")


@pytest.fixture(scope="module")
def secret_users(stack: Stack) -> Iterator[tuple[str, str]]:
    """A MySQL user and a Kafka SCRAM user whose passwords are the known secrets."""
    mysql_user, sasl_user = unique_name("sec")[:20], unique_name("sec")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{mysql_user}'@'127.0.0.1' IDENTIFIED BY %s", (MYSQL_SECRET,))
        cur.execute(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"
            f" TO '{mysql_user}'@'127.0.0.1'"
        )
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    upsert = UserScramCredentialUpsertion(
        sasl_user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), SASL_SECRET.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    yield mysql_user, sasl_user
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{mysql_user}'@'127.0.0.1'")


# Long on purpose: one scenario runs every command against the same secrets, then searches
# all of their output at once.
def test_no_command_shows_a_secret(
    stack: Stack, secret_users: tuple[str, str], kafka_bootstrap: str, tmp_path
):
    mysql_user, sasl_user = secret_users
    database = unique_name("t")
    with stack.admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
        cur.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY)")
        cur.execute(outbox_ddl(f"{database}.outbox", relay=True))
        cur.execute(f"GRANT DELETE ON `{database}`.outbox TO '{mysql_user}'@'127.0.0.1'")
    tailer = Tailer(stack, tmp_path, database)
    tailer.use_kafka_store(unique_name("offsets"))
    tailer.env |= {
        "BINLOG_TAILER_LOG_LEVEL": "DEBUG",
        "BINLOG_TAILER_MYSQL__USER": mysql_user,
        "BINLOG_TAILER_MYSQL__PASSWORD": MYSQL_SECRET,
        "BINLOG_TAILER_MYSQL__SSL_MODE": "verify_identity",
        "BINLOG_TAILER_MYSQL__SSL_CA": TLS.ca,
        "BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS": TLS.kafka_sasl,
        "BINLOG_TAILER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BINLOG_TAILER_KAFKA__SSL_CA_LOCATION": TLS.ca,
        "BINLOG_TAILER_KAFKA__SSL_KEY_PASSWORD": KEY_SECRET,
        "BINLOG_TAILER_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "BINLOG_TAILER_KAFKA__SASL_USERNAME": sasl_user,
        "BINLOG_TAILER_KAFKA__SASL_PASSWORD": SASL_SECRET,
        "BINLOG_TAILER_KAFKA__PRODUCER": json.dumps(
            {"sasl.oauthbearer.client.secret": PRODUCER_SECRET}
        ),
    }
    good = dict(tailer.env)
    outputs: list[tuple[str, bytes]] = []

    def cli(what: str, *args: str, expect: int, **env: str | None) -> None:
        tailer.env = {k: v for k, v in (good | env).items() if v is not None}
        r = tailer.cli(*args, timeout=90)
        assert r.returncode == expect, f"{what}: {r.stdout}{r.stderr}"
        outputs.append((what, (r.stdout + r.stderr).encode()))

    try:
        cli("check", "check", expect=0)
        # a run: starts, streams a row, stops
        tailer.env = dict(good)
        tailer.start()
        with stack.admin(database) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        got = consume(stack.kafka_bootstrap, [tailer.topic(database, "t")], expect=1)
        assert len(got) == 1, tailer.log()
        wait_until(lambda: tailer.stored_checkpoint() is not None, 30, "a checkpoint")
        wait_until(lambda: "metrics and health on" in tailer.log(), 30, "the HTTP endpoints")
        for path in ("/metrics", "/healthz", "/readyz"):
            status, body = tailer.http_get(path)
            assert status in (200, 503), (path, status)
            outputs.append((f"GET {path}", body.encode()))
        assert tailer.stop() == 0, tailer.log()
        outputs.append(("run", tailer.log_path.read_bytes()))
        cli("settings", "settings", expect=0)
        cli("offsets show", "offsets", "show", expect=0)
        cli("wrong MySQL password", "run", expect=1, BINLOG_TAILER_MYSQL__PASSWORD=WRONG_MYSQL)
        cli(
            "wrong MySQL password (check)",
            "check",
            expect=3,
            BINLOG_TAILER_MYSQL__PASSWORD=WRONG_MYSQL,
        )
        cli("wrong SASL password", "run", expect=1, BINLOG_TAILER_KAFKA__SASL_PASSWORD=WRONG_SASL)
        cli(
            "wrong SASL password (check)",
            "check",
            expect=3,
            BINLOG_TAILER_KAFKA__SASL_PASSWORD=WRONG_SASL,
        )
        cli(
            "unreachable Kafka",
            "offsets",
            "show",
            expect=1,
            BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS="localhost:1",
            BINLOG_TAILER_CHECKPOINT__TIMEOUT_SECONDS="2",
        )
        cli(
            "a mistyped setting and a bad producer entry",
            "check",
            expect=2,
            BINLOG_TAILER_MYSQL__PASSWD=MYSQL_SECRET,
            BINLOG_TAILER_KAFKA__PRODUCER=json.dumps(
                {"sasl.oauthbearer.client.secret": [PRODUCER_SECRET]}
            ),
        )
        relay = {
            "BINLOG_TAILER_OUTBOX__SOURCE": "poll",
            "BINLOG_TAILER_OUTBOX__TABLES": f"{database}.outbox",
            "BINLOG_TAILER_CAPTURE__INCLUDE": None,
        }
        cli("relay check", "check", expect=0, **relay)
        cli(
            "relay, wrong MySQL password",
            "run",
            expect=1,
            **relay,
            BINLOG_TAILER_MYSQL__PASSWORD=WRONG_MYSQL,
        )
        cli(
            "a producer entry librdkafka refuses",
            "run",
            expect=1,
            BINLOG_TAILER_KAFKA__PRODUCER=json.dumps({"no.such.secret": PRODUCER_SECRET}),
        )
    finally:
        tailer.close()
        with stack.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    assert len(outputs) == 16
    for what, output in outputs:
        assert output, f"{what}: no output at all (DEBUG logging)"
        assert_no_secret(output, what)
