"""The circuit breaker's half-open logic (`admit`): one probe per open period, closed by a
success, reopened by a failure. Pure: a hand-moved clock."""

from __future__ import annotations

from auth.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_closed_admits_every_call():
    b = Breaker(open_s=2, clock=Clock())
    assert b.state == CLOSED
    assert all(b.admit() for _ in range(100))
    b.success()
    assert b.state == CLOSED


def test_open_refuses_then_half_open_lets_exactly_one_probe_through():
    clock = Clock()
    b = Breaker(open_s=2, clock=clock)
    b.trip()
    assert b.state == OPEN and not b.admit() and b.retry_after == 2
    clock.now += 1.5
    assert not b.admit() and b.retry_after == 1  # never below 1 s: a Retry-After header
    clock.now += 0.6
    assert b.state == HALF_OPEN
    assert b.admit(), "the first call after the open period is the probe"
    assert [b.admit() for _ in range(10)] == [False] * 10, "the others wait for the probe's answer"


def test_probe_success_closes():
    clock = Clock()
    b = Breaker(open_s=2, clock=clock)
    b.trip()
    clock.now += 2
    assert b.admit()
    b.success()
    assert b.state == CLOSED
    assert all(b.admit() for _ in range(10))


def test_probe_failure_reopens_for_a_whole_period():
    clock = Clock()
    b = Breaker(open_s=2, clock=clock)
    b.trip()
    clock.now += 2
    assert b.admit()
    b.trip()
    assert b.state == OPEN and not b.admit()
    clock.now += 1.9
    assert not b.admit()
    clock.now += 0.1
    assert b.admit() and not b.admit()  # the next period's one probe


def test_a_probe_that_never_answers_is_replaced_after_a_period():
    clock = Clock()
    b = Breaker(open_s=2, clock=clock)
    b.trip()
    clock.now += 2
    assert b.admit()  # its caller is cancelled and never reports
    clock.now += 1.9
    assert not b.admit()
    clock.now += 0.2
    assert b.admit() and not b.admit()


def test_allow_keeps_its_meaning_for_redis_callers():
    """`allow` lets every call through once the period is over (the Redis fallbacks rely on it)."""
    clock = Clock()
    b = Breaker(open_s=2, clock=clock)
    b.trip()
    assert not b.allow()
    clock.now += 2
    assert b.allow() and b.allow() and b.allow()


def test_reset_closes():
    b = Breaker(open_s=2, clock=Clock())
    b.trip()
    b.reset()
    assert b.state == CLOSED and b.admit() and b.admit()
