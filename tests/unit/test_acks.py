from binlog_tailer.acks import AckTracker


def test_position_waits_for_every_earlier_record():
    t: AckTracker[str] = AckTracker()
    a, b = t.issue(), t.issue()
    t.boundary("after-txn1")
    c = t.issue()
    t.boundary("after-txn2")
    assert t.safe is None
    t.ack(b)  # out of order: txn1 still has `a` outstanding
    assert t.safe is None
    t.ack(c)
    assert t.safe is None
    t.ack(a)
    assert t.safe == "after-txn2"
    assert t.pending == 0


def test_transactions_without_records_advance_once_earlier_ones_are_acked():
    t: AckTracker[int] = AckTracker()
    t.boundary(1)  # nothing captured in it
    assert t.safe == 1
    s = t.issue()
    t.boundary(2)
    t.boundary(3)
    assert t.safe == 1
    t.ack(s)
    assert t.safe == 3


def test_a_record_never_acked_holds_the_position_forever():
    t: AckTracker[int] = AckTracker()
    failed = t.issue()
    t.boundary(1)
    for n in range(2, 100):
        t.ack(t.issue())
        t.boundary(n)
    assert t.safe is None
    assert failed == 0 and t.pending == 99


def test_boundaries_without_records_between_them_cost_one_entry():
    t: AckTracker[int] = AckTracker()
    slow = t.issue()
    for position in range(100_000):  # a catch-up of other tables behind one slow record
        t.boundary(position)
    assert t.boundaries == 1 and t.safe is None
    t.ack(slow)
    assert t.safe == 99_999 and t.boundaries == 0
