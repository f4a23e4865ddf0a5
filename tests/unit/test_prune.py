"""The pure parts of `outbox prune`: when a checkpoint has passed a position, the wait, the
batches, the settings it uses and its report lines."""

import pytest
from pydantic import SecretStr

from binlog_tailer.cli import main
from binlog_tailer.errors import ConfigError, PruneStopped
from binlog_tailer.position import BinlogPosition, parse_gtid, passed
from binlog_tailer.prune import Pruned, Pruner, batches, prune_mysql, quote, wait_until_passed
from binlog_tailer.settings import load_settings

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"


def at(file: str | None = None, pos: int | None = None, gtid: str | None = None):
    return BinlogPosition(file=file, pos=pos, gtid=parse_gtid(gtid) if gtid else None)


@pytest.mark.parametrize(
    ("checkpoint", "end", "expected"),
    [
        (at("binlog.000003", 500), at("binlog.000003", 500), True),
        (at("binlog.000003", 501), at("binlog.000003", 500), True),
        (at("binlog.000003", 499), at("binlog.000003", 500), False),
        (at("binlog.000004", 4), at("binlog.000003", 9_000), True),
        (at("binlog.000002", 9_000), at("binlog.000003", 4), False),
        # numbers, not text: binlog.1000000 follows binlog.999999
        (at("binlog.1000000", 4), at("binlog.999999", 10), True),
        (at("binlog.999999", 10), at("binlog.1000000", 4), False),
    ],
)
def test_passed_by_file_and_offset(checkpoint, end, expected):
    assert passed(checkpoint, end) is expected


def test_passed_by_file_wins_over_gtid_when_both_have_files():
    # the file says behind, whatever the GTIDs claim: the offset is exact
    assert not passed(at("binlog.000003", 10, "0-1-99"), at("binlog.000003", 20, "0-1-5"))


@pytest.mark.parametrize(
    ("checkpoint", "end", "expected"),
    [
        ("0-1-150", "0-1-150", True),
        ("0-1-151", "0-1-150", True),
        ("0-1-149", "0-1-150", False),
        ("0-2-150,1-1-7", "0-1-150,1-1-7", True),  # another server of the domain
        ("0-1-150", "0-1-150,1-1-7", False),  # a domain not reached at all
        ("0-1-150,1-1-6", "0-1-150,1-1-7", False),
        (f"{U1}:1-150", f"{U1}:1-150", True),
        (f"{U1}:1-200,{U2}:1-3", f"{U1}:1-150,{U2}:2", True),
        (f"{U1}:1-100:102-200", f"{U1}:1-150", False),  # 101 missing: a hole
        (f"{U1}:1-150", f"{U1}:1-150,{U2}:1", False),
        (f"{U1}:1-150", "0-1-150", False),  # dialects do not compare
    ],
)
def test_passed_by_gtid(checkpoint, end, expected):
    assert passed(at(gtid=checkpoint), at(gtid=end)) is expected


def test_passed_by_gtid_when_one_side_has_no_file_or_the_files_differ_in_name():
    assert passed(at(gtid="0-1-9"), at("binlog.000003", 4, "0-1-9"))
    assert not passed(at("mysql-bin.000009", 4, "0-1-8"), at("binlog.000003", 4, "0-1-9"))
    assert not passed(at("binlog.000009", 4), at(gtid="0-1-9"))  # nothing can tell


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_once_the_stored_checkpoint_passes_the_end():
    clock = FakeClock()
    stored = iter([at("binlog.000001", 100), at("binlog.000001", 100), at("binlog.000001", 300)])
    wait_until_passed(lambda: next(stored), at("binlog.000001", 200), 60, 0, clock, clock.sleep)
    assert clock.sleeps == [0.5, 0.5]


def test_wait_gives_up_naming_both_positions():
    clock = FakeClock()
    with pytest.raises(PruneStopped) as err:
        wait_until_passed(
            lambda: at("binlog.000001", 100), at("binlog.000002", 7), 2, 1000, clock, clock.sleep
        )
    text = str(err.value)
    assert "binlog.000001:100" in text and "binlog.000002:7" in text
    assert "not running or is behind" in text and "1000 rows deleted so far" in text
    assert 2 <= clock.now <= 2.5


def test_wait_without_a_checkpoint_refuses():
    with pytest.raises(PruneStopped, match="no stored checkpoint"):
        wait_until_passed(lambda: None, at("binlog.000001", 4), 60, 0)


def test_batches_are_bounded_and_cover_every_id():
    ids = [str(i) for i in range(2_501)]
    chunks = list(batches(ids, 1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 501]
    assert [i for c in chunks for i in c] == ids


def test_quote_escapes_backticks():
    assert quote("app", "out`box") == "`app`.`out``box`"


def test_prune_credentials_default_to_the_cdc_users():
    s = load_settings(mysql={"user": "cdc", "password": "pw-cdc", "port": 3310})
    m = prune_mysql(s)
    assert (m.user, m.password.get_secret_value(), m.port) == ("cdc", "pw-cdc", 3310)
    s = load_settings(mysql={"user": "cdc"}, prune={"user": "pruner", "password": "pw-p"})
    m = prune_mysql(s)
    assert (m.user, m.password) == ("pruner", SecretStr("pw-p"))
    assert s.mysql.user == "cdc"  # the CDC user's settings stay as they are


def test_prune_needs_outbox_tables_and_a_timestamp_column():
    with pytest.raises(ConfigError, match=r"outbox\.tables"):
        Pruner(load_settings(), None)
    s = load_settings(outbox={"tables": ["app.outbox"], "timestamp_column": None})
    with pytest.raises(ConfigError, match="timestamp_column"):
        Pruner(s, None)


def test_relay_deleting_rows_has_nothing_to_prune():
    s = load_settings(
        outbox={"tables": ["app.outbox"], "source": "poll"}, relay={"after_publish": "delete"}
    )
    lines: list[Pruned] = []
    Pruner(s, None).run(lines.append)  # connects to nothing
    assert [str(p) for p in lines] == [
        "app.outbox: nothing to prune (relay.after_publish = delete: the relay deletes each row)"
    ]


def test_report_lines():
    assert str(Pruned("app.outbox", rows=100_000, transactions=100, seconds=4.31)) == (
        "app.outbox: 100000 rows deleted in 100 DELETE transactions, 4.3 s"
    )
    assert str(Pruned("app.outbox", rows=7, dry_run=True)) == (
        "app.outbox: 7 rows to delete (dry run: nothing deleted)"
    )


@pytest.mark.parametrize("wait", ["-1", "soon", "100000"])
def test_a_bad_wait_is_a_usage_error(wait, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["outbox", "prune", "--wait", wait])
    assert exc.value.code == 2
    assert "not a number of seconds" in capsys.readouterr().err


def test_prune_without_outbox_tables_is_a_settings_error(monkeypatch, capsys):
    monkeypatch.delenv("BINLOG_TAILER_OUTBOX__TABLES", raising=False)
    assert main(["outbox", "prune"]) == 2
    assert "outbox prune needs outbox.tables" in capsys.readouterr().err
