"""Text that is safe to put in a log line: values an attacker or a caller chose
(owners, reasons, addresses, request paths) cannot forge a line or hide one.

Every character that :meth:`str.isprintable` refuses — C0 and C1 controls (CR, LF,
ESC, NEL), DEL, U+2028/U+2029, bidirectional overrides and other format characters,
lone surrogates, unusual spaces — is written as a Python-style escape (LF as ``\\x0a``,
U+2028 as ``\\u2028``) and the backslash itself as ``\\\\``, so an escaped value
reads back unambiguously. Printable non-ASCII text (``Zoë``, ``東京``) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def log_safe(value: object) -> str:
    """``str(value)`` with every non-printable character and backslash escaped.

    Args:
        value: Anything; ``None`` gives ``"None"``, as ``%s`` would.

    Returns:
        One line of printable text.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape_char(c) for c in text)


def log_safe_data(value: Any) -> Any:
    """A JSON-ready value (as :meth:`Event.to_dict` gives) with every string in it
    passed through :func:`log_safe`; numbers, booleans and ``None`` are kept."""
    if isinstance(value, str):
        return log_safe(value)
    if isinstance(value, Mapping):
        return {log_safe(k): log_safe_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [log_safe_data(v) for v in value]
    return value
