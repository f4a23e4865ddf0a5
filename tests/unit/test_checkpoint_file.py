import json

import pytest

from binlog_tailer.checkpoint.file import FileCheckpointStore
from binlog_tailer.errors import CheckpointError
from binlog_tailer.position import BinlogPosition, MariadbGtidPos


def test_save_load_reset(tmp_path):
    store = FileCheckpointStore(tmp_path / "sub" / "offsets.json")
    assert store.load() is None
    p = BinlogPosition("binlog.000001", 1234, MariadbGtidPos.parse("0-1-9"))
    store.save(p)
    assert store.load() == p
    store.save(BinlogPosition("binlog.000002", 4))
    assert store.load() == BinlogPosition("binlog.000002", 4)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["offsets.json"]  # no temp files
    store.reset()
    assert store.load() is None


def test_a_damaged_file_is_a_clear_error_not_a_fresh_start(tmp_path):
    path = tmp_path / "offsets.json"
    path.write_text('{"position": {"file": "x.000001", "pos": 1')
    with pytest.raises(CheckpointError, match="offsets reset"):
        FileCheckpointStore(path).load()
    path.write_text(json.dumps({"position": {"file": None, "pos": None, "gtid": None}}))
    with pytest.raises(CheckpointError):
        FileCheckpointStore(path).load()


def test_unwritable_location_is_a_checkpoint_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot write"):
        FileCheckpointStore(blocker / "offsets.json").save(BinlogPosition("b.000001", 4))
