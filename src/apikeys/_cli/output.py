"""What the command writes: human tables, JSON for scripts, progress on a terminal.

Results go to stdout; notes, progress and errors to stderr, so a pipe only ever
sees results. Nothing written here may contain a secret except a new key's
plaintext, which ``create`` and ``rotate`` print on purpose, once.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from apikeys._display import (
    KEY_HEADERS,
    grace_end,
    human_utc,
    key_json,
    key_row,
    machine,
    state_label,
)
from apikeys._keyformat import BODY_LENGTH, KEY_ID_LENGTH, PREFIX_PATTERN
from apikeys._models import APIKey

_KEY_SHAPED = re.compile(
    rf"({PREFIX_PATTERN})_([0-9A-Za-z]{{{KEY_ID_LENGTH}}})"
    rf"[0-9A-Za-z]{{{BODY_LENGTH - KEY_ID_LENGTH}}}"
)
__all__ = [
    "KEY_HEADERS",
    "Output",
    "Progress",
    "key_details",
    "key_json",
    "key_row",
    "redact",
    "when",
]

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


def redact(text: str) -> str:
    """``text`` with everything shaped like a key cut down to its prefix and id, and
    passwords in URLs (``postgresql://user:pw@host``) masked."""
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    return _KEY_SHAPED.sub(lambda m: f"{m.group(1)}_{m.group(2)}…", text)


def when(value: datetime | None) -> str:
    """A UTC instant for people (``2026-01-31 12:00:00 UTC``), or ``-``."""
    return human_utc(value)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, headers first."""
    body = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in body) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in body
    )


def key_details(key: APIKey, now: datetime) -> str:
    """Every field of a record, one ``name: value`` line each."""
    fields: list[tuple[str, str]] = [
        ("id", key.id),
        ("prefix", key.prefix),
        ("owner", key.owner),
        ("name", key.name or "-"),
        ("state", state_label(key.state(now))),
        ("scopes", ", ".join(key.scopes) or "-"),
        ("created", when(key.created_at)),
        ("expires", when(key.expires_at)),
        ("revoked", when(key.revoked_at)),
        ("revoke reason", key.revoke_reason or "-"),
        ("suspended", when(key.disabled_at)),
        ("suspend reason", key.disabled_reason or "-"),
        ("last used", when(key.last_used_at)),
        ("last used from", key.last_used_ip or "-"),
        ("allowed ips", ", ".join(key.allowed_ips) or "anywhere"),
        ("rate limits", ", ".join(key.rate_limits) or "-"),
        ("quota", key.quota or "-"),
        ("replaces", key.replaces or "-"),
        ("replaced by", key.replaced_by or "-"),
        ("grace ends", human_utc(grace_end(key))),
        ("metadata", json.dumps(key.metadata, sort_keys=True) if key.metadata else "-"),
        ("version", str(key.version)),
    ]
    width = max(len(name) for name, _ in fields)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in fields)


class Progress:
    """A one-line progress display, redrawn in place on a terminal (stderr).

    Disabled (every call a no-op) unless the stream is a TTY and progress was not
    turned off, so pipes, files and CI logs never see it. Redraws at most ten times
    a second; :meth:`close` erases the line.
    """

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        total: int | None = None,
        enabled: bool = True,
        min_interval: float = 0.1,
    ) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self.enabled = enabled and _isatty(stream)
        self._min_interval = min_interval
        self._last = 0.0
        self._drawn = False
        self.done = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def advance(self, n: int = 1, detail: str = "") -> None:
        """Count ``n`` more items done; ``detail`` (e.g. the current file) is shown."""
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self._drawn and now - self._last < self._min_interval:
            return
        self._last = now
        self._draw(detail)

    def _draw(self, detail: str) -> None:
        count = f"{self.done}/{self._total}" if self._total is not None else str(self.done)
        text = f"{self._label}: {count}" + (f"  {redact(detail)}" if detail else "")
        width = shutil.get_terminal_size((80, 24)).columns - 1
        if len(text) > width:
            text = text[: max(0, width - 1)] + "…"
        self._stream.write("\r\x1b[2K" + text)
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the progress line (if one was drawn)."""
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Output:
    """Where a command writes; one per invocation.

    Args:
        stdout: Results.
        stderr: Notes, progress and errors.
        json_mode: Results as JSON (``--json``) instead of tables.
        progress: Whether progress may be shown (it still needs a TTY).
    """

    def __init__(
        self, stdout: TextIO, stderr: TextIO, *, json_mode: bool = False, progress: bool = True
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_mode = json_mode
        self.progress_allowed = progress

    def line(self, text: str = "") -> None:
        """Write one line of results to stdout."""
        self.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        """Write one line of information to stderr (never a secret)."""
        self.stderr.write(redact(text) + "\n")

    def json(self, data: Any) -> None:
        """Write ``data`` as indented JSON to stdout."""
        text = json.dumps(machine(data), indent=2, sort_keys=True, default=str)
        self.stdout.write(text + "\n")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """Write a table to stdout."""
        self.line(render_table(headers, rows))

    def progress(self, label: str, total: int | None = None) -> Progress:
        """A progress display on stderr (inactive unless stderr is a terminal)."""
        return Progress(self.stderr, label, total=total, enabled=self.progress_allowed)
