import datetime as dt

from examples.popular_articles.ranking import PopularArticles

T0 = dt.datetime(2026, 1, 1, 12, 0)


def ev(article, at, **extra):
    return {"article_id": article, "at": at.isoformat(), **extra}


def test_scores_weights_window_and_deduplication():
    r = PopularArticles(window=dt.timedelta(hours=1))
    assert r.apply("c1", "ArticleCreated", ev(1, T0, title="one"))
    r.apply("v1", "ArticleViewed", ev(1, T0))
    r.apply("l1", "ArticleLiked", ev(2, T0))
    r.apply("m1", "ArticleCommented", ev(2, T0 - dt.timedelta(hours=2)))  # outside the window
    assert not r.apply("l1", "ArticleLiked", ev(2, T0))  # a redelivery counts once
    assert r.scores(T0) == {1: 1, 2: 3}
    assert r.top(1, T0) == [(2, 3)]
    assert r.titles == {1: "one"}
