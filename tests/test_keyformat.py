"""The key format: generate, parse, checksum; strict, total and bounded parsing."""

from __future__ import annotations

import math
import re
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys import AuthenticationError, InvalidArgument, KeyManager
from apikeys._keyformat import (
    ALPHABET,
    BODY_LENGTH,
    CHECKSUM_LENGTH,
    KEY_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_PREFIX_LENGTH,
    SECRET_LENGTH,
    ParsedKey,
    checksum,
    format_key,
    generate,
    is_key_id,
    key_regex,
    parse,
    parse_or_none,
    validate_prefix,
)
from apikeys.hashing import Argon2Hasher
from core_support import RecordingStore, with_wrong_secret

ACME = frozenset({"acme"})
# Prefixes one character apart, and one that contains another: a single edit can
# turn one accepted prefix into another, so only the checksum can catch it.
MANY = frozenset({"acme", "acmf", "acme_live"})

prefixes = st.from_regex(r"\A[a-z0-9]{1,6}(?:_[a-z0-9]{1,6}){0,3}\Z").filter(
    lambda p: len(p) <= MAX_PREFIX_LENGTH
)


def reference_checksum(text: str) -> str:
    """An independent CRC32 → 6-digit base62 (most significant first)."""
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, rem = divmod(value, 62)
        digits.append(ALPHABET[rem])
    assert value == 0
    return "".join(reversed(digits))


def assert_malformed(raw: object, accepted: frozenset[str] = ACME) -> None:
    assert parse_or_none(raw, accepted) is None
    with pytest.raises(AuthenticationError) as info:
        parse(raw, accepted)
    assert info.value.code == "malformed"
    assert info.value.status == 401
    assert info.value.key_id is None


# --- shape --------------------------------------------------------------------------------


def test_widths_and_alphabet() -> None:
    assert (KEY_ID_LENGTH, SECRET_LENGTH, CHECKSUM_LENGTH) == (16, 32, 6)
    assert BODY_LENGTH == 54
    assert len(ALPHABET) == 62
    assert len(set(ALPHABET)) == 62
    assert ALPHABET.isascii()
    assert ALPHABET.isalnum()
    # At least 128 bits of secret (design aims at ~190) and 64 bits of id.
    assert SECRET_LENGTH * math.log2(62) >= 190
    assert KEY_ID_LENGTH * math.log2(62) >= 64
    # 6 base62 digits hold every CRC32 value, so the encoding is injective.
    assert 62**CHECKSUM_LENGTH > 2**32


@pytest.mark.parametrize("prefix", ["acme", "acme_live", "a", "x1_y2_z3", "a" * 32])
def test_generated_key_has_fixed_layout(prefix: str) -> None:
    parts, plaintext = generate(prefix)
    assert plaintext.startswith(prefix + "_")
    body = plaintext[len(prefix) + 1 :]
    assert len(body) == BODY_LENGTH
    assert body.isascii()
    assert body.isalnum()
    assert body[:KEY_ID_LENGTH] == parts.key_id
    assert body[KEY_ID_LENGTH : KEY_ID_LENGTH + SECRET_LENGTH] == parts.secret
    assert body[-CHECKSUM_LENGTH:] == reference_checksum(plaintext[:-CHECKSUM_LENGTH])
    assert len(plaintext) <= MAX_KEY_LENGTH
    assert is_key_id(parts.key_id)


def test_generate_with_given_id_and_fresh_secrets() -> None:
    parts, plaintext = generate("acme", key_id="0123456789abcdEF")
    assert parts.key_id == "0123456789abcdEF"
    assert parse(plaintext, ACME).key_id == "0123456789abcdEF"
    secrets_seen = {generate("acme")[0].secret for _ in range(200)}
    ids_seen = {generate("acme")[0].key_id for _ in range(200)}
    assert len(secrets_seen) == 200
    assert len(ids_seen) == 200
    # Drawn from the whole alphabet (6400 draws: missing a symbol has p < 1e-40).
    assert set("".join(secrets_seen)) == set(ALPHABET)


def test_checksum_matches_reference_and_edges() -> None:
    assert checksum("") == "000000"
    for text in ["acme_", "acme_" + "z" * 48, "a", "hello world"]:
        assert checksum(text) == reference_checksum(text)
        assert len(checksum(text)) == CHECKSUM_LENGTH


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=100))
def test_checksum_is_fixed_width_base62(text: str) -> None:
    value = checksum(text)
    assert len(value) == CHECKSUM_LENGTH
    assert set(value) <= set(ALPHABET)
    assert value == reference_checksum(text)


def test_is_key_id() -> None:
    assert is_key_id("A" * 16)
    for value in ["A" * 15, "A" * 17, "A" * 15 + "_", "A" * 15 + "é", None, 16, b"A" * 16]:
        assert not is_key_id(value)


# --- prefixes -----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["acme", "acme_live", "a", "0", "a1_b2", "a" * 32])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "Acme",
        "acme-live",
        "_acme",
        "acme_",
        "acme__live",
        "a" * 33,
        "acme live",
        "ácme",
        "acme\x00",
        "ac.me",
        None,
        123,
    ],
)
def test_invalid_prefixes(prefix: object) -> None:
    with pytest.raises(InvalidArgument):
        validate_prefix(prefix)  # type: ignore[arg-type]


def test_key_regex_finds_keys_but_not_inside_longer_tokens() -> None:
    _, key = generate("acme_live")
    _, other = generate("acme")
    text = f"token={key} and {other}; not x{key} nor {other}Z"
    found = re.findall(key_regex(["acme", "acme_live"]), text)
    assert found == [key, other]


# --- parsing ----------------------------------------------------------------------------


def test_round_trip_and_parsed_key_hides_secret() -> None:
    parts, plaintext = generate("acme_live")
    parsed = parse(plaintext, frozenset({"acme_live", "acme"}))
    assert isinstance(parsed, ParsedKey)
    assert (parsed.prefix, parsed.key_id, parsed.secret) == (
        parts.prefix,
        parts.key_id,
        parts.secret,
    )
    assert parsed.secret not in repr(parsed)
    assert parsed.secret not in str(parsed)
    assert parsed.key_id in repr(parsed)


@given(prefix=prefixes)
def test_generated_keys_round_trip(prefix: str) -> None:
    parts, plaintext = generate(prefix)
    parsed = parse(plaintext, frozenset({prefix}))
    assert (parsed.prefix, parsed.key_id, parsed.secret) == (prefix, parts.key_id, parts.secret)
    assert format_key(prefix, parsed.key_id, parsed.secret) == plaintext


def _valid() -> str:
    return generate("acme")[1]


def test_rejects_obvious_junk() -> None:
    key = _valid()
    body = key[len("acme_") :]
    fullwidth = key[:-1] + chr(0xFF10 + 1)  # a non-ASCII digit
    arabic_digit = key[:-1] + "\u0663"  # str.isalnum() says True, isascii() False
    for raw in [
        "",
        "acme_",
        "acme",
        body,  # no prefix
        "ACME_" + body,  # wrong case
        "other_" + body,  # a prefix this manager does not accept
        key[:-1],  # truncated
        key + "0",  # extended
        key[:-1] + ("0" if key[-1] != "0" else "1"),  # wrong checksum
        " " + key,
        key + "\n",
        key.replace("_", "-"),
        key[:10] + "\x00" + key[11:],
        fullwidth,
        arabic_digit,
        key + key,  # two keys glued
        key + " " + key,
        "x" * 1_000_000,
        key * 20_000,
        None,
        b"acme_" + body.encode(),
        12345,
        ["acme", body],
    ]:
        assert_malformed(raw)


def test_prefix_with_underscore_is_matched_whole() -> None:
    _, live = generate("acme_live")
    assert_malformed(live, ACME)
    _, plain = generate("acme")
    assert_malformed(plain, frozenset({"acme_live"}))
    assert parse(live, MANY).prefix == "acme_live"
    assert parse(plain, MANY).prefix == "acme"


def test_parsing_a_huge_string_costs_no_more_than_a_short_one() -> None:
    huge = "acme_" + "A" * 10_000_000
    short = _valid()[:-1]

    def fastest(raw: str) -> int:
        best = 1 << 62
        for _ in range(30):
            start = time.perf_counter_ns()
            parse_or_none(raw, ACME)
            best = min(best, time.perf_counter_ns() - start)
        return best

    # A pass over 10 MB would cost milliseconds; a bounded parse stays at microseconds.
    assert fastest(huge) < 200_000
    assert fastest(huge) < 20 * fastest(short) + 50_000


text_inputs = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFFF)),
    st.builds(lambda k, junk: k + junk, st.builds(lambda: _valid()), st.text(min_size=1)),
    st.builds(lambda junk, k: junk + k, st.text(min_size=1), st.builds(lambda: _valid())),
    st.builds(lambda a, b: a + b, st.builds(lambda: _valid()), st.builds(lambda: _valid())),
    st.builds(lambda n, c: c * n, st.integers(0, 200_000), st.characters()),
    st.builds(lambda body: "acme_" + body, st.text(alphabet=ALPHABET, min_size=50, max_size=60)),
)


@settings(max_examples=300, deadline=None)
@given(raw=text_inputs)
def test_any_text_parses_or_raises_malformed(raw: str) -> None:
    parsed = parse_or_none(raw, MANY)
    if parsed is None:
        assert_malformed(raw, MANY)
    else:
        # Only a real key gets through, and then it re-assembles to exactly the input.
        assert parse(raw, MANY).key_id == parsed.key_id
        assert format_key(parsed.prefix, parsed.key_id, parsed.secret) == raw


@settings(max_examples=400, deadline=None)
@given(data=st.data(), prefix=st.sampled_from(sorted(MANY)))
def test_changing_any_single_character_is_rejected(data: st.DataObject, prefix: str) -> None:
    _, key = generate(prefix)
    position = data.draw(st.integers(0, len(key) - 1), label="position")
    replacement = data.draw(
        st.one_of(st.sampled_from(ALPHABET + "_-. "), st.characters()).filter(
            lambda c: c != key[position]
        ),
        label="replacement",
    )
    mutated = key[:position] + replacement + key[position + 1 :]
    assert_malformed(mutated, MANY)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_dropping_inserting_or_swapping_a_character_is_rejected(data: st.DataObject) -> None:
    _, key = generate("acme")
    position = data.draw(st.integers(0, len(key) - 1), label="position")
    assert_malformed(key[:position] + key[position + 1 :], MANY)
    inserted = data.draw(st.sampled_from(ALPHABET + "_"), label="inserted")
    assert_malformed(key[:position] + inserted + key[position:], MANY)
    # Adjacent transpositions inside the checksummed part (a CRC catches every
    # burst of up to 32 bits).
    i = data.draw(st.integers(0, len(key) - CHECKSUM_LENGTH - 2), label="swap")
    if key[i] != key[i + 1]:
        assert_malformed(key[:i] + key[i + 1] + key[i] + key[i + 2 :], MANY)


# --- through the manager ------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(text_inputs, st.builds(lambda: _valid())))
def test_any_text_given_to_verify_raises_only_authentication_errors(raw: str) -> None:
    store = RecordingStore()
    keys = KeyManager(store, prefix=["acme", "acmf"], hasher=Argon2Hasher.for_tests())
    issued = keys.create(owner="o")
    for candidate in (raw, with_wrong_secret(issued.plaintext)):
        reads = store.calls["get"]
        outcome: AuthenticationError | None = None
        try:
            keys.verify(candidate)
        except AuthenticationError as exc:
            outcome = exc
        if outcome is None:
            assert candidate == issued.plaintext
            continue
        assert outcome.code in {"malformed", "not_found", "invalid_secret"}
        assert str(outcome) == "Invalid API key."
        if outcome.code == "malformed":
            assert store.calls["get"] == reads, "a malformed key must not reach the store"
    assert keys.verify(issued.plaintext).id == issued.key.id
