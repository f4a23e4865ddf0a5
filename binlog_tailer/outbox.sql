-- The outbox table binlog-tailer's outbox mode reads by default (see README, "Outbox").
-- id: a time-ordered UUIDv7, so new rows append at the end of the primary key's B-tree.
-- created_at: when the event was written; its index serves clean-up jobs
--   (DELETE FROM outbox WHERE created_at < NOW() - INTERVAL 7 DAY).
-- payload: JSON (validated by the server; on MariaDB a LONGTEXT with a json_valid check).
CREATE TABLE IF NOT EXISTS outbox (
  id             CHAR(36) CHARACTER SET ascii NOT NULL,
  aggregate_type VARCHAR(255) NOT NULL,
  aggregate_id   VARCHAR(255) NOT NULL,
  event_type     VARCHAR(255) NOT NULL,
  payload        JSON NOT NULL,
  created_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_outbox_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
