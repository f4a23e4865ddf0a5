"""The exception tree of binlog-tailer.

    BinlogTailerError               anything this package raises on purpose
    ├── ConfigError                 bad settings or arguments (exit code 2)
    ├── SourceError                 reading the binlog
    │   ├── SourceUnavailable       cannot connect / lost the connection (transient: retried)
    │   └── PositionNotFound        the position to resume from is gone (purged binlog)
    ├── PublishError                Kafka refused or could not take a record (fatal)
    │   └── RecordRejected          Kafka refused one record for what it is (too large):
    │                               dead-lettered when a dead-letter topic is set
    │   └── TopicNotCreated         a missing topic could not be created (no Create ACL, ...)
    ├── PublishInterrupted          a stop request ended a wait for room in Kafka's full
    │                               local queue: the record was not sent
    ├── MappingError                a row could not be turned into a record (fatal)
    │   └── BadRecord               one bad row: dead-lettered, or fatal (dead_letter.mode)
    ├── CheckpointError             the stored position cannot be read or written
    └── PruneStopped                outbox prune cannot prove rows published (no checkpoint,
                                    or it did not pass the binlog's end in time)

Adapters translate the exceptions of their dependency at the boundary
(``raise SourceUnavailable(...) from exc``); the CLI turns these into one clear line and an
exit code. Nothing here imports anything of ours.
"""

from typing import Any


class BinlogTailerError(Exception):
    """Base class of the errors binlog-tailer reports to its user."""


class ConfigError(BinlogTailerError):
    """Settings or arguments are invalid."""


class SourceError(BinlogTailerError):
    """Reading the binlog failed."""


class SourceUnavailable(SourceError):
    """The server cannot be reached, or the replication connection was lost."""


class PositionNotFound(SourceError):
    """The position to resume from no longer exists on the server."""


class PublishError(BinlogTailerError):
    """Kafka did not accept a record."""


class RecordRejected(PublishError):
    """Kafka refused this one record for what it is (e.g. too large); others may still go."""

    def __init__(self, message: str, record: object, seq: int) -> None:
        super().__init__(message)
        self.record: Any = record  # the model.Record refused
        self.seq = seq  # its AckTracker sequence number


class TopicNotCreated(PublishError):
    """A missing topic could not be created."""


class PublishInterrupted(BinlogTailerError):
    """A stop was requested while a record waited for room in Kafka's full local queue: it was
    not sent (its sequence number is never acknowledged, so no checkpoint passes it)."""

    def __init__(self, record: object, seq: int) -> None:
        super().__init__("stop requested while Kafka's local queue was full")
        self.record: Any = record  # the model.Record not sent
        self.seq = seq


class MappingError(BinlogTailerError):
    """A row change could not be mapped to a Kafka record."""


class BadRecord(MappingError):
    """One row cannot become a valid record; the dead-letter policy decides what happens."""

    def __init__(
        self, reason: str, message: str, original: bytes | None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason  # a short code: missing_value, invalid_json, topic_not_allowed, ...
        self.original = original
        self.event_id = event_id


class CheckpointError(BinlogTailerError):
    """The checkpoint store could not be read or written."""


class PruneStopped(BinlogTailerError):
    """`outbox prune` stopped: it cannot prove the rows it would delete were published."""
