"""Settings: pydantic-settings models. Validation only, no I/O beyond reading the config file.

Sources, strongest first: command-line overrides, environment variables
(``BINLOG_TAILER_`` prefix, ``__`` between levels: ``BINLOG_TAILER_MYSQL__PORT=3306``),
then an optional TOML config file (``--config``), then defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from binlog_tailer.errors import ConfigError

ENV_PREFIX = "BINLOG_TAILER_"


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return value


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MysqlSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str = "binlog_tailer"
    password: SecretStr = SecretStr("")
    server_id: int = Field(
        5701,
        ge=1,
        le=2**32 - 1,
        description="replica server id; unique among the server's replicas",
    )
    connect_timeout_seconds: float = Field(10.0, gt=0)
    heartbeat_seconds: float = Field(
        1.0, gt=0, le=60, description="server heartbeat while idle; bounds shutdown latency"
    )
    reconnect_timeout_seconds: float = Field(
        300.0, ge=0, description="give up when the server stays unreachable this long"
    )
    ssl_mode: Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"] = Field(
        "preferred",
        description="TLS as the mysql client's --ssl-mode: preferred uses it when the server"
        " offers it; required and stricter never fall back to plaintext",
    )
    ssl_ca: Path | None = Field(None, description="CA certificates (PEM) that verify the server")
    ssl_cert: Path | None = Field(None, description="client certificate (PEM)")
    ssl_key: Path | None = Field(None, description="the client certificate's private key (PEM)")

    _files = field_validator("ssl_ca", "ssl_cert", "ssl_key")(_existing_file)

    @model_validator(mode="after")
    def _tls_consistent(self) -> MysqlSettings:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("mysql.ssl_cert and mysql.ssl_key go together: set both or neither")
        unused = []
        if self.ssl_ca is not None and not self.ssl_mode.startswith("verify_"):
            unused.append(("mysql.ssl_ca", "verify_identity or verify_ca"))
        if self.ssl_cert is not None and self.ssl_mode in ("disabled", "preferred"):
            unused.append(("mysql.ssl_cert", "verify_identity, verify_ca or required"))
        for name, modes in unused:
            raise ValueError(
                f"{name} is not used under mysql.ssl_mode = {self.ssl_mode}: set ssl_mode to"
                f" {modes} [env {ENV_PREFIX}MYSQL__SSL_MODE]"
            )
        return self


_PRODUCER_GUARANTEES = {
    "enable.idempotence": {"true", "1"},
    "acks": {"all", "-1"},
    "request.required.acks": {"all", "-1"},
    "enable.gapless.guarantee": {"true", "1", "false", "0"},
    "max.in.flight.requests.per.connection": {"1", "2", "3", "4", "5"},
}


_PRODUCER_RESERVED = frozenset({"transactional.id", "transaction.timeout.ms"})

# librdkafka properties (aliases too) of the kafka settings that have them
KAFKA_FIRST_CLASS = {
    "bootstrap.servers": "bootstrap_servers",
    "metadata.broker.list": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
    "ssl.endpoint.identification.algorithm": "ssl_endpoint_identification",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
}
_KAFKA_TLS_FIELDS = (
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
    "ssl_key_password",
)


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    delivery_timeout_ms: int = Field(
        120_000, ge=1000, description="a record not acknowledged by then stops the service"
    )
    max_buffered_kbytes: int = Field(
        65_536, ge=1024, description="record bytes waiting for Kafka before reading pauses"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_ca_location: Path | None = Field(
        None, description="CA certificates (PEM) that verify the brokers (default: the system's)"
    )
    ssl_certificate_location: Path | None = Field(None, description="client certificate (PEM)")
    ssl_key_location: Path | None = Field(None, description="its private key (PEM)")
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification: Literal["https", "none"] = Field(
        "https", description="https: a broker's certificate must name the host connected to"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    producer: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka producer settings"
    )

    _files = field_validator("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")(
        _existing_file
    )

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        protocol = self.security_protocol
        if protocol.startswith("SASL_"):
            missing = [
                f"kafka.{name}"
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"kafka.security_protocol = {protocol} needs {', '.join(missing)}"
                    f" [env {ENV_PREFIX}KAFKA__SASL_MECHANISM, ...]"
                )
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise ValueError(
                f"kafka.sasl_* settings are not used under kafka.security_protocol = {protocol}:"
                " set it to SASL_SSL (or SASL_PLAINTEXT)"
                f" [env {ENV_PREFIX}KAFKA__SECURITY_PROTOCOL]"
            )
        tls = [n for n in _KAFKA_TLS_FIELDS if getattr(self, n) is not None]
        if tls and not protocol.endswith("SSL"):
            raise ValueError(
                f"kafka.{tls[0]} is not used under kafka.security_protocol = {protocol}: set it"
                f" to SSL or SASL_SSL [env {ENV_PREFIX}KAFKA__SECURITY_PROTOCOL]"
            )
        return self

    @field_validator("producer")
    @classmethod
    def _keeps_the_guarantees(
        cls, v: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        """Settings that would silently give up per-key order or acknowledged delivery, or
        that a setting of its own already has."""
        for key in v:
            if key in KAFKA_FIRST_CLASS:
                raise ValueError(
                    f"{key} has a setting of its own: use kafka.{KAFKA_FIRST_CLASS[key]}"
                    f" [env {ENV_PREFIX}KAFKA__{KAFKA_FIRST_CLASS[key].upper()}]"
                )
        for key in _PRODUCER_RESERVED.intersection(v):
            raise ValueError(
                f"{key} is set by binlog-tailer (delivery = exactly_once; see the exactly_once"
                " settings): leave it out"
            )
        for key, safe in _PRODUCER_GUARANTEES.items():
            if key in v and str(v[key]).lower() not in safe:
                raise ValueError(
                    f"{key}={v[key]} would give up acknowledged, ordered delivery (nothing lost,"
                    f" per-key order); binlog-tailer sets it: leave it out"
                )
        return v


class CaptureSettings(_Section):
    # None: every table ("*.*") when no outbox table is configured, else none besides them
    include: Annotated[list[str] | None, NoDecode] = None
    exclude: Annotated[list[str], NoDecode] = Field(default_factory=list)
    topic_prefix: str = "cdc"
    topic_template: str = "{prefix}.{db}.{table}"
    tombstones: bool = False
    transaction_metadata: bool = Field(
        False,
        description="BEGIN/END records on transaction_topic, a transaction block in each record",
    )
    transaction_topic: str = "{prefix}.transaction"

    _split = field_validator("include", "exclude", mode="before")(_split_commas)

    @field_validator("transaction_topic")
    @classmethod
    def _transaction_topic(cls, v: str) -> str:
        return _prefixed_topic(v)

    @field_validator("topic_template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        try:
            v.format(prefix="p", db="d", table="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"unknown or malformed field {exc} in topic template; use {{prefix}}, {{db}},"
                " {table}"
            ) from None
        return v


class OutboxSettings(_Section):
    tables: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="db.table patterns of outbox tables (all one shape)"
    )
    source: Literal["binlog", "poll"] = Field(
        "binlog",
        description="binlog: read committed inserts from the binlog; poll: the polling relay"
        " reads unsent rows with SELECT (no binlog access needed; see relay.*)",
    )
    id_column: str = "id"
    aggregate_type_column: str = "aggregate_type"
    aggregate_id_column: str = "aggregate_id"
    event_type_column: str = "event_type"
    payload_column: str = "payload"
    timestamp_column: str | None = "created_at"
    shard_key_column: str | None = None
    header_columns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    topic_template: str = "outbox.event.{aggregate_type}"
    allowed_topics: Annotated[list[str], NoDecode] = Field(default_factory=list)
    payload_format: Literal["json", "raw"] = "json"
    envelope: bool = False
    on_update: Literal["warn", "error", "ignore"] = "warn"

    _split = field_validator("tables", "header_columns", "allowed_topics", mode="before")(
        _split_commas
    )

    @field_validator("topic_template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        try:
            v.format(aggregate_type="a", event_type="e", db="d", table="t")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"unknown or malformed field {exc} in outbox topic template; use"
                " {aggregate_type}, {event_type}, {db}, {table}"
            ) from None
        return v


class RelaySettings(_Section):
    """The polling relay (`outbox.source = "poll"`): one active relay per connector name."""

    sequence_column: str = Field(
        "seq", description="AUTO_INCREMENT column: the order rows are published in"
    )
    after_publish: Literal["delete", "mark"] = Field(
        "delete", description="what happens to a row Kafka acknowledged: deleted, or marked sent"
    )
    sent_column: str = Field(
        "sent_at", description="after_publish = mark: a NULL DATETIME(6) column set when sent"
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="rows read, published, then removed")
    poll_interval_ms: int = Field(
        20, ge=1, le=60_000, description="wait after a poll that found nothing to publish"
    )
    standby_check_seconds: float = Field(
        1.0, gt=0, le=60, description="how often a standby relay tries to become the active one"
    )


class PruneSettings(_Section):
    """`binlog-tailer outbox prune`: deletes published outbox rows older than a retention."""

    user: str | None = Field(
        None, description="a user allowed to DELETE from the outbox (default: mysql.user)"
    )
    password: SecretStr | None = Field(None, description="its password (default: mysql.password)")
    retention_hours: float = Field(168.0, ge=0, description="rows younger than this stay")
    batch_size: int = Field(1000, ge=1, le=100_000, description="rows per DELETE transaction")
    pause_ms: int = Field(10, ge=0, le=60_000, description="pause between DELETE transactions")


TopicConfig = dict[str, str | int | float | bool]


class SnapshotSettings(_Section):
    """Reading the captured data tables' current rows (README "Snapshots")."""

    mode: Literal["never", "initial", "when_needed"] = Field(
        "never",
        description="initial: read every captured data table before a first run streams;"
        " when_needed: also when the stored position was purged from the server",
    )
    chunk_size: int = Field(2048, ge=1, le=100_000, description="rows per chunk (one SELECT)")
    keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description="db.table -> the columns of a unique key to read it by (default: its"
        " primary key)",
    )
    signal_topic: str = Field(
        "{prefix}.signal",
        description="where 'binlog-tailer snapshot' asks the running service for a snapshot"
        " ({prefix}: capture.topic_prefix; empty: no on-demand snapshots)",
    )


class TopicsSettings(_Section):
    """How binlog-tailer creates the topics it writes to (at the first record for each)."""

    create: bool = Field(True, description="create missing topics (else: broker auto-creation)")
    partitions: int = Field(1, ge=-1, description="-1: the broker's num.partitions")
    replication_factor: int = Field(
        -1, ge=-1, description="-1: the broker's default.replication.factor"
    )
    config: TopicConfig = Field(
        default_factory=dict, description="topic configs of every topic created"
    )
    compact_data_topics: bool = Field(
        False, description="cleanup.policy=compact for the topics of data tables with a key"
    )

    @field_validator("partitions", "replication_factor")
    @classmethod
    def _not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("use a positive number, or -1 for the broker's default")
        return v


class HeartbeatSettings(_Section):
    interval_seconds: float = Field(
        0.0, ge=0, description="a heartbeat record while captured tables are idle; 0: off"
    )
    topic: str = "{prefix}.heartbeat"

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return _prefixed_topic(v)


class DeadLetterSettings(_Section):
    mode: Literal["dead_letter", "stop"] = Field(
        "dead_letter", description="what a bad record does: go to the topic, or stop the service"
    )
    topic: str = "binlog-tailer.dead-letter"
    max_value_bytes: int = Field(
        900_000, ge=1024, description="larger original values are truncated in the dead letter"
    )


# Kafka's rule for topic names ("." and ".." aside); also that of connector names
_KAFKA_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _prefixed_topic(v: str) -> str:
    """A topic name template over {prefix} (capture.topic_prefix)."""
    try:
        name = v.format(prefix="p")
    except (KeyError, IndexError, ValueError) as exc:
        msg = f"unknown or malformed field {exc} in topic name; use {{prefix}}"
        raise ValueError(msg) from None
    _kafka_name(name)
    return v


def _kafka_name(value: str | None) -> str | None:
    if value is not None and (not _KAFKA_NAME.match(value) or value in (".", "..")):
        raise ValueError("use 1 to 249 letters, digits, '.', '_' or '-' (Kafka's topic names)")
    return value


class CheckpointSettings(_Section):
    store: Literal["file", "kafka"] = Field(
        "file", description="file: checkpoint.path; kafka: a record in checkpoint.topic"
    )
    path: Path = Path("binlog-tailer.offsets.json")
    topic: str = Field(
        "binlog-tailer.offsets",
        description="the Kafka store's compacted topic, keyed by connector name",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, description="the Kafka store gives up reading or writing after this long"
    )
    interval_seconds: float = Field(
        0.1,
        ge=0,
        description="at most one save per interval: bounds the duplicates after a crash",
    )

    _topic = field_validator("topic")(_kafka_name)


class ExactlyOnceSettings(_Section):
    """Kafka transactions of `delivery = "exactly_once"`."""

    transaction_interval_ms: int = Field(
        100, ge=1, le=60_000, description="a Kafka transaction is committed this often"
    )
    transaction_max_records: int = Field(
        5000, ge=1, description="... or at the first MySQL commit after this many records"
    )
    split_records: int = Field(
        50_000,
        ge=1,
        description="a MySQL transaction with more records is split over Kafka transactions",
    )
    transaction_timeout_ms: int = Field(
        60_000, ge=1000, description="Kafka aborts a transaction left open this long"
    )


class HttpSettings(_Section):
    """The HTTP endpoint of /metrics, /healthz and /readyz, and the side sampler behind them."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9400, ge=0, le=65535, description="0: any free port (logged at start)")
    ready_checkpoint_age_seconds: float = Field(
        120.0, gt=0, description="/readyz fails while the checkpoint lags behind longer"
    )
    sample_interval_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often bytes behind, retention headroom and Kafka are sampled",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    mysql: MysqlSettings = Field(default_factory=MysqlSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    prune: PruneSettings = Field(default_factory=PruneSettings)
    dead_letter: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="exactly_once: records and position commit in one Kafka transaction"
        " (needs checkpoint.store = kafka)",
    )
    exactly_once: ExactlyOnceSettings = Field(default_factory=ExactlyOnceSettings)
    name: str | None = Field(
        None,
        description="the connector's name, unique and stable: its key in the offsets topic"
        " (default: capture.topic_prefix)",
    )
    initial_position: Literal["latest", "earliest"] = "latest"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per line on stderr, for log shippers"
    )
    http: HttpSettings = Field(default_factory=HttpSettings)
    progress_log_seconds: float = Field(
        30.0, ge=0, description="off a terminal, a progress line this often (0: never)"
    )

    _name = field_validator("name")(_kafka_name)

    @model_validator(mode="after")
    def _exactly_once_needs_the_kafka_store(self) -> Settings:
        if self.delivery == "exactly_once" and self.checkpoint.store != "kafka":
            raise ValueError(
                "delivery = exactly_once needs checkpoint.store = kafka (the position is"
                " committed in the Kafka transaction that carries the records)"
                f" [env {ENV_PREFIX}CHECKPOINT__STORE=kafka]"
            )
        return self

    @model_validator(mode="after")
    def _snapshot_paths(self) -> Settings:
        if self.snapshot.mode == "never":
            return self
        if self.outbox.source == "poll":
            raise ValueError(
                "snapshot.mode reads data tables beside the binlog; the polling relay"
                " (outbox.source = poll) has neither: set snapshot.mode = never"
            )
        unsupported = [
            name
            for name, on in (
                ("delivery = exactly_once", self.delivery == "exactly_once"),
                ("capture.transaction_metadata", self.capture.transaction_metadata),
            )
            if on
        ]
        if unsupported:
            raise ValueError(
                f"snapshots do not yet work with {', '.join(unsupported)}: turn it off, or"
                f" set snapshot.mode = never [env {ENV_PREFIX}SNAPSHOT__MODE]"
            )
        return self

    @model_validator(mode="after")
    def _relay_tables(self) -> Settings:
        if self.outbox.source != "poll":
            return self
        o = self.outbox
        if not o.tables:
            raise ValueError(
                "outbox.source = poll needs outbox.tables: the outbox table(s) to relay, as"
                f" db.table [env {ENV_PREFIX}OUTBOX__TABLES]"
            )
        patterns = [t for t in o.tables if any(c in t for c in "*?[") or t.count(".") != 1]
        if patterns:
            raise ValueError(
                "outbox.source = poll relays tables named in full as db.table (no patterns,"
                f" no table without its database): {', '.join(patterns)}"
            )
        if self.capture.include is not None:
            raise ValueError(
                "outbox.source = poll relays outbox tables only; capture.include (data tables)"
                " needs the binlog (outbox.source = binlog)"
            )
        binlog_only = [
            name
            for name, on in (
                ("capture.transaction_metadata", self.capture.transaction_metadata),
                ("heartbeat.interval_seconds", self.heartbeat.interval_seconds > 0),
            )
            if on
        ]
        if binlog_only:
            raise ValueError(
                f"{', '.join(binlog_only)}: binlog path only; the polling relay (outbox.source"
                " = poll) has no MySQL transactions to describe nor a stream to beat"
            )
        if self.delivery == "exactly_once":
            raise ValueError(
                "outbox.source = poll publishes at least once (duplicates after a crash are"
                " bounded by relay.batch_size, with event_id headers to drop them); set"
                f" delivery = at_least_once [env {ENV_PREFIX}DELIVERY]"
            )
        return self

    @property
    def transactional_id(self) -> str:
        """The Kafka transactional.id of exactly-once delivery: one per connector name, so
        that a newer instance fences an older one."""
        return f"binlog-tailer.{self.connector_name}"

    @property
    def connector_name(self) -> str:
        """The connector's name: `name`, else `capture.topic_prefix`, the namespace its data
        topics already need to keep apart from another connector's on the same cluster."""
        name = self.name or self.capture.topic_prefix
        try:
            _kafka_name(name)
        except ValueError:
            raise ConfigError(
                f"capture.topic_prefix {name!r} cannot name the connector (letters, digits,"
                f" '.', '_', '-'): set name [env {ENV_PREFIX}NAME]"
            ) from None
        return name

    @property
    def transaction_topic(self) -> str | None:
        """The topic of transaction BEGIN/END records (None: transaction metadata is off)."""
        cap = self.capture
        if not cap.transaction_metadata:
            return None
        return cap.transaction_topic.format(prefix=cap.topic_prefix)

    @property
    def signal_topic(self) -> str | None:
        """The topic of snapshot signals (None: on-demand snapshots are off)."""
        why = self.signals_off()
        if why is not None:
            return None
        return self.snapshot.signal_topic.format(prefix=self.capture.topic_prefix)

    def signals_off(self) -> str | None:
        """Why on-demand snapshots are off (None: they are on)."""
        if not self.snapshot.signal_topic:
            return "snapshot.signal_topic is empty"
        if self.outbox.source == "poll":
            return "the polling relay (outbox.source = poll) reads no data tables"
        if self.delivery == "exactly_once":
            return "snapshots do not yet work with delivery = exactly_once"
        if self.capture.transaction_metadata:
            return "snapshots do not yet work with capture.transaction_metadata"
        return None

    @property
    def heartbeat_topic(self) -> str | None:
        """The topic of heartbeat records (None: heartbeats are off)."""
        if not self.heartbeat.interval_seconds:
            return None
        return self.heartbeat.topic.format(prefix=self.capture.topic_prefix)

    def masked(self) -> dict[str, Any]:
        """The settings as JSON-ready data, with every secret (passwords, and any entry of the
        producer dictionary whose name may hold one) replaced by a mask."""
        data = self.model_dump(mode="json")  # SecretStr: "**********"
        producer = data["kafka"]["producer"]
        for key in producer:
            if is_secret(key):
                producer[key] = MASK
        return data

    def captured_tables(self) -> tuple[list[str], list[str]]:
        """(include, exclude) patterns of every captured table, outbox tables included."""
        include = self.capture.include
        if include is None:
            include = [] if self.outbox.tables else ["*.*"]
        return [*include, *self.outbox.tables], list(self.capture.exclude)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; any invalid value becomes one ConfigError naming every problem."""
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file} does not exist")

    class _Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    try:
        return _Sourced(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    except ValueError as exc:  # e.g. a config file that is not TOML
        raise ConfigError(f"cannot read settings: {exc}") from None


MASK = "**********"  # what pydantic shows of a SecretStr
_SECRET = re.compile(r"pass|secret|token|key|sasl|credential|auth", re.I)


def is_secret(name: str) -> bool:
    """Whether a setting (or librdkafka property) of this name may hold a secret."""
    return bool(_SECRET.search(name))


def _describe(exc: ValidationError, config_file: str | Path | None) -> str:
    """One line per setting in error, naming its environment variable; never the value of a
    secret, nor of a name that is not a setting (a mistyped `passwd` holds a password too)."""
    lines, seen = ["invalid settings:"], set()
    for err in exc.errors():
        fields = _setting_path(err["loc"])
        unknown = err["type"] == "extra_forbidden"  # a name that is not a setting
        shown = err["loc"] if unknown or not fields else err["loc"][: len(fields)]
        loc = ".".join(str(p) for p in shown)
        if loc in seen:  # a union setting: one message is enough
            continue
        seen.add(loc)
        env = ENV_PREFIX + "__".join(fields).upper() if fields else None
        if _is_section(fields):  # a section's own rule: its message names the settings
            env = None
        secret = unknown or any(_SECRET.search(str(p)) for p in err["loc"])
        given = ""
        if err["type"] != "missing" and not secret and isinstance(err["input"], str | int | float):
            given = f" (got {err['input']!r})"
        where = f"  [env {env}]" if env and not unknown else ""
        msg = err["msg"] if loc and env else err["msg"].removeprefix("Value error, ")  # a rule
        lines.append(f"  {loc}: {msg}{given}{where}" if loc else f"  {msg}")
    if config_file is not None:
        lines.append(f"  (sources: environment, config file {config_file})")
    return "\n".join(lines)


def _is_section(fields: list[str]) -> bool:
    model: Any = Settings
    for name in fields:
        model = model.model_fields[name].annotation
    return bool(fields) and isinstance(model, type) and issubclass(model, BaseModel)


def _setting_path(loc: tuple[int | str, ...]) -> list[str]:
    """The leading part of an error location that names settings (sections and fields),
    without union members or the keys inside a dictionary setting."""
    model: Any = Settings
    path: list[str] = []
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not isinstance(part, str) or not fields or part not in fields:
            break
        path.append(part)
        model = fields[part].annotation
    return path
