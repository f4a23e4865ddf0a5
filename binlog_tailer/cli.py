"""Command line: argument parsing, logging set-up, exit codes (the only place that exits)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from binlog_tailer import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="binlog-tailer",
        description="Tail the MySQL/MariaDB binlog and publish committed changes to Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"binlog-tailer {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stdout)
    return 0
