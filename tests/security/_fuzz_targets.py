"""The fuzzed surfaces, shared by the Hypothesis properties and the atheris harness.

Each target takes untrusted input and must end in a value or an ``apikeys.errors``
error; anything else (an untyped exception, a wrong accept) raises
:class:`FuzzFailure` or lets the untyped exception through.
"""

from __future__ import annotations

from collections.abc import Sequence

from apikeys._cli._scanner import ALLOW_MARKER, KeyFinder, find_in_bytes
from apikeys._keyformat import format_key, parse, parse_or_none
from apikeys.errors import APIKeyError, AuthenticationError
from apikeys.hashing import Argon2Hasher
from apikeys.http import HTTPSettings

PREFIXES = frozenset({"acme", "acme_live"})
SETTINGS = HTTPSettings(query_param="api_key")
PRODUCTION = Argon2Hasher()
TESTS_PROFILE = Argon2Hasher.for_tests()


class FuzzFailure(AssertionError):
    """A fuzzed surface broke its contract."""


def key_parser(raw: str) -> None:
    """``parse``: a key that round-trips exactly, or ``malformed``."""
    parsed = parse_or_none(raw, PREFIXES)
    try:
        strict = parse(raw, PREFIXES)
    except AuthenticationError as exc:
        if exc.code != "malformed" or parsed is not None:
            raise FuzzFailure(f"parse and parse_or_none disagree on {raw!r}") from exc
        return
    if parsed is None or format_key(strict.prefix, strict.key_id, strict.secret) != raw:
        raise FuzzFailure(f"parsed something that is not exactly a key: {raw!r}")


def header_extraction(
    authorization: Sequence[str], api_key: Sequence[str], query: Sequence[str]
) -> str | None:
    """``extract_key``: one credential taken verbatim from the input, or a typed
    401. Returns the credential (``None`` on a refusal)."""
    try:
        value = SETTINGS.extract_key(authorization, api_key, query)
    except AuthenticationError as exc:
        if exc.code not in {"missing", "malformed"}:
            raise FuzzFailure(f"unexpected code {exc.code}") from exc
        return None
    if "," in value:
        raise FuzzFailure(f"a credential with a comma was accepted: {value!r}")
    if not any(value in item for item in (*authorization, *api_key, *query)):
        raise FuzzFailure("the credential is not a piece of the request")
    return value


def stored_hash(text: str, secret: str) -> None:
    """A stored hash as the manager uses it: ``supports`` gates ``verify``, and a
    successful ``verify`` leads to ``needs_rehash``. Only booleans come out."""
    for hasher in (PRODUCTION, TESTS_PROFILE):
        supported = hasher.supports(text)
        if not isinstance(supported, bool):
            raise FuzzFailure("supports() returned a non-boolean")
        verified = supported and hasher.verify(text, secret) is True
        if verified and not isinstance(hasher.needs_rehash(text), bool):
            raise FuzzFailure("needs_rehash() returned a non-boolean")


def scanner(data: bytes, planted: Sequence[str] = ()) -> int:
    """``KeyFinder``: every finding is a checksum-valid key of a scanned prefix, and
    every planted key (separated by spaces) is found. Returns the findings."""
    finder = KeyFinder(PREFIXES)
    findings, _allowed = find_in_bytes(finder, data, "<fuzz>")
    for finding in findings:
        text = format_key(finding.key.prefix, finding.key.key_id, finding.key.secret)
        if parse_or_none(text, PREFIXES) is None:
            raise FuzzFailure("the scanner reported something that is not a key")
    found = {format_key(f.key.prefix, f.key.key_id, f.key.secret) for f in findings}
    if ALLOW_MARKER in data:
        return len(findings)  # a marked line is left out on purpose
    missing = [key for key in planted if key not in found]
    if missing:
        raise FuzzFailure(f"{len(missing)} planted key(s) not found")
    return len(findings)


__all__ = [
    "APIKeyError",
    "FuzzFailure",
    "header_extraction",
    "key_parser",
    "scanner",
    "stored_hash",
]
