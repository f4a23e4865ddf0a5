"""The container files, checked without a Docker engine: docker/compose.yaml against the
Compose Specification's schema and against the settings, docker/Dockerfile's shape and health
check. (Its install steps run in tests/integration/test_docker_install.py.)"""

from __future__ import annotations

import copy
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from binlog_tailer.settings import ENV_PREFIX, Settings, load_settings
from tests import docker_files as df

SCHEMA = Path(__file__).resolve().parents[1] / "vendor" / "compose-spec" / "compose-spec.json"


def _schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_specification():
    assert _schema_errors(df.compose()) == []


def test_the_schema_check_catches_mistakes():
    """The check above can fail: a misspelt key, a wrong type, a bad depends_on condition."""
    for path, value in [
        (("services", "mysql", "healthchek"), {"test": ["CMD", "true"]}),
        (("services", "kafka", "ports"), "9094:9094"),
        (("services", "binlog-tailer", "depends_on", "mysql", "condition"), "healthy"),
    ]:
        doc = copy.deepcopy(df.compose())
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert _schema_errors(doc), f"{'.'.join(path)} = {value!r} passed the schema"


def _field(var: str) -> Any:
    """The settings field an environment variable names, or None."""
    model: Any = Settings
    field = None
    for part in var.removeprefix(ENV_PREFIX).lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return None  # a section, not a setting
    return field


def _tailer_env() -> dict[str, str]:
    """What the binlog-tailer container gets: the image's ENV, then compose's environment."""
    image = df.env(df.stage("binlog-tailer"))
    service = df.service_env(df.compose()["services"]["binlog-tailer"])
    return {k: v for k, v in {**image, **service}.items() if k.startswith(ENV_PREFIX)}


def test_every_setting_passed_exists_and_the_whole_set_loads(monkeypatch):
    passed = set(df.env(df.stage("binlog-tailer"))) | {
        k for service in df.compose()["services"].values() for k in df.service_env(service)
    }
    passed = {k for k in passed if k.startswith(ENV_PREFIX)}
    assert "BINLOG_TAILER_MYSQL__HOST" in passed  # the check below sees the settings
    unknown = sorted(k for k in passed if _field(k) is None)
    assert unknown == [], "not settings (see binlog_tailer/settings.py)"

    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in _tailer_env().items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.mysql.host == "mysql"
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.outbox.tables == ["board.outbox"]
    assert settings.checkpoint.store == "kafka"
    assert settings.initial_position == "earliest"
    assert settings.http.host == "0.0.0.0"  # bound to every interface in the container


def test_the_setting_check_catches_a_misspelt_name():
    assert _field("BINLOG_TAILER_MYSQL__HOST") is not None
    assert _field("BINLOG_TAILER_MYSQL__HOSTNAME") is None
    assert _field("BINLOG_TAILER_MYSQL") is None  # a section
    assert _field("BINLOG_TAILER_MYSQL_HOST") is None


def _sql_user(name: str) -> tuple[str, str]:
    """(password, grants) of a user the MySQL init SQL creates."""
    sql = (df.ROOT / "docker" / "mysql-init" / "10-users.sql").read_text()
    password = re.search(rf"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '([^']*)'", sql)
    grants = re.search(rf"GRANT (.*) TO '{name}'@'%'", sql)
    assert password and grants, f"user {name} is not created and granted in 10-users.sql"
    return password.group(1), grants.group(1)


def test_compose_services_fit_together():
    services = df.compose()["services"]
    tailer = df.service_env(services["binlog-tailer"])
    board = df.service_env(services["popular-articles"])
    # the tailer and the example reach the servers by their service names
    assert tailer["BINLOG_TAILER_MYSQL__HOST"] in services
    assert board["BOARD_MYSQL_HOST"] == tailer["BINLOG_TAILER_MYSQL__HOST"]
    bootstrap = tailer["BINLOG_TAILER_KAFKA__BOOTSTRAP_SERVERS"]
    kafka_host = bootstrap.split(":")[0]
    assert kafka_host in services
    assert board["BOARD_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    kafka = df.service_env(services[kafka_host])
    assert f"//{bootstrap}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    # KRaft, one node: the image refuses to start without a cluster id
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["CLUSTER_ID"])
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@{kafka_host}:9093"
    # the CDC user has exactly the documented privileges, with the password the tailer uses
    password, grants = _sql_user(tailer["BINLOG_TAILER_MYSQL__USER"])
    assert password == tailer["BINLOG_TAILER_MYSQL__PASSWORD"]
    assert grants == "REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"
    password, grants = _sql_user(board["BOARD_MYSQL_USER"])
    assert password == board["BOARD_MYSQL_PASSWORD"]
    assert grants.endswith(f"ON {board['BOARD_MYSQL_DATABASE']}.*")
    # the tailer captures the example's outbox table, created by the init SQL in its database
    assert tailer["BINLOG_TAILER_OUTBOX__TABLES"] == f"{board['BOARD_MYSQL_DATABASE']}.outbox"
    assert df.service_env(services["mysql"])["MYSQL_DATABASE"] == board["BOARD_MYSQL_DATABASE"]
    assert board["BOARD_TOPIC"] == "outbox.event.article"  # outbox.topic_template's default
    # every bind mount and build context exists
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (df.COMPOSE.parent / volume.split(":")[0]).exists(), volume
        if "build" in service:
            build = service["build"]
            assert (df.COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
            df.stage(build["target"])
    mounts = [v.split(":")[:2] for v in services["mysql"]["volumes"]]
    assert ["../binlog_tailer/outbox.sql", "/docker-entrypoint-initdb.d/20-outbox.sql"] in mounts


def test_services_start_in_order_of_health():
    services = df.compose()["services"]
    for name, needs in [
        ("binlog-tailer", {"mysql", "kafka"}),
        ("popular-articles", {"mysql", "kafka", "binlog-tailer"}),
    ]:
        depends = services[name]["depends_on"]
        assert set(depends) == needs
        assert {d["condition"] for d in depends.values()} == {"service_healthy"}
    for name in ("mysql", "kafka"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    # binlog-tailer's health check is the image's own
    assert any(i.keyword == "HEALTHCHECK" for i in df.stage("binlog-tailer"))


def _flags(args: list[str] | str) -> dict[str, str]:
    words = args.split() if isinstance(args, str) else args
    return dict(w[2:].partition("=")[::2] for w in words if w.startswith("--") and "=" in w)


# What CDC needs of MySQL (README, "The server"): every binlog and GTID flag scripts/dev-up
# gives the tests' MySQL, and its server id, binlog name and character set.
CDC_FLAGS = re.compile(
    r"binlog-.*|gtid-.*|enforce-gtid-consistency|server-id|log-bin|character-set-server"
)


def test_mysql_is_configured_for_cdc_as_the_test_stack_is():
    dev_up = (df.ROOT / "scripts" / "dev-up").read_text()
    start_mysql = dev_up[dev_up.index("start_mysql() {") : dev_up.index("start_mariadb11() {")]
    wanted = {k: v for k, v in _flags(start_mysql).items() if CDC_FLAGS.fullmatch(k)}
    assert {"binlog-row-metadata", "binlog-row-image", "gtid-mode", "server-id"} <= set(wanted)
    mysql = df.compose()["services"]["mysql"]
    assert mysql["image"] == "mysql:8.4"
    given = _flags(mysql["command"])
    assert {k: given.get(k) for k in wanted} == wanted


def test_image_is_slim_unprivileged_and_runs_the_service():
    stage = df.stage("binlog-tailer")
    first = df.instructions()[0]
    assert first.keyword == "ARG" and first.args == "PYTHON_VERSION=3.12"
    assert stage[0].args == "python:${PYTHON_VERSION}-slim AS binlog-tailer"
    user = [i.args for i in stage if i.keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    last = {i.keyword: i.args for i in stage}
    assert df.exec_form(last["ENTRYPOINT"]) == ["binlog-tailer"]
    assert df.exec_form(last["CMD"]) == ["run"]
    env = df.env(stage)
    assert env["BINLOG_TAILER_HTTP__HOST"] == "0.0.0.0"
    assert env["BINLOG_TAILER_HTTP__PORT"] in last["EXPOSE"].split()
    # a plain `docker build` gives the connector
    final = df.instructions()[-1]
    assert final.keyword == "FROM" and final.args == "binlog-tailer"


def test_build_context_holds_what_the_image_copies_and_nothing_else():
    copied = [
        w
        for i in df.instructions()
        if i.keyword == "COPY"
        for w in i.args.split()[:-1]
        if not w.startswith("--")
    ]
    assert "binlog_tailer/" in copied and "docker/install.sh" in copied
    for source in copied:
        assert df.dockerignore_allows(source.rstrip("/")), source
    assert df.dockerignore_allows("binlog_tailer/settings.py")
    for left_out in (
        ".git/HEAD",
        ".venv/bin/python",
        ".stack/mysql.env",
        "tests/unit/test_docker.py",
        "binlog_tailer/__pycache__/cli.cpython-312.pyc",
        "py_spy-0.4.3-py2.py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.whl",
    ):
        assert not df.dockerignore_allows(left_out), left_out


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _healthcheck(port: int) -> int:
    """Run the image's HEALTHCHECK command as Docker would; its exit code."""
    (line,) = [i.args for i in df.stage("binlog-tailer") if i.keyword == "HEALTHCHECK"]
    command = df.exec_form(line, after="CMD")
    assert command[0] == "python"  # the image's virtualenv Python: no curl in a slim image
    env = {"BINLOG_TAILER_HTTP__PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True).returncode


def test_healthcheck_asks_healthz(health_server):
    port = health_server.server_address[1]
    _Health.status = 200
    assert _healthcheck(port) == 0
    _Health.status = 503
    try:
        assert _healthcheck(port) == 1  # Docker: 1 is unhealthy (2 is reserved)
    finally:
        _Health.status = 200


def test_healthcheck_fails_when_nothing_listens(health_server):
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    assert _healthcheck(port) == 1
