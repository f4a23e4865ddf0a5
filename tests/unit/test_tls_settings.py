"""TLS and SASL settings: what they become for PyMySQL and librdkafka, and what is refused."""

from __future__ import annotations

import re
import ssl

import pytest

from binlog_tailer.errors import ConfigError
from binlog_tailer.kafka_client import kafka_connection, security_failure
from binlog_tailer.publisher import connection_config, producer_config
from binlog_tailer.server import tls_kwargs
from binlog_tailer.settings import KafkaSettings, MysqlSettings, load_settings


def test_ssl_mode_maps_to_pymysql_arguments():
    assert tls_kwargs(MysqlSettings(ssl_mode="disabled")) == {"ssl_disabled": True}
    assert tls_kwargs(MysqlSettings()) == {}  # preferred: PyMySQL's own TLS-if-offered
    required = tls_kwargs(MysqlSettings(ssl_mode="required"))["ssl"]
    assert isinstance(required, ssl.SSLContext)
    assert required.verify_mode == ssl.CERT_NONE and not required.check_hostname
    verify_ca = tls_kwargs(MysqlSettings(ssl_mode="verify_ca"))["ssl"]
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    identity = tls_kwargs(MysqlSettings(ssl_mode="verify_identity"))["ssl"]
    assert identity.verify_mode == ssl.CERT_REQUIRED and identity.check_hostname


def test_mysql_tls_files_must_exist_and_fit_the_mode(tmp_path):
    with pytest.raises(ConfigError, match=r"mysql.ssl_ca: .*no such file.*MYSQL__SSL_CA"):
        load_settings(mysql={"ssl_mode": "verify_ca", "ssl_ca": str(tmp_path / "nope.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match=re.escape("not used under mysql.ssl_mode = preferred")):
        load_settings(mysql={"ssl_ca": str(ca)})
    with pytest.raises(
        ConfigError, match=re.escape("mysql.ssl_cert and mysql.ssl_key go together")
    ):
        load_settings(mysql={"ssl_mode": "required", "ssl_cert": str(ca)})
    with pytest.raises(ConfigError, match=re.escape("mysql.ssl_mode")):
        load_settings(mysql={"ssl_mode": "verify-full"})


def test_kafka_security_properties_per_protocol(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    plain = kafka_connection(KafkaSettings(bootstrap_servers="k:9092"))
    assert plain["security.protocol"] == "PLAINTEXT"
    assert not [k for k in plain if k.startswith(("ssl.", "sasl."))]
    sasl_ssl = KafkaSettings(
        bootstrap_servers="k:9093",
        security_protocol="SASL_SSL",
        ssl_ca_location=ca,
        ssl_endpoint_identification="none",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password="pw-1",
    )
    conn = kafka_connection(sasl_ssl)
    assert conn["ssl.ca.location"] == str(ca)
    assert conn["ssl.endpoint.identification.algorithm"] == "none"
    assert (conn["sasl.mechanism"], conn["sasl.username"], conn["sasl.password"]) == (
        "SCRAM-SHA-256",
        "u",
        "pw-1",
    )
    # every client gets them: producer, consumers and admin clients
    for config in (producer_config(sasl_ssl), connection_config(sasl_ssl)):
        assert {k: config[k] for k in conn} == conn
    sasl_plain = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="pw",
    )
    assert not [k for k in kafka_connection(sasl_plain) if k.startswith("ssl.")]


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"producer": {"sasl.password": "x"}}, "sasl.password has a setting of its own"),
        ({"producer": {"security.protocol": "SSL"}}, "use kafka.security_protocol"),
        ({"producer": {"bootstrap.servers": "k:1"}}, "use kafka.bootstrap_servers"),
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_mechanism, kafka.sasl_username"),
        ({"sasl_username": "u"}, "sasl_* settings are not used under"),
        ({"ssl_key_password": "p"}, "kafka.ssl_key_password is not used under"),
        ({"security_protocol": "SSL", "ssl_ca_location": "/no/such.pem"}, "no such file"),
    ],
)
def test_kafka_security_settings_refused(kafka, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_settings(kafka=kafka)
    assert "[env BINLOG_TAILER_KAFKA]" not in str(info.value)  # a section is no variable


def test_refusals_of_a_secret_setting_never_echo_it():
    with pytest.raises(ConfigError) as info:
        load_settings(kafka={"producer": {"sasl.password": "hunter2-dup"}})
    assert "hunter2-dup" not in str(info.value)


class _Err:
    def __init__(self, code: int, text: str) -> None:
        self._code, self._text = code, text

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


def test_security_failures_are_named_and_redacted():
    from confluent_kafka import KafkaError

    s = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="pw-secret-9",
    )
    auth = security_failure(_Err(KafkaError._AUTHENTICATION, "bad pw-secret-9"), s)  # type: ignore[arg-type]
    assert auth is not None and "refused SASL authentication as 'u'" in auth
    assert "pw-secret-9" not in auth
    tls = security_failure(_Err(KafkaError._SSL, "SSL handshake failed: verify failed"), s)  # type: ignore[arg-type]
    assert tls is not None and "kafka.ssl_ca_location" in tls
    assert security_failure(_Err(KafkaError._TRANSPORT, "Connection refused"), s) is None  # type: ignore[arg-type]
