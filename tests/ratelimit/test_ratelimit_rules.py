"""The pure rate-limit rules: parsing, planning, and the arithmetic of windows."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apikeys import QuotaExceeded, RateLimited
from apikeys._models import APIKey
from apikeys._policy import validate_quota, validate_rate_limits
from apikeys.errors import InvalidArgument
from apikeys.ratelimit._rules import (
    allows,
    parse_quota,
    parse_rate,
    parse_rates,
    plan,
    policy_window,
    refusal,
    retry_after,
    statuses,
    tightest,
    used,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_key(**changes: object) -> APIKey:
    fields: dict[str, object] = {
        "id": "K" * 16,
        "prefix": "acme",
        "owner": "team-1",
        "created_at": T0,
    }
    fields.update(changes)
    return APIKey.model_validate(fields)


@pytest.mark.parametrize(
    ("text", "count", "window"),
    [
        ("100/minute", 100, 60),
        ("5000 per day", 5000, 86_400),
        ("10/5 seconds", 10, 5),
        ("3/week", 3, 604_800),
        ("1/month", 1, 30 * 86_400),
        ("2 PER 3 Hours", 2, 10_800),
        (" 7/year ", 7, 365 * 86_400),
    ],
)
def test_parse_rate(text: str, count: int, window: int) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.window, rate.text) == (count, window, text.strip())


@pytest.mark.parametrize(
    ("text", "uses", "period"),
    [("1000", 1000, None), ("1000/month", 1000, 30 * 86_400), ("5 per day", 5, 86_400)],
)
def test_parse_quota(text: str, uses: int, period: int | None) -> None:
    assert (parse_quota(text).uses, parse_quota(text).period) == (uses, period)


@pytest.mark.parametrize("text", ["", "0/minute", "10", "10/fortnight", "1/0 minutes", "x/day"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        parse_rate(text)


_SAMPLES = st.text(alphabet="0123456789 /perPERsecondminutehourdayweekmonthyear", max_size=24)


@given(_SAMPLES)
def test_parser_accepts_exactly_what_the_core_validates(text: str) -> None:
    try:
        validate_rate_limits([text])
        core_ok = True
    except InvalidArgument:
        core_ok = False
    try:
        parse_rate(text)
        ours_ok = True
    except ValueError:
        ours_ok = False
    assert core_ok == ours_ok
    try:
        validate_quota(text)
        core_ok = True
    except InvalidArgument:
        core_ok = False
    try:
        parse_quota(text)
        ours_ok = True
    except ValueError:
        ours_ok = False
    assert core_ok == ours_ok


def test_the_tightest_limit_per_window_is_kept() -> None:
    rates = parse_rates(("100/minute", "60 per minute", "1000/hour"))
    assert [(r.count, r.window) for r in rates] == [(60, 60), (1000, 3600)]


def test_policy_window_reads_our_policy_names() -> None:
    assert policy_window("100/minute") == 60
    assert policy_window("owner:1000/hour") == 3600
    assert policy_window("quota:1000/month") == 30 * 86_400
    assert policy_window("quota:1000") is None
    assert policy_window("burst") is None


def test_the_keys_own_limits_replace_the_default_and_owner_limits_add_up() -> None:
    default = parse_rates(("5/minute",))
    owner = parse_rates(("50/hour",))
    at = T0.timestamp()
    own = plan(
        make_key(rate_limits=("2/second",)),
        at,
        default=default,
        owner=owner,
        algorithm="sliding-window",
    )
    assert [(c.kind, c.policy) for c in own] == [("key", "2/second"), ("owner", "owner:50/hour")]
    fallback = plan(make_key(quota="9"), at, default=default, owner=(), algorithm="fixed-window")
    assert [(c.kind, c.policy) for c in fallback] == [("key", "5/minute"), ("quota", "quota:9")]
    assert plan(make_key(), at, default=(), owner=(), algorithm="fixed-window") == ()


def test_owner_counters_are_shared_by_the_owners_keys_only() -> None:
    owner = parse_rates(("50/hour",))
    at = T0.timestamp()

    def owner_counter(key: APIKey) -> str:
        return plan(key, at, default=(), owner=owner, algorithm="fixed-window")[0].current

    assert owner_counter(make_key(id="A" * 16)) == owner_counter(make_key(id="B" * 16))
    assert owner_counter(make_key(owner="team-2")) != owner_counter(make_key())


def test_windows_are_aligned_to_the_epoch() -> None:
    key = make_key(rate_limits=("10/minute",))
    start = T0.timestamp()
    late = plan(key, start + 59.5, default=(), owner=(), algorithm="sliding-window")[0]
    assert late.ends_in == pytest.approx(0.5)
    assert late.weight == pytest.approx(0.5 / 60)
    assert late.previous is not None
    assert late.previous != late.current
    nxt = plan(key, start + 60, default=(), owner=(), algorithm="sliding-window")[0]
    assert nxt.previous == late.current
    assert nxt.ends_in == 60
    assert nxt.weight == 1.0


def test_quota_periods_start_at_the_keys_creation() -> None:
    key = make_key(created_at=T0 + timedelta(hours=5), quota="100/day")
    at = (T0 + timedelta(days=3)).timestamp()
    counter = plan(key, at, default=(), owner=(), algorithm="fixed-window")[-1]
    assert counter.ends_in == pytest.approx(5 * 3600)
    assert counter.window == 86_400


@given(
    limit=st.integers(1, 40),
    previous=st.integers(0, 40),
    current=st.integers(0, 40),
    elapsed=st.floats(0.0, 59.99),
)
def test_retry_after_is_exactly_when_the_sliding_window_lets_one_through(
    limit: int, previous: int, current: int, elapsed: float
) -> None:
    """Walk time forward from a refusal: refused just before retry_after, allowed at it."""
    previous = min(previous, limit)
    current = min(current, limit)
    key = make_key(rate_limits=(f"{limit}/minute",))
    start = T0.timestamp()
    counter = plan(key, start + elapsed, default=(), owner=(), algorithm="sliding-window")[0]
    if used(counter, current, previous) < limit:
        return
    wait = retry_after(counter, current, previous, exhausted=0)
    assert wait > 0

    def allowed_at(offset: float) -> bool:
        later = plan(
            key, start + elapsed + offset, default=(), owner=(), algorithm="sliding-window"
        )[0]
        if later.current == counter.current:
            counts = (current, previous)
        elif later.previous == counter.current:
            counts = (0, current)
        else:
            counts = (0, 0)
        return allows((later,), [counts])

    assert allowed_at(wait)
    assert not allowed_at(max(0.0, wait - 0.002))


def test_fixed_window_retry_is_the_end_of_the_window() -> None:
    key = make_key(rate_limits=("3/minute",))
    counter = plan(key, T0.timestamp() + 45, default=(), owner=(), algorithm="fixed-window")[0]
    assert retry_after(counter, 3, 0, exhausted=0) == pytest.approx(15)


def test_refusal_names_the_counter_that_blocks_longest() -> None:
    key = make_key(rate_limits=("1/second", "10/hour"), quota="100")
    at = T0.timestamp()
    counters = plan(key, at, default=(), owner=(), algorithm="fixed-window")
    error = refusal(counters, [(1, 0), (10, 0), (5, 0)], exhausted=99)
    assert type(error) is RateLimited
    assert (error.policy, error.limit, error.remaining) == ("10/hour", 10, 0)
    assert error.retry_after == pytest.approx(3600)
    quota = refusal(counters, [(1, 0), (0, 0), (100, 0)], exhausted=99)
    assert isinstance(quota, QuotaExceeded)
    assert (quota.policy, quota.retry_after, quota.status) == ("quota:100", 99, 429)


def test_statuses_count_the_charge_and_tightest_picks_the_fewest_left() -> None:
    key = make_key(rate_limits=("10/minute", "100/hour"))
    counters = plan(key, T0.timestamp(), default=(), owner=(), algorithm="fixed-window")
    found = statuses(counters, [(3, 0), (95, 0)], charged=True)
    assert [s.remaining for s in found] == [6, 4]
    best = tightest(found)
    assert best is not None
    assert best.policy == "100/hour"
    assert tightest(()) is None
    assert math.isinf(
        statuses(
            plan(make_key(quota="5"), 0, default=(), owner=(), algorithm="fixed-window"),
            [(0, 0)],
            charged=False,
        )[0].window
    )
