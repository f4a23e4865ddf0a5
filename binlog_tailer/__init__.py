"""binlog-tailer: tail the MySQL/MariaDB binlog and publish committed changes to Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("binlog-tailer")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
