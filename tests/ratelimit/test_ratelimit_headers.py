"""rate_limit_headers: Retry-After and the IETF RateLimit / RateLimit-Policy fields
(draft-ietf-httpapi-ratelimit-headers-11, structured-field form)."""

from __future__ import annotations

import math
import re

import pytest

from apikeys import QuotaExceeded, RateLimited, RateLimitStatus, TooManyFailures
from apikeys._http import HTTPSettings, problem, rate_limit_headers
from apikeys.ratelimit import rate_limit_headers as public_rate_limit_headers

# An sf-string item with integer parameters (RFC 9651), as the draft requires.
ITEM = re.compile(r'^"(?:[^"\\]|\\["\\])*"(?:;[a-z]+=[0-9]+)+$')


def test_nothing_to_tell() -> None:
    assert rate_limit_headers(None, None) == {}
    assert rate_limit_headers() == {}
    assert public_rate_limit_headers is rate_limit_headers


def test_success() -> None:
    status = RateLimitStatus(
        limit=100, remaining=42, reset_after=16.2, policy="100/minute", window=60
    )
    headers = rate_limit_headers(status)
    assert headers == {
        "RateLimit-Policy": '"100/minute";q=100;w=60',
        "RateLimit": '"100/minute";r=42;t=17',
    }
    assert all(ITEM.match(value) for value in headers.values())


def test_a_quota_without_period_has_no_window() -> None:
    status = RateLimitStatus(
        limit=1000, remaining=999, reset_after=math.inf, policy="quota:1000", window=math.inf
    )
    assert rate_limit_headers(status) == {
        "RateLimit-Policy": '"quota:1000";q=1000',
        "RateLimit": '"quota:1000";r=999',
    }


def test_refused() -> None:
    error = RateLimited(retry_after=16.01, limit=100, remaining=0, policy="owner:100/minute")
    headers = rate_limit_headers(None, error)
    assert headers == {
        "Retry-After": "17",
        "RateLimit-Policy": '"owner:100/minute";q=100;w=60',
        "RateLimit": '"owner:100/minute";r=0;t=17',
    }
    # The same Retry-After as the problem response the adapters send.
    _, problem_headers, _ = problem(error, HTTPSettings())
    assert problem_headers["Retry-After"] == headers["Retry-After"]


def test_quota_exceeded() -> None:
    error = QuotaExceeded(retry_after=3600, limit=5, policy="quota:5")
    assert rate_limit_headers(None, error) == {
        "Retry-After": "3600",
        "RateLimit-Policy": '"quota:5";q=5',
        "RateLimit": '"quota:5";r=0;t=3600',
    }


def test_a_failure_throttle_names_no_policy() -> None:
    error = TooManyFailures(retry_after=0.2)
    assert rate_limit_headers(None, error) == {"Retry-After": "1"}


def test_a_foreign_policy_name_takes_its_window_from_the_status() -> None:
    status = RateLimitStatus(limit=5, remaining=0, reset_after=3, policy="burst", window=10)
    error = RateLimited(retry_after=3, limit=5, policy="burst")
    headers = rate_limit_headers(status, error)
    assert headers["RateLimit-Policy"] == '"burst";q=5;w=10'
    assert headers["RateLimit"] == '"burst";r=0;t=3'


@pytest.mark.parametrize(
    ("policy", "quoted"),
    [('a"b', r'"a\"b"'), ("a\\b", r'"a\\b"'), ("tab\there\n", '"tabhere"')],
)
def test_policy_names_are_valid_sf_strings(policy: str, quoted: str) -> None:
    status = RateLimitStatus(limit=1, remaining=1, reset_after=0.0, policy=policy, window=0.5)
    headers = rate_limit_headers(status)
    assert headers["RateLimit-Policy"] == f"{quoted};q=1"  # w must be >= 1 s
    assert headers["RateLimit"] == f"{quoted};r=1;t=0"
