-- Run once by the MySQL image on its first start (an empty data directory), in the database
-- MYSQL_DATABASE (board). Demo passwords: change them, and the matching ones in compose.yaml.
SET SESSION sql_log_bin = 0;

-- binlog-tailer's user: reads the binlog (REPLICATION SLAVE), the server's binlog state
-- (REPLICATION CLIENT) and the schema and collation tables (SELECT). Nothing else.
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 'cdc-demo-password';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'%';

-- The board application's user: its own tables only (the outbox table among them).
CREATE USER IF NOT EXISTS 'board'@'%' IDENTIFIED BY 'board-demo-password';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON board.* TO 'board'@'%';
