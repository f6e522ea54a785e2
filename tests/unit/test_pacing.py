"""The scan's client-side pacing: EC2's read-call token bucket mirrored per region (fake clock, no sleeping)."""

from __future__ import annotations

import pytest

from amiguard.aws.pacing import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def bucket(time: FakeTime, *, capacity: float = 3, rate: float = 20, cushion: float = 0, armed: bool = True):
    return TokenBucket(capacity, rate, cushion, armed, time.clock, time.sleep)


def test_burst_goes_at_once_then_calls_leave_at_the_refill_rate_when_the_bucket_is_full() -> None:
    # Given a full bucket of 3 at 20 per second
    time = FakeTime()
    paced = bucket(time)
    # When 5 calls are made back to back
    for _ in range(5):
        paced.take()
    # Then 3 at once, then one every 50 ms
    assert time.slept == [0.05, 0.05]


def test_waiting_callers_queue_in_order_when_they_reserve_at_the_same_moment() -> None:
    # Given an empty bucket (no time passes between reservations: threads arriving together)
    time = FakeTime()
    paced = bucket(time, capacity=1)
    paced.take()
    # When three callers reserve at once
    waits = [paced.reserve() for _ in range(3)]
    # Then each is due 1/rate after the previous: no herd
    assert [round(w, 6) for w in waits] == [0.05, 0.1, 0.15]


def test_refill_never_exceeds_the_capacity_when_the_bucket_sits_idle() -> None:
    # Given
    time = FakeTime()
    paced = bucket(time)
    for _ in range(3):
        paced.take()
    # When idle for a minute
    time.now += 60
    for _ in range(4):
        paced.take()
    # Then only 3 tokens were there
    assert time.slept == [0.05]


def test_unarmed_bucket_lets_everything_through_until_the_server_says_it_is_empty() -> None:
    # Given
    time = FakeTime()
    paced = bucket(time, armed=False, cushion=5)
    # When
    for _ in range(500):
        paced.take()
    paced.drain()  # EC2 answered RequestLimitExceeded
    paced.take()
    paced.take()
    # Then no wait before; after, the cushion (5 tokens) then one token's time each
    assert time.slept == [0.3, 0.05]


def test_throttle_empties_an_armed_bucket_to_minus_the_cushion_when_it_thought_it_had_tokens() -> None:
    # Given a full bucket that EC2 says is empty (someone else in the account used it)
    time = FakeTime()
    paced = bucket(time, capacity=100, cushion=2)
    # When
    paced.drain()
    paced.take()
    # Then
    assert time.slept == [0.15]


def test_throttle_keeps_queued_reservations_when_the_bucket_is_already_below_zero() -> None:
    # Given three callers already queued
    time = FakeTime()
    paced = bucket(time, capacity=1, cushion=1)
    for _ in range(4):
        paced.reserve()
    # When
    paced.drain()
    # Then the next one is still behind the queue, not moved forward
    assert round(paced.reserve(), 6) == 0.2


@pytest.mark.parametrize(("capacity", "rate"), [(0, 20), (10, 0)])
def test_bucket_refuses_a_shape_that_could_never_pace_when_built(capacity: float, rate: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(capacity, rate)
