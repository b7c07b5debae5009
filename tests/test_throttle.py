"""The failed-secret throttle: an id no store holds is throttled exactly like one that
exists (no existence oracle), it runs on the manager's injected clock, and a flood of
random ids costs bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from apikeys import APIKeyError, KeyManager, TooManyFailures, _hotpath
from apikeys.storage import MemoryStore
from apikeys.testing import ManualClock
from core_support import AnyManager, CountingHasher, unknown_key, with_wrong_secret
from flavours import FLAVOURS, manager_factory

WINDOW = timedelta(seconds=60)
Answer = tuple[str, int, float | None]


@pytest.fixture(params=FLAVOURS)
def make(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[Callable[..., AnyManager]]:
    defaults = {"hasher": CountingHasher(), "failure_limit": 3, "failure_window": WINDOW}
    with manager_factory(request, clock, **defaults) as build:
        yield build


def answer(keys: AnyManager, raw: str) -> Answer:
    """What a caller (and so an attacker) learns from one verification."""
    with pytest.raises(APIKeyError) as info:
        keys.verify(raw)
    error = info.value
    retry_after = error.retry_after if isinstance(error, TooManyFailures) else None
    return type(error).__name__, error.status, retry_after


def probe(keys: AnyManager, clock: ManualClock, raw: str) -> list[Answer]:
    """Ten guesses, a pause inside the window, two more, the window's end, one more."""
    answers = [answer(keys, raw) for _ in range(10)]
    clock.advance(timedelta(seconds=45))
    answers += [answer(keys, raw) for _ in range(2)]
    clock.advance(timedelta(seconds=15))
    answers.append(answer(keys, raw))
    return answers


def test_an_unknown_id_answers_like_a_known_one(
    make: Callable[..., AnyManager], clock: ManualClock
) -> None:
    known = make()
    issued = known.create(owner="o")
    known_answers = probe(known, clock, with_wrong_secret(issued.plaintext))
    unknown_answers = probe(make(), clock, unknown_key())
    assert unknown_answers == known_answers
    # and the sequence is the throttle's, not a constant 401:
    assert [a[1] for a in known_answers] == [401] * 3 + [429] * 9 + [401]
    assert known_answers[3][2] == pytest.approx(60)
    assert known_answers[10][2] == pytest.approx(15)


def test_a_warm_id_answers_like_an_unknown_one(
    make: Callable[..., AnyManager], clock: ManualClock
) -> None:
    """A process that verified the holder must not answer wrong guesses differently."""
    warm = make()
    issued = warm.create(owner="o")
    warm.verify(issued.plaintext)
    warm_answers = probe(warm, clock, with_wrong_secret(issued.plaintext))
    assert warm_answers == probe(make(), clock, unknown_key())
    assert warm.verify(issued.plaintext).id == issued.key.id  # the holder was never paused


def test_unknown_ids_are_refused_without_hashing(make: Callable[..., AnyManager]) -> None:
    hasher = CountingHasher()
    keys = make(hasher=hasher)
    raw = unknown_key()
    for _ in range(6):
        answer(keys, raw)
    assert hasher.calls["verify"] == 0


def test_the_managers_clock_lifts_the_throttle(
    make: Callable[..., AnyManager], clock: ManualClock
) -> None:
    keys = make()
    issued = keys.create(owner="o")
    wrong = with_wrong_secret(issued.plaintext)
    for _ in range(3):
        answer(keys, wrong)
    assert answer(keys, issued.plaintext)[0] == "TooManyFailures"
    clock.advance(WINDOW)  # no sleeping, no monkeypatched time module
    assert keys.verify(issued.plaintext).id == issued.key.id


def test_a_clock_set_back_does_not_prolong_a_pause() -> None:
    throttle = _hotpath.FailureThrottle(limit=2, window=10.0)
    throttle.record_failure("a", now=100.0)
    throttle.record_failure("a", now=101.0)
    assert throttle.retry_after("a", now=101.0) == pytest.approx(9.0)
    # A wall clock stepped back an hour: the failures now lie "in the future".
    assert throttle.retry_after("a", now=101.0 - 3600) == 0
    throttle.record_failure("a", now=0.0)
    assert throttle.retry_after("a", now=0.0) == 0  # one failure left, not three


def test_the_throttle_reads_its_clock() -> None:
    now = [50.0]
    throttle = _hotpath.FailureThrottle(limit=1, window=10.0, clock=lambda: now[0])
    throttle.record_failure("a")
    assert throttle.retry_after("a") == pytest.approx(10.0)
    now[0] = 58.0
    assert throttle.retry_after("a") == pytest.approx(2.0)
    now[0] = 60.0
    assert throttle.retry_after("a") == 0


def test_random_ids_cost_bounded_memory(clock: ManualClock) -> None:
    keys = KeyManager(
        MemoryStore(), prefix="acme", clock=clock, hasher=CountingHasher(), failure_limit=3
    )
    throttle = keys._throttle
    for _ in range(2):
        for _ in range(6_000):
            answer(keys, unknown_key())
        assert len(throttle) <= 10_000
    assert len(throttle) == 10_000
    # A fixed bound per id too: an id hammered a thousand times keeps `limit` entries.
    hammered = unknown_key()
    for _ in range(1_000):
        answer(keys, hammered)
    assert max(len(q) for q in throttle._failures.values()) == 3
    assert len(throttle) == 10_000


def test_an_attacker_cannot_evict_an_id_it_keeps_failing() -> None:
    """Eviction forgets the id that failed least recently, so flooding random ids
    does not lift the pause of the id under attack while the attack goes on."""
    throttle = _hotpath.FailureThrottle(limit=2, window=60.0, max_tracked=3)
    for t in range(10):
        throttle.record_failure("target", now=float(t))
        throttle.record_failure(f"random-{t}", now=float(t))
    assert throttle.retry_after("target", now=10.0) > 0
    assert len(throttle) == 3
