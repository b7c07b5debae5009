"""``docs/cli.md`` stays true to the command: every command and option it shows
exists, and its exit-status table matches the code."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from apikeys._cli._app import build_parser
from apikeys._cli._errors import Exit

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def documented_invocations() -> list[tuple[str, list[str]]]:
    """(command, options) of every ``apikeys <command> …`` line in a console block."""
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found = []
    for block in blocks:
        # Continuation lines of a usage synopsis are indented under their command.
        command = None
        for line in block.splitlines():
            match = re.match(r"^(?:\$ )?(?:.*\| )?apikeys ([a-z-]+)", line)
            if match:
                command = match.group(1)
            elif not line.startswith(" "):
                command = None
            if command is not None:
                found.append((command, re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line)))
    return found


def test_every_documented_command_and_option_exists() -> None:
    commands = subcommands()
    invocations = documented_invocations()
    assert {command for command, _ in invocations} == set(commands)
    for command, options in invocations:
        known = commands[command]._option_string_actions
        for option in options:
            assert option in known, f"apikeys {command} {option}"


def test_exit_status_table_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d) \| (.+?) \|$", text, re.MULTILINE))
    assert set(rows) == {
        str(int(s)) for s in (Exit.OK, Exit.FAILED, Exit.USAGE, Exit.STORE_UNAVAILABLE)
    }
    assert "store is unavailable" in rows["3"]
    assert "usage error" in rows["2"]
