"""The key format: generate, parse and checksum. Pure, no I/O.

A key is ``<prefix>_<key id><secret><checksum>``::

    acme_live_3kf93JdlQ0aZVb8x2LqZ0pR7tYw4nE1mK9sD6fH3jG5cN0aB1cXyZ1q2W3e4
    └─prefix─┘└──key id (16)─┘└────────── secret (32) ──────────┘└crc(6)┘

- prefix: lower-case letters and digits, segments joined by ``_`` (at most 32 chars).
- key id: 16 base62 characters (~95 bits), public; the store's primary key.
- secret: 32 base62 characters (~190 bits) from :mod:`secrets`.
- checksum: CRC32 of everything before it (prefix, ``_``, id and secret), as 6
  base62 characters, left-padded with ``0``.

The part after the last ``_`` (the *body*) is always 54 base62 characters, so a
key is easy to find in text and to describe to secret scanners.
"""

from __future__ import annotations

import re
import secrets
import zlib
from typing import Final

from apikeys.errors import AuthenticationError, InvalidArgument

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH: Final = 16
SECRET_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6
BODY_LENGTH: Final = KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
MAX_PREFIX_LENGTH: Final = 32
MAX_KEY_LENGTH: Final = MAX_PREFIX_LENGTH + 1 + BODY_LENGTH

PREFIX_PATTERN: Final = r"[a-z0-9]+(?:_[a-z0-9]+)*"
_PREFIX_RE: Final = re.compile(PREFIX_PATTERN)
_KEY_ID_RE: Final = re.compile(f"[0-9A-Za-z]{{{KEY_ID_LENGTH}}}")


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is a valid key prefix.

    Raises:
        InvalidArgument: not lower-case letters/digits in ``_``-joined segments, or
            longer than 32 characters.
    """
    if (
        not isinstance(prefix, str)
        or len(prefix) > MAX_PREFIX_LENGTH
        or not _PREFIX_RE.fullmatch(prefix)
    ):
        raise InvalidArgument(
            f"invalid key prefix {prefix!r}: use lower-case letters and digits, "
            f"segments joined by '_', at most {MAX_PREFIX_LENGTH} characters"
        )
    return prefix


def is_key_id(value: object) -> bool:
    """Whether ``value`` has the shape of a key id (16 base62 characters)."""
    return isinstance(value, str) and _KEY_ID_RE.fullmatch(value) is not None


MAX_ID_ARGUMENT_LENGTH: Final = 256


def key_id_argument(value: object) -> str | None:
    """Check a key id given to a management call (``get``, ``revoke``...), before any I/O.

    Every store answers the same way because no store is asked about text that
    cannot be an id: ids are always 16 base62 characters.

    Returns:
        ``value`` when it is shaped like a key id; ``None`` when it is printable
        text that names no key (the caller reports ``KeyNotFound``).

    Raises:
        InvalidArgument: not a string, empty, longer than 256 characters, or holding
            a character that is not printable (NUL, control characters, line breaks,
            lone surrogates).
    """
    if isinstance(value, str) and _KEY_ID_RE.fullmatch(value) is not None:
        return value
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_ARGUMENT_LENGTH
        or not value.isprintable()
    ):
        raise InvalidArgument(
            "a key id must be printable text of at most "
            f"{MAX_ID_ARGUMENT_LENGTH} characters (16 base62 characters for a real id)"
        )
    return None


def checksum(text: str) -> str:
    """CRC32 of ``text`` (ASCII) as 6 base62 characters, most significant first."""
    v = zlib.crc32(text.encode("ascii"))
    a = ALPHABET
    # Unrolled base62 (62**5 .. 62**0): this runs on every presented key.
    return (
        a[v // 916132832 % 62]
        + a[v // 14776336 % 62]
        + a[v // 238328 % 62]
        + a[v // 3844 % 62]
        + a[v // 62 % 62]
        + a[v % 62]
    )


def random_base62(length: int) -> str:
    """``length`` characters drawn uniformly from the base62 alphabet by :mod:`secrets`."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_key_id() -> str:
    """A fresh random key id."""
    return random_base62(KEY_ID_LENGTH)


def format_key(prefix: str, key_id: str, secret: str) -> str:
    """Assemble a full key from its parts, adding the checksum."""
    head = f"{prefix}_{key_id}{secret}"
    return head + checksum(head)


class ParsedKey:
    """A syntactically valid key split into its parts.

    The secret is held but never shown by ``repr``/``str``.
    """

    __slots__ = ("key_id", "prefix", "secret")

    def __init__(self, prefix: str, key_id: str, secret: str) -> None:
        self.prefix = prefix
        self.key_id = key_id
        self.secret = secret

    def __repr__(self) -> str:
        return f"ParsedKey(prefix={self.prefix!r}, key_id={self.key_id!r}, secret=<hidden>)"

    __str__ = __repr__


def generate(prefix: str, key_id: str | None = None) -> tuple[ParsedKey, str]:
    """Make a new key with ``prefix``.

    Returns:
        The parsed parts and the full plaintext key.
    """
    parts = ParsedKey(prefix, key_id or new_key_id(), random_base62(SECRET_LENGTH))
    return parts, format_key(parts.prefix, parts.key_id, parts.secret)


def parse_or_none(raw: object, prefixes: frozenset[str]) -> ParsedKey | None:
    """Parse ``raw`` as a key with one of ``prefixes``; ``None`` if it is not one.

    Total and bounded: any input costs at most one pass over 87 characters. This is
    the hot path's form (no exception to build for the commonest junk).
    """
    if not isinstance(raw, str) or len(raw) > MAX_KEY_LENGTH:
        return None
    prefix, sep, body = raw.rpartition("_")
    if (
        not sep
        or prefix not in prefixes
        or len(body) != BODY_LENGTH
        or not (body.isascii() and body.isalnum())
        or checksum(raw[:-CHECKSUM_LENGTH]) != body[-CHECKSUM_LENGTH:]
    ):
        return None
    return ParsedKey(prefix, body[:KEY_ID_LENGTH], body[KEY_ID_LENGTH:-CHECKSUM_LENGTH])


def parse(raw: object, prefixes: frozenset[str]) -> ParsedKey:
    """Parse ``raw`` as a key with one of ``prefixes``.

    Raises:
        AuthenticationError: ``code="malformed"`` for anything that is not a
            well-formed key with an accepted prefix and a correct checksum.
    """
    parsed = parse_or_none(raw, prefixes)
    if parsed is None:
        raise AuthenticationError("malformed")
    return parsed


def key_regex(prefixes: frozenset[str] | list[str] | tuple[str, ...]) -> str:
    """A regular expression (Python/RE2/PCRE compatible) matching keys of ``prefixes``.

    Word boundaries keep it from matching inside longer tokens.
    """
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=lambda p: (-len(p), p)))
    return rf"\b(?:{alternatives})_[0-9A-Za-z]{{{BODY_LENGTH}}}\b"
