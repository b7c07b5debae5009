"""A ``.gitignore`` matcher for trees that are not in a git work tree (or when git
is not installed); inside a work tree the scanner asks git itself.

Supported (the documented subset of gitignore(5)): blank lines and ``#`` comments;
``!`` negation (last match wins, deeper files after shallower ones); a trailing
``/`` for directories only; a leading or inner ``/`` anchoring the pattern to the
``.gitignore``'s directory (otherwise it matches at any depth); ``*``, ``?``,
``[...]`` classes (``[!...]`` negated); ``**/`` leading, ``/**/`` inner and
``/**`` trailing; backslash escapes and trailing-space trimming. As in git, a file
under an ignored directory cannot be re-included. Not read: ``.git/info/exclude``,
``core.excludesFile`` and POSIX ``[:classes:]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

GITIGNORE: Final = ".gitignore"


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of a ``.gitignore`` file."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _class(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the bracket expression at ``pattern[start] == '['``.

    Returns:
        The regex class and the index after it, or ``None`` if it is not closed.
    """
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            body = "".join(parts)
            return ("[^/" + body + "]" if negate else "[" + body + "]"), i + 1
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
            parts.append(re.escape(c))
        elif c == "-" and parts and i + 1 < len(pattern) and pattern[i + 1] != "]":
            parts.append("-")
        else:
            parts.append(re.escape(c))
        first = False
        i += 1
    return None


def _segment(segment: str) -> str:
    """Translate one path segment (no ``/``) with ``*``, ``?``, ``[...]`` and escapes."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            translated = _class(segment, i)
            if translated is None:
                out.append(re.escape(c))
            else:
                out.append(translated[0])
                i = translated[1]
                continue
        elif c == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _strip_trailing_spaces(line: str) -> str:
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        backslashes = 0
        j = end - 2
        while j >= 0 and line[j] == "\\":
            backslashes += 1
            j -= 1
        if backslashes % 2:
            break
        end -= 1
    return line[:end]


def parse_rule(line: str) -> Rule | None:
    """The rule of one ``.gitignore`` line, or ``None`` for a blank line or comment."""
    line = _strip_trailing_spaces(line.rstrip("\r\n"))
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    line = line.rstrip("/") if dir_only else line
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/") if line.startswith("/") else line
    segments = line.split("/")
    pieces: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            if last:
                pieces.append(".+" if pieces else ".*")
            else:
                pieces.append("(?:.*/)?")
            continue
        pieces.append(_segment(segment) + ("" if last else "/"))
    body = "".join(pieces)
    regex = ("" if anchored else "(?:.*/)?") + body
    return Rule(re.compile(f"^{regex}$", re.DOTALL), negate, dir_only)


def parse_rules(text: str) -> list[Rule]:
    """The rules of a whole ``.gitignore`` file, in order."""
    return [rule for line in text.splitlines() if (rule := parse_rule(line)) is not None]


class IgnoreStack:
    """The rules in force in one directory: every ``.gitignore`` from the scan root
    down, each with its directory (relative to the root, ``""`` for the root)."""

    def __init__(self, layers: tuple[tuple[str, tuple[Rule, ...]], ...] = ()) -> None:
        self._layers = layers

    def push(self, base: str, rules: list[Rule]) -> IgnoreStack:
        """A stack with ``rules`` (of the ``.gitignore`` in ``base``) on top."""
        if not rules:
            return self
        return IgnoreStack((*self._layers, (base, tuple(rules))))

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether ``path`` (``/``-separated, relative to the root) is ignored."""
        result = False
        for base, rules in self._layers:
            if base:
                if not path.startswith(base + "/"):
                    continue
                relative = path[len(base) + 1 :]
            else:
                relative = path
            for rule in rules:
                if rule.dir_only and not is_dir:
                    continue
                if rule.regex.match(relative):
                    result = not rule.negate
        return result
