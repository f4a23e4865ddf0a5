import pytest

from binlog_tailer.errors import ConfigError
from binlog_tailer.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("BINLOG_TAILER_"):
            monkeypatch.delenv(k)


def test_defaults():
    s = load_settings()
    assert s.mysql.port == 3306
    assert s.captured_tables() == (["*.*"], [])
    assert s.initial_position == "latest"
    assert s.checkpoint.store == "file"


def test_environment_with_nested_delimiter_and_comma_lists(monkeypatch):
    monkeypatch.setenv("BINLOG_TAILER_MYSQL__PORT", "13306")
    monkeypatch.setenv("BINLOG_TAILER_MYSQL__PASSWORD", "s3cret")
    monkeypatch.setenv("BINLOG_TAILER_CAPTURE__INCLUDE", "shop.*, app.orders")
    s = load_settings()
    assert s.mysql.port == 13306
    assert s.mysql.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.capture.include == ["shop.*", "app.orders"]


def test_toml_file_below_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "tailer.toml"
    cfg.write_text(
        '[mysql]\nport = 3307\nhost = "db"\n[capture]\ninclude = ["a.*"]\n'
        '[kafka.producer]\n"linger.ms" = 20\n'
    )
    monkeypatch.setenv("BINLOG_TAILER_MYSQL__PORT", "3308")
    s = load_settings(cfg)
    assert (s.mysql.host, s.mysql.port) == ("db", 3308)
    assert s.capture.include == ["a.*"]
    assert s.kafka.producer == {"linger.ms": 20}


def test_every_problem_named_once_with_its_variable(monkeypatch):
    monkeypatch.setenv("BINLOG_TAILER_MYSQL__PORT", "99999")
    monkeypatch.setenv("BINLOG_TAILER_INITIAL_POSITION", "middle")
    monkeypatch.setenv("BINLOG_TAILER_CAPTURE__TOPIC_TEMPLATE", "{db}.{tabel}")
    with pytest.raises(ConfigError) as info:
        load_settings()
    msg = str(info.value)
    assert "mysql.port" in msg and "BINLOG_TAILER_MYSQL__PORT" in msg
    assert "initial_position" in msg
    assert "tabel" in msg


def test_unknown_keys_and_missing_file_are_errors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mysql]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    cfg.write_text("this is = = not toml")
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_outbox_tables_alone_capture_only_them(monkeypatch):
    monkeypatch.setenv("BINLOG_TAILER_OUTBOX__TABLES", "shop.outbox")
    assert load_settings().captured_tables() == (["shop.outbox"], [])
    monkeypatch.setenv("BINLOG_TAILER_CAPTURE__INCLUDE", "shop.orders")
    assert load_settings().captured_tables() == (["shop.orders", "shop.outbox"], [])


def test_outbox_template_fields_are_checked(monkeypatch):
    monkeypatch.setenv("BINLOG_TAILER_OUTBOX__TOPIC_TEMPLATE", "events.{aggregate}")
    with pytest.raises(ConfigError, match="aggregate"):
        load_settings()


def test_settings_errors_never_echo_a_secret(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[mysql]\npasswd = "hunter2-typo"\npassword = 987654321\n'
        '[kafka.producer]\n"sasl.password" = ["s3cret-list"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = str(info.value)
    assert "mysql.passwd" in text and "mysql.password" in text and "kafka.producer" in text
    for secret in ("hunter2-typo", "987654321", "s3cret-list"):
        assert secret not in text
    assert "BINLOG_TAILER_KAFKA__PRODUCER]" in text  # the variable that exists
    assert "SASL.PASSWORD" not in text
    # four union members (str, int, float, bool) refused the list: one line for the setting
    assert sum("kafka.producer" in line for line in text.splitlines()) == 1


@pytest.mark.parametrize("producer", [{"enable.idempotence": False}, {"acks": "1"}, {"acks": 0}])
def test_producer_settings_cannot_give_up_the_delivery_guarantees(producer):
    with pytest.raises(ConfigError, match="would give up acknowledged, ordered delivery"):
        load_settings(kafka={"producer": producer})
    load_settings(kafka={"producer": {"compression.type": "zstd", "acks": "all"}})
