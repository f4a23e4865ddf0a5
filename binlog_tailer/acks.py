"""Which binlog position is safe to store, given Kafka's delivery acknowledgements.

Every produced record gets a sequence number, in binlog order. When a transaction ends, its
boundary position is registered together with the last sequence number issued so far. A
boundary becomes *safe* when every record up to that number is acknowledged - acks may
arrive out of order across partitions, so the oldest unacknowledged record holds everything
after it back (Maxwell's in-flight list). A failed delivery never becomes acknowledged, so the
position can never pass it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

P = TypeVar("P")


class AckTracker(Generic[P]):
    def __init__(self) -> None:
        self._next_seq = 0
        self._inflight: deque[int] = deque()  # issued, in order; done ones popped from the left
        self._done: set[int] = set()  # acked but not yet at the left of _inflight
        self._boundaries: deque[tuple[int, P]] = deque()  # (records issued before it, position)
        self._safe: P | None = None

    def issue(self) -> int:
        """A record is about to be produced: its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        self._inflight.append(seq)
        return seq

    def ack(self, seq: int) -> None:
        """Kafka acknowledged record `seq`."""
        self._done.add(seq)
        while self._inflight and self._inflight[0] in self._done:
            self._done.discard(self._inflight.popleft())
        self._advance()

    def boundary(self, position: P) -> None:
        """A transaction ended; `position` is safe once every record issued so far is acked.

        Boundaries with no record between them need the same acknowledgements: the newer one
        replaces the older, so a long run of transactions without records (other tables)
        behind one slow record costs one entry, not one per transaction."""
        if self._boundaries and self._boundaries[-1][0] == self._next_seq:
            self._boundaries[-1] = (self._next_seq, position)
        else:
            self._boundaries.append((self._next_seq, position))
        self._advance()

    @property
    def boundaries(self) -> int:
        return len(self._boundaries)

    def _advance(self) -> None:
        oldest_pending = self._inflight[0] if self._inflight else self._next_seq
        while self._boundaries and self._boundaries[0][0] <= oldest_pending:
            self._safe = self._boundaries.popleft()[1]

    @property
    def safe(self) -> P | None:
        """The newest position that is safe to store (None before the first one)."""
        return self._safe

    @property
    def pending(self) -> int:
        return len(self._inflight)

    @property
    def issued(self) -> int:
        """How many sequence numbers were issued."""
        return self._next_seq

    @property
    def oldest(self) -> int | None:
        """The sequence number of the oldest record not acknowledged (None: none)."""
        inflight = self._inflight
        return inflight[0] if inflight else None
