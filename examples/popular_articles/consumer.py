"""The ranking's Kafka consumer: a thread applying every event of the topic, from its start."""

from __future__ import annotations

import json
import threading
import uuid

from confluent_kafka import Consumer

from examples.popular_articles.ranking import PopularArticles


class RankingConsumer(threading.Thread):
    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.ranking = PopularArticles()
        self.lock = threading.Lock()
        self.consumed = 0
        self.duplicates = 0
        self._stop_event = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"ranking-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 0,  # its reconnect chatter while Kafka is down is expected
            }
        )
        self.consumer.subscribe([topic])

    def run(self) -> None:
        while not self._stop_event.is_set():
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = dict(msg.headers() or [])
            with self.lock:
                self.consumed += 1
                fresh = self.ranking.apply(
                    headers["event_id"].decode(),
                    headers["event_type"].decode(),
                    json.loads(msg.value()),
                )
                self.duplicates += not fresh
        self.consumer.close()

    def seen(self) -> set[str]:
        with self.lock:
            return set(self.ranking.seen)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)
