"""Fuzzing: the key parser, header extraction, stored-hash parsing and the scanner.

Two engines over the same targets (``_fuzz_targets.py``): Hypothesis properties
(every tier; budgets from ``_tier``) and, in the full tier, coverage-guided atheris
runs in a subprocess (``_atheris_harness.py``; atheris installs on this machine's
CPython 3.11). Property: a value or an ``apikeys.errors`` error, never anything
else; each atheris input is bounded by libFuzzer's ``-timeout``.

Each known edge of issue 15 is pinned with ``@example``, so a regression fails the
same way every run.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _fuzz_targets import (
    PREFIXES,
    PRODUCTION,
    SETTINGS,
    TESTS_PROFILE,
    header_extraction,
    key_parser,
    scanner,
    stored_hash,
)
from _tier import TIER, budget, heavy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apikeys._keyformat import ALPHABET, format_key, generate
from apikeys.errors import AuthenticationError

HERE = Path(__file__).parent
ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and NUL included
ANY_TEXT = st.text(ANY_CHAR, max_size=200)
FUZZ = settings(
    max_examples=budget(200, 3000, 30000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- key parser -------------------------------------------------------------------------

keys = st.builds(lambda prefix: generate(prefix)[1], st.sampled_from(sorted(PREFIXES)))


@st.composite
def key_like(draw: st.DrawFn) -> str:
    """A real key, then maybe mutated: a character changed, dropped, doubled or
    glued, a prefix swapped, whitespace or control characters added."""
    key = draw(keys)
    mutation = draw(st.sampled_from(["none", "swap", "drop", "glue", "pad", "prefix", "case"]))
    i = draw(st.integers(0, len(key) - 1))
    if mutation == "swap":
        return key[:i] + draw(ANY_CHAR) + key[i + 1 :]
    if mutation == "drop":
        return key[:i] + key[i + 1 :]
    if mutation == "glue":
        return key + draw(st.sampled_from(["", " ", ",", "\x00"])) + key
    if mutation == "pad":
        return draw(ANY_TEXT) + key + draw(ANY_TEXT)
    if mutation == "prefix":
        return draw(st.sampled_from(["ACME", "acme_", "acme__live", "other"])) + key[4:]
    if mutation == "case":
        return key.swapcase()
    return key


@FUZZ
@given(st.one_of(ANY_TEXT, key_like(), st.binary(max_size=120).map(lambda b: b.decode("latin-1"))))
@example("")
@example("\x00" * 87)
@example("acme_" + "A" * 54)
@example("a" * 1_000_000)
def test_key_parser_is_total_and_exact(raw: str) -> None:
    key_parser(raw)


def test_key_parser_takes_bounded_time_whatever_the_length() -> None:
    """A 1 MB input costs no more than a few well-formed keys: it is refused by its
    length before any scan (ratio measured side by side, not absolute time)."""
    valid = generate("acme")[1]
    huge = "acme_" + "A" * 1_000_000

    def best(raw: str) -> float:
        times = []
        for _ in range(200):
            start = time.perf_counter()
            key_parser(raw)
            times.append(time.perf_counter() - start)
        return min(times)

    assert best(huge) < 20 * best(valid)


# --- header extraction ------------------------------------------------------------------

header_value = st.one_of(
    ANY_TEXT,
    keys,
    st.builds(
        lambda k, pre, post: pre + k + post,
        keys,
        st.sampled_from(["", " ", "\t", ",", " ,"]),
        st.sampled_from(["", " ", "\t", ",", ", "]),
    ),
    keys.map(lambda k: "Bearer " + k),
    st.builds(
        lambda scheme, k: f"{scheme} {k}",
        st.sampled_from(["bearer", "BEARER", "Basic", "Token", ""]),
        keys,
    ),
)
header_lists = st.lists(header_value, max_size=3)


@FUZZ
@given(header_lists, header_lists, header_lists)
def test_header_extraction_gives_one_verbatim_credential_or_a_401(
    authorization: list[str], api_key: list[str], query: list[str]
) -> None:
    header_extraction(authorization, api_key, query)


def _ows_trimmed(value: str) -> str:
    return value.strip(" \t")


@FUZZ
@given(
    keys,
    st.sampled_from(["X-API-Key", "Authorization"]),
    st.sampled_from(["lead", "trail", "nbsp", "nel"]),
)
@example(generate("acme")[1], "X-API-Key", "lead")
@example(generate("acme")[1], "X-API-Key", "nbsp")
def test_header_extraction_is_strict_about_empty_elements_and_whitespace(
    key: str, header: str, edge: str
) -> None:
    """RFC 9110: an empty list element means a second (empty) header line, so
    ``,KEY`` and ``KEY,`` are malformed; only SP and HTAB may be trimmed."""
    value = {"lead": "," + key, "trail": key + ",", "nbsp": "\xa0" + key, "nel": key + "\x85"}[edge]
    if header == "Authorization":
        value = "Bearer " + value
    args = ([value], []) if header == "Authorization" else ([], [value])
    try:
        got = SETTINGS.extract_key(*args)
    except AuthenticationError as exc:
        refused = exc.code
    else:
        refused = None
    if refused is not None:
        assert refused == "malformed"
        return
    assert got == _ows_trimmed(value.removeprefix("Bearer ")), "trimmed more than OWS"
    assert got != key, f"{value!r} was read as the bare key"


# --- stored hashes ----------------------------------------------------------------------

phc_like = st.builds(
    lambda variant, version, m, t, p, salt, digest, tail: (
        f"$argon2{variant}$v={version}$m={m},t={t},p={p}${salt}${digest}{tail}"
    ),
    st.sampled_from(["id", "i", "d", "ID", ""]),
    st.sampled_from(["19", "16", "x", "019", ""]),
    st.sampled_from(["8", "12288", "49152", "4194304", "-1", "0", "9" * 30, ""]),
    st.sampled_from(["1", "0", "4", "5", "-1", "999999999"]),
    st.sampled_from(["1", "0", "4", "255"]),
    st.text(ALPHABET + "+/=", max_size=30),
    st.text(ALPHABET + "+/=", max_size=60),
    st.sampled_from(["", "\x00", "$", " ", "\n", "\ud800"]),
)
real_hashes = st.sampled_from([PRODUCTION.hash("s3cret"), TESTS_PROFILE.hash("s3cret")])
hash_text = st.one_of(
    ANY_TEXT, phc_like, real_hashes, st.builds(str.__add__, real_hashes, ANY_TEXT)
)


ascii_hash_text = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=200),
    phc_like.filter(str.isascii),
    real_hashes,
    st.builds(str.__add__, real_hashes, st.text(st.characters(max_codepoint=127), max_size=20)),
)


@FUZZ
@given(ascii_hash_text, st.sampled_from(["s3cret", "wrong"]))
def test_stored_hashes_as_the_manager_uses_them_give_only_booleans(text: str, secret: str) -> None:
    """ASCII only: a non-ASCII stored hash is item 5's (next test)."""
    stored_hash(text, secret)


@FUZZ
@given(hash_text)
@example("not a hash")
@example("\ud800")
@example("$argon2id$v=19$m=12288,t=1,p=1$$\x80")
def test_every_hasher_method_takes_any_string(text: str) -> None:
    """Called directly (a custom store, a migration script), ``supports``, ``verify``
    and ``needs_rehash`` answer a boolean for any string, never an argon2-cffi
    exception or a ``UnicodeEncodeError``. (The third example is reachable from
    ``KeyManager.verify``: ``supports`` accepts it and ``verify`` then raises
    ``UnicodeEncodeError``.)"""
    for hasher in (PRODUCTION, TESTS_PROFILE):
        assert isinstance(hasher.supports(text), bool)
        assert isinstance(hasher.verify(text, "s3cret"), bool)
        assert isinstance(hasher.needs_rehash(text), bool)


@pytest.mark.parametrize("planted", ["weak", "nul"])
def test_the_production_hasher_refuses_weak_or_trailing_garbage_hashes(planted: str) -> None:
    good = PRODUCTION.hash("s3cret")
    text = TESTS_PROFILE.hash("s3cret") if planted == "weak" else good + "\x00"
    assert PRODUCTION.supports(text) is False


# --- scanner ----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400), st.lists(keys, max_size=3), st.binary(max_size=200))
@example(b"", [], b"")
def test_scanner_finds_exactly_the_planted_keys(
    head: bytes, planted: list[str], tail: bytes
) -> None:
    body = b" ".join(k.encode() for k in planted)
    data = head + b"\n " + body + b" \n" + tail
    assert scanner(data, planted) >= len(planted) or b"apikeys:allow" in data


def test_scanner_reports_no_checksum_look_alikes() -> None:
    """54 random base62 characters after a prefix pass the checksum 1 in 62**6."""
    import random

    rng = random.Random(15)
    body = "".join(rng.choice(ALPHABET) for _ in range(54 * 2000))
    data = " ".join(f"acme_{body[i : i + 54]}" for i in range(0, len(body), 54)).encode()
    real = format_key("acme", "A" * 16, "B" * 32)
    assert scanner(data + b" " + real.encode(), [real]) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_scan_of_a_fifo_returns(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "apikeys", "scan", "--prefix", "acme", str(fifo)],
            capture_output=True,
            timeout=3,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("apikeys scan <fifo> did not return within 3 s")
    assert done.returncode in (0, 1), done.stderr


# --- atheris ----------------------------------------------------------------------------

ATHERIS_TARGETS = ["key_parser", "header_extraction", "stored_hash", "scanner"]


@heavy
@pytest.mark.parametrize("target", ATHERIS_TARGETS)
def test_atheris(target: str, battery: Any, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is installed by nox -s security")
    seconds = budget(0, 25, 300)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "_atheris_harness.py"),
            target,
            f"-max_total_time={seconds}",
            "-timeout=5",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
        cwd=HERE,
    )
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    count = int(runs[-1]) if runs else 0
    battery.record(
        f"fuzz: atheris {target}",
        "coverage-guided; only apikeys errors, each input < 5 s",
        count=count,
        false_accepts=0 if done.returncode == 0 else None,
        measured=f"{time.monotonic() - started:.0f} s ({TIER})",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert count > 0, done.stderr[-2000:]
