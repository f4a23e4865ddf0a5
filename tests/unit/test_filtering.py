from binlog_tailer.filtering import TableFilter


def test_include_exclude_wildcards():
    f = TableFilter(include=["shop.*", "*.outbox", "app.order_?"], exclude=["shop.secret*"])
    assert f("shop", "orders")
    assert f("billing", "outbox")
    assert f("app", "order_1")
    assert not f("app", "order_12")
    assert not f("shop", "secret_keys")
    assert not f("other", "orders")


def test_default_captures_everything_but_system_schemas():
    f = TableFilter()
    assert f("any", "table")
    for db in ("mysql", "information_schema", "performance_schema", "sys"):
        assert not f(db, "t")


def test_dot_is_literal_and_matching_is_case_sensitive():
    f = TableFilter(include=["a.b"])
    assert f("a", "b")
    assert not f("axb", "")
    assert not f("A", "b")


def test_empty_include_captures_nothing():
    assert not TableFilter(include=[])("a", "b")


def test_decisions_are_cached():
    f = TableFilter(include=["a.*"])
    assert f("a", "x")
    f._include = None  # a second answer must not compile or match again
    assert f("a", "x")
