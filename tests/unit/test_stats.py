"""The pipeline's plain counters: lag, checkpoint age, latency, per-table counts."""

from pymysqlreplication.constants import FIELD_TYPE

from binlog_tailer.model import Column, TableSchema
from binlog_tailer.stats import FOLD_AFTER, Latency, PipelineStats
from tests.unit.test_pipeline import build, end, row


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lag_is_the_age_of_the_oldest_unacknowledged_change_and_zero_when_all_are():
    stats = PipelineStats()
    stats.mark(issued=10, commit_ms=5_000, oldest=3, caught_up=False)
    stats.mark(issued=20, commit_ms=9_000, oldest=3, caught_up=False)
    assert stats.lag_seconds(now_ms=12_000) == 7.0  # record 3 was committed by 5.0 s
    assert stats.lag_seconds(now_ms=20_000) == 15.0  # Kafka stalls: the lag grows
    stats.mark(issued=20, commit_ms=9_000, oldest=12, caught_up=False)
    assert stats.lag_seconds(now_ms=12_000) == 3.0  # records up to 10 acknowledged
    stats.mark(issued=20, commit_ms=9_000, oldest=None, caught_up=True)
    assert stats.lag_seconds(now_ms=60_000) == 0.0  # idle: nothing waits
    stats.mark(issued=21, commit_ms=70_000, oldest=20, caught_up=False)
    assert stats.lag_seconds(now_ms=69_000) == 0.0  # a server clock ahead of ours: never < 0


def test_checkpoint_age_counts_from_the_last_time_it_caught_up():
    clock = Clock()
    stats = PipelineStats(clock)
    stats.mark(issued=0, commit_ms=0, oldest=None, caught_up=True)
    clock.now += 3600  # idle for an hour: still caught up
    stats.mark(issued=0, commit_ms=0, oldest=None, caught_up=True)
    assert stats.checkpoint_age() == 0.0
    clock.now += 1
    stats.mark(issued=5, commit_ms=1, oldest=0, caught_up=False)
    clock.now += 4
    assert stats.checkpoint_age() == 5.0  # not the hour of idleness before
    stats.mark(issued=5, commit_ms=1, oldest=None, caught_up=True)
    assert stats.checkpoint_age() == 0.0


def test_latency_histogram_is_cumulative_and_ignores_unknown_latencies():
    lat = Latency(buckets=(0.01, 0.1))
    for seconds in (0.005, 0.05, 0.05, 3.0, None):
        lat.observe(seconds)
    assert lat.cumulative() == [("0.01", 1), ("0.1", 3), ("+Inf", 4)]
    assert abs(lat.total - 3.105) < 1e-9


def test_table_counts_sum_the_schema_objects_of_a_table_and_survive_a_fold():
    stats = PipelineStats()
    cols = (Column("id", FIELD_TYPE.LONG),)
    first, second = TableSchema("d", "t", cols, ("id",)), TableSchema("d", "t", cols, ("id",))
    stats.table(first)["c"][0] += 2
    stats.table(second)["c"][0] += 1
    stats.table(second)["c"][1] += 4
    assert stats.table_counts()[("d", "t", "c")] == (3, 4)
    for i in range(FOLD_AFTER + 1):  # very many table maps: counts are folded by name
        stats.table(TableSchema("d", f"x{i}", cols, ("id",)))["u"][0] += 1
    assert len(stats.by_table) < FOLD_AFTER
    counts = stats.table_counts()
    assert counts[("d", "t", "c")] == (3, 4)
    assert sum(rows for (_, _, op), (rows, _) in counts.items() if op == "u") == FOLD_AFTER + 1


def test_the_pipeline_counts_rows_and_records_by_table_and_operation_and_catches_up():
    p, _, _ = build([row(1), row(2), end(200), None])
    p.run()
    assert p.stats.table_counts() == {
        ("d", "t", "c"): (2, 2),
        ("d", "t", "u"): (0, 0),
        ("d", "t", "d"): (0, 0),
    }
    assert p.stats.caught_up and p.stats.lag_seconds(0) == 0.0
    assert p.checkpoint == p.saved


def test_records_without_a_change_behind_them_add_no_lag():
    stats = PipelineStats()
    stats.mark(issued=3, commit_ms=1_000, oldest=None, caught_up=True)
    # a heartbeat record (seq 3) waits for Kafka: no row was read, no commit time
    stats.mark(issued=4, commit_ms=0, oldest=3, caught_up=False)
    assert stats.lag_seconds(now_ms=3_600_000) == 0.0
