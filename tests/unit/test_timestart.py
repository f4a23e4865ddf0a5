"""Points in time as start positions: parsing, precision, the line said."""

import datetime as dt

import pytest

from binlog_tailer.errors import ConfigError
from binlog_tailer.position import BinlogPosition, parse_time
from binlog_tailer.timestart import Found, _floor, describe


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-25T09:00:00Z", "2026-11-25T09:00:00+00:00"),
        ("2026-11-25T18:00:00+09:00", "2026-11-25T09:00:00+00:00"),
        ("2026-11-25 09:00:00.250Z", "2026-11-25T09:00:00.250000+00:00"),
    ],
)
def test_times_with_a_zone(text, utc):
    when = parse_time(text)
    assert when is not None and when.astimezone(dt.UTC).isoformat() == utc


@pytest.mark.parametrize(
    "text", ["binlog.000003:4", "0-1-150", "earliest", "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"]
)
def test_positions_are_not_times(text):
    assert parse_time(text) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("2026-11-25T09:00:00", "has no zone"), ("2026-13-45T09:00:00Z", "not a time")],
)
def test_bad_times_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_time(text)


def test_seconds_resolution_includes_the_whole_second():
    """MariaDB's commit times are seconds: a transaction of 09:00:00 may have committed at
    09:00:00.700, after a time of 09:00:00.500, so it is included."""
    assert _floor(1_500, commit_ms=1_000) == 1_000
    assert _floor(1_500, commit_ms=1_700) == 1_500  # MySQL: milliseconds known


def test_the_line_names_the_position_and_the_commit_time():
    when = dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)
    found = Found(BinlogPosition("binlog.000007", 1234), 1_795_597_200_500, purged=True)
    line = describe(when, found)
    assert "binlog.000007:1234" in line and "committed 2026-11-25T09:00:00.500000+00:00" in line
    assert "no longer on the server" in line
    end = describe(when, Found(BinlogPosition("binlog.000009", 4), None, purged=False))
    assert "starting at the end of the binlog, binlog.000009:4" in end
