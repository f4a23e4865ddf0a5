import gc

from binlog_tailer.heap import freeze_startup_objects


def test_objects_made_before_streaming_are_kept_out_of_full_collections():
    kept = [{"made": i} for i in range(1000)]  # noqa: F841 - alive through the freeze
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before + 1000
        assert gc.get_count()[0] < 50  # collected first: only survivors were frozen
    finally:
        gc.unfreeze()
