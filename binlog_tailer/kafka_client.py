"""What every Kafka client of binlog-tailer is given to reach the cluster (brokers, TLS, SASL),
and what it says when the cluster refuses it for security reasons."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from binlog_tailer.settings import KafkaSettings, is_secret

_librdkafka_log = logging.getLogger("binlog_tailer.librdkafka")


class _LibrdkafkaLog:
    """librdkafka's own log lines, as debug records: what matters of them (a broker down, a
    refused handshake) also reaches the clients' error callbacks, which report it once, clearly,
    instead of a line every reconnection attempt on stderr."""

    def log(self, level: int, msg: str, *args: object) -> None:
        _librdkafka_log.debug(msg, *args)


_LOGGER = _LibrdkafkaLog()


def kafka_connection(s: KafkaSettings) -> dict[str, Any]:
    """The librdkafka properties of where the cluster is and how to talk to it: the one place
    the producer, the consumers and the admin clients all get them from."""
    config: dict[str, Any] = {
        "bootstrap.servers": s.bootstrap_servers,
        "security.protocol": s.security_protocol,
        "logger": _LOGGER,
    }
    if s.security_protocol.endswith("SSL"):
        config["ssl.endpoint.identification.algorithm"] = s.ssl_endpoint_identification
        for key, path in (
            ("ssl.ca.location", s.ssl_ca_location),
            ("ssl.certificate.location", s.ssl_certificate_location),
            ("ssl.key.location", s.ssl_key_location),
        ):
            if path is not None:
                config[key] = str(path)
        if s.ssl_key_password is not None:
            config["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    if s.security_protocol.startswith("SASL_"):
        assert s.sasl_password is not None  # the settings' rule
        config["sasl.mechanism"] = s.sasl_mechanism
        config["sasl.username"] = s.sasl_username
        config["sasl.password"] = s.sasl_password.get_secret_value()
    return config


def secret_values(s: KafkaSettings) -> list[str]:
    """Every secret of the Kafka settings: the SASL password, the key's passphrase, and any
    producer property whose name says it holds one."""
    out = [v.get_secret_value() for v in (s.sasl_password, s.ssl_key_password) if v is not None]
    out += [str(v) for k, v in s.producer.items() if is_secret(k)]
    return [v for v in out if len(v) >= 3]


def redact(text: str, s: KafkaSettings) -> str:
    """`text` without any secret of the Kafka settings, for messages built from what a Kafka
    client reported."""
    for value in secret_values(s):
        text = text.replace(value, "***")
    return text


# The cluster did not answer in time (down, restarting, unreachable): worth waiting for
UNREACHABLE_ERRORS = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
    }
)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc`, from a Kafka client's request, says the cluster did not answer (rather
    than that it refused): a TimeoutError of a request's future, or a transient error code."""
    if isinstance(exc, TimeoutError):
        return True
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(err, KafkaError) and err.code() in UNREACHABLE_ERRORS


# A broker that refuses us for who we are, or a TLS handshake that fails: retrying does not help
SECURITY_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})


def security_failure(err: KafkaError, s: KafkaSettings) -> str | None:
    """One clear line for an error that says the cluster refused our TLS or SASL (None for
    another error): a wrong CA, a broker certificate without the host's name, a PLAINTEXT
    listener, a wrong SASL user or password."""
    text = redact(err.str(), s)
    where = f"Kafka at {s.bootstrap_servers}"
    if err.code() == KafkaError._AUTHENTICATION:
        return (
            f"{where} refused SASL authentication as {s.sasl_username!r} ({s.sasl_mechanism}):"
            f" check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism [{text}]"
        )
    if err.code() == KafkaError._SSL or "SSL handshake failed" in text:
        if "PLAINTEXT" in text or "closed by peer" in text:
            hint = "is the listener a TLS one? (kafka.security_protocol, kafka.bootstrap_servers)"
        else:
            hint = (
                "check kafka.ssl_ca_location (the CA that signed the brokers' certificates) and"
                " that the certificates name the hosts connected to (kafka.bootstrap_servers and"
                " the brokers' advertised listeners; kafka.ssl_endpoint_identification)"
            )
        return f"TLS to {where} failed: {hint} [{text}]"
    return None
