"""Our own binlog reader: the replication protocol, event headers, table maps and rows.

Measured first (see README "Performance"): with python-mysql-replication, parsing the table map
that precedes every transaction took about half of all time for single-row transactions, and
decoding rows a sixth. This package reads the same wire format with one ``struct`` call per
header, caches table maps by their bytes, and decodes rows with readers compiled once per
table map. python-mysql-replication still provides the MySQL binary-JSON decoder, the MySQL GTID
set encoding for the dump command, and the column type constants.
"""
