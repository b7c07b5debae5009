"""Output helpers and argument values: tables, redaction, progress, durations, ids."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest

from apikeys import _keyformat
from apikeys._cli.output import Progress, redact, render_table
from apikeys._values import key_id_of, parse_duration, parse_instant, parse_prefixes
from apikeys.errors import InvalidArgument


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_aligns_columns() -> None:
    assert render_table(("A", "LONGER"), [("x", "1"), ("yyyy", "22")]).splitlines() == [
        "A     LONGER",
        "x     1",
        "yyyy  22",
    ]


def test_redact_cuts_keys_to_prefix_and_id_and_masks_url_passwords() -> None:
    parts, key = _keyformat.generate("acme_live")
    text = redact(f"failed for {key} via postgresql://app:s3cret@127.0.0.1/db")
    assert parts.secret not in text
    assert "s3cret" not in text
    assert f"acme_live_{parts.key_id}…" in text
    assert "postgresql://app:***@127.0.0.1/db" in text


def test_progress_draws_only_on_a_terminal_and_erases_its_line() -> None:
    piped = io.StringIO()
    with Progress(piped, "scanning", total=3) as progress:
        progress.advance(detail="a.txt")
    assert piped.getvalue() == ""
    assert progress.done == 1

    terminal = FakeTerminal()
    _, key = _keyformat.generate("acme")
    with Progress(terminal, "scanning", total=3, min_interval=0) as progress:
        progress.advance(detail="a.txt")
        progress.advance(detail=f"{key}.txt")  # a detail never shows a secret
    drawn = terminal.getvalue()
    assert "scanning: 1/3  a.txt" in drawn
    assert "scanning: 2/3" in drawn
    assert key not in drawn
    assert drawn.endswith("\r\x1b[2K")

    off = FakeTerminal()
    with Progress(off, "scanning", enabled=False) as progress:
        progress.advance()
    assert off.getvalue() == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("30m", timedelta(minutes=30)),
        ("45S", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "1.5d", "-1d", "0d", "1y", "1d 2h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


def test_zero_duration_when_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == timedelta(0)


def test_instants_default_to_utc() -> None:
    utc = timezone.utc
    assert parse_instant("2026-12-31") == datetime(2026, 12, 31, tzinfo=utc)
    assert parse_instant("2026-12-31T18:00:00Z") == datetime(2026, 12, 31, 18, tzinfo=utc)
    assert parse_instant("2026-12-31T18:00") == datetime(2026, 12, 31, 18, tzinfo=utc)
    assert parse_instant("2026-12-31T20:00+02:00") == datetime(2026, 12, 31, 18, tzinfo=utc)
    with pytest.raises(InvalidArgument):
        parse_instant("next tuesday")


def test_key_id_of_accepts_an_id_or_a_whole_key_and_never_echoes_a_secret() -> None:
    parts, key = _keyformat.generate("acme_live")
    assert key_id_of(parts.key_id) == parts.key_id
    assert key_id_of(f" {key}\n") == parts.key_id
    broken = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(InvalidArgument) as info:
        key_id_of(broken)
    assert parts.secret not in str(info.value)


def test_prefixes_are_validated_and_deduplicated() -> None:
    assert parse_prefixes(" acme_live, acme ,acme_live,") == ("acme_live", "acme")
    assert parse_prefixes("") == ()
    with pytest.raises(InvalidArgument):
        parse_prefixes("acme,ACME")
