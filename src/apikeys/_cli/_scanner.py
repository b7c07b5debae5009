"""Finding keys of given prefixes in files, directories and streams.

A candidate is ``<prefix>_`` followed by 54 base62 characters; it is reported only
if its CRC32 checksum is right, so random look-alikes (and a longer token that
merely ends in a prefix) are not. No word boundary is required on either side:
keys inside escaped strings (``"\\nacme_…"``, ``%22acme_…``) are found too, and the
checksum keeps that from adding false positives.

Directories are walked with their ignore rules: inside a git work tree the file
list comes from ``git ls-files --cached --others --exclude-standard`` (tracked
files, plus untracked ones that are not ignored); elsewhere, or without git, from
the ``.gitignore`` subset in :mod:`apikeys._cli._gitignore`. ``.git`` directories
and symbolic links met while walking are always skipped. Files named explicitly
are always scanned. Binary files (a NUL byte in the first 8 KiB) are skipped, and so
is anything that is neither a regular file nor a directory (a FIFO, a socket, a
device), named or met, since reading one may never end: such a path is opened
without blocking and checked on the open descriptor, so a file swapped for a FIFO
after the check cannot hang the scan either.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from apikeys import _keyformat
from apikeys._cli._gitignore import GITIGNORE, IgnoreStack, parse_rules
from apikeys._keyformat import BODY_LENGTH, ParsedKey

BINARY_SNIFF_BYTES: Final = 8192
DEFAULT_MAX_BYTES: Final = 25 * 1024 * 1024
ALLOW_MARKER: Final = b"apikeys:allow"
"""A line containing this marker is not reported (for deliberate examples)."""

_CANDIDATE: Final = re.compile(rb"_[0-9A-Za-z]{%d}" % BODY_LENGTH)
_O_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY: Final = getattr(os, "O_NOCTTY", 0)


@dataclass(frozen=True, slots=True)
class Finding:
    """A key found at ``path:line:column`` (1-based; the column counts characters).

    The parsed key keeps the secret for a store check; its ``repr`` hides it.
    """

    path: str
    line: int
    column: int
    key: ParsedKey = field(compare=False)

    @property
    def key_id(self) -> str:
        return self.key.key_id

    @property
    def prefix(self) -> str:
        return self.key.prefix

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class KeyFinder:
    """Finds checksum-valid keys of ``prefixes`` in bytes."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        ordered = sorted(set(prefixes), key=lambda p: (-len(p), p))
        self._prefixes = [(p, p.encode("ascii")) for p in ordered]

    def find(self, data: bytes) -> Iterator[tuple[int, ParsedKey]]:
        """Yield ``(offset of the key's first byte, parsed key)`` in order."""
        if not any(encoded in data for _, encoded in self._prefixes):
            return
        for match in _CANDIDATE.finditer(data):
            underscore = match.start()
            for prefix, encoded in self._prefixes:
                start = underscore - len(encoded)
                if start < 0 or data[start:underscore] != encoded:
                    continue
                text = data[start : match.end()].decode("ascii")
                parsed = _keyformat.parse_or_none(text, frozenset((prefix,)))
                if parsed is not None:
                    yield start, parsed
                    break


def find_in_bytes(finder: KeyFinder, data: bytes, path: str) -> tuple[list[Finding], int]:
    """The findings in ``data``, and how many were left out by :data:`ALLOW_MARKER`."""
    findings: list[Finding] = []
    allowed = 0
    line = 1
    counted_to = 0
    for offset, parsed in finder.find(data):
        line += data.count(b"\n", counted_to, offset)
        counted_to = offset
        line_start = data.rfind(b"\n", 0, offset) + 1
        line_end = data.find(b"\n", offset)
        text_of_line = data[line_start : line_end if line_end >= 0 else len(data)]
        if ALLOW_MARKER in text_of_line:
            allowed += 1
            continue
        column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
        findings.append(Finding(path, line, column, parsed))
    return findings, allowed


def is_binary(head: bytes) -> bool:
    """Whether a file starting with ``head`` is binary (a NUL in its first 8 KiB)."""
    return b"\0" in head[:BINARY_SNIFF_BYTES]


@dataclass
class ScanStats:
    """What a scan looked at and what it passed over."""

    files: int = 0
    binary: int = 0
    too_large: int = 0
    allowed: int = 0
    unreadable: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)
    """Paths skipped as neither a regular file nor a directory (FIFO, socket, device)."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, "-C", str(root), *args],
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_listed_files(root: Path) -> list[str] | None:
    """The files under ``root`` that git does not ignore (relative, ``/``-separated),
    or ``None`` when ``root`` is not in a work tree, is itself ignored, or git is
    missing or fails."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0 or inside.stdout.strip() != b"true":
        return None
    ignored_root = _git(root, "check-ignore", "-q", ".")
    if ignored_root is None or ignored_root.returncode == 0:
        return None
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is None or listed.returncode != 0:
        return None
    names = (os.fsdecode(raw) for raw in listed.stdout.split(b"\0") if raw)
    return sorted(set(names))


def walk_files(root: Path, *, respect_gitignore: bool) -> Iterator[str]:
    """Files under ``root`` (relative, ``/``-separated), applying the
    ``.gitignore`` files found on the way (unless told not to)."""
    stack: list[tuple[Path, str, IgnoreStack]] = [(root, "", IgnoreStack())]
    while stack:
        directory, relative, rules = stack.pop()
        if respect_gitignore:
            try:
                text = (directory / GITIGNORE).read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
            else:
                rules = rules.push(relative, parse_rules(text))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[Path, str, IgnoreStack]] = []
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name == ".git" or rules.ignored(path, is_dir=True):
                    continue
                subdirs.append((Path(entry.path), path, rules))
            elif entry.is_file() and not rules.ignored(path, is_dir=False):
                yield path
        stack.extend(reversed(subdirs))


class Scanner:
    """Scans paths for keys of ``prefixes``.

    Args:
        prefixes: The key prefixes to look for.
        respect_gitignore: Apply ignore rules while walking directories.
        max_bytes: Files larger than this are skipped (and counted).
        excludes: Glob patterns (``fnmatch``) of paths or file names to skip.
    """

    def __init__(
        self,
        prefixes: Iterable[str],
        *,
        respect_gitignore: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        excludes: Sequence[str] = (),
    ) -> None:
        self.finder = KeyFinder(prefixes)
        self.respect_gitignore = respect_gitignore
        self.max_bytes = max_bytes
        self.excludes = tuple(excludes)
        self.stats = ScanStats()

    def _excluded(self, display: str) -> bool:
        name = display.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(display, pattern) or fnmatch.fnmatchcase(name, pattern)
            for pattern in self.excludes
        )

    def files(self, target: str) -> Iterator[tuple[Path, str]]:
        """``(path, display path)`` of every file to scan for one command-line target."""
        root = Path(target)
        if not root.is_dir():
            yield root, target
            return
        listed = git_listed_files(root) if self.respect_gitignore else None
        names: Iterable[str]
        if listed is None:
            names = walk_files(root, respect_gitignore=self.respect_gitignore)
        else:
            names = (
                name
                for name in listed
                if ".git" not in name.split("/") and self._plain_file(root / name)
            )
        for name in sorted(names):
            display = os.path.normpath(os.path.join(target, name)).replace(os.sep, "/")
            if not self._excluded(display):
                yield root / name, display

    @staticmethod
    def _plain_file(path: Path) -> bool:
        return not path.is_symlink() and path.is_file()

    def scan_stream(self, stream: BinaryIO, display: str) -> list[Finding]:
        """Scan an open binary stream (standard input) to its end."""
        data = stream.read(self.max_bytes + 1)
        return self._scan_data(data, display, oversize=len(data) > self.max_bytes)

    def scan_file(self, path: Path, display: str) -> list[Finding]:
        """Scan one file (skipped when binary, too large, unreadable or not a
        regular file)."""
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
            fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOCTTY)
        except OSError:
            self.stats.unreadable.append(display)
            return []
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if not regular:
            os.close(fd)
            self.stats.not_regular.append(display)
            return []
        try:
            with os.fdopen(fd, "rb") as handle:
                head = handle.read(BINARY_SNIFF_BYTES)
                if is_binary(head):
                    self.stats.binary += 1
                    return []
                rest = handle.read(max(0, self.max_bytes + 1 - len(head)))
        except OSError:
            self.stats.unreadable.append(display)
            return []
        data = head + rest
        return self._scan_data(data, display, oversize=len(data) > self.max_bytes)

    def _scan_data(self, data: bytes, display: str, *, oversize: bool) -> list[Finding]:
        if oversize:
            self.stats.too_large += 1
            return []
        if is_binary(data):
            self.stats.binary += 1
            return []
        self.stats.files += 1
        findings, allowed = find_in_bytes(self.finder, data, display)
        self.stats.allowed += allowed
        return findings

    def scan(
        self,
        targets: Sequence[str],
        *,
        stdin: BinaryIO | None = None,
        on_file: Callable[[str], None] | None = None,
    ) -> list[Finding]:
        """Scan every target (``-`` is ``stdin``); findings in target and file order."""
        findings: list[Finding] = []
        for target in targets:
            if target == "-":
                if stdin is not None:
                    findings.extend(self.scan_stream(stdin, "<stdin>"))
                continue
            for path, display in self.files(target):
                if on_file is not None:
                    on_file(display)
                findings.extend(self.scan_file(path, display))
        return findings
