"""``apikeys scan``: find leaked keys in files, directories or standard input."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apikeys._cli._app import Commands
from apikeys._cli._context import Context
from apikeys._cli._errors import Exit, UsageError
from apikeys._cli._exposure import REASON_TEXT, Classifier, Verdict
from apikeys._cli._scanner import DEFAULT_MAX_BYTES, Finding, Scanner, ScanStats
from apikeys._logsafe import log_safe

_SIZE = re.compile(r"(\d+)([kmg]?)i?b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """Parse ``25M``, ``512k``, ``1G`` or a number of bytes.

    Raises:
        UsageError: not a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise UsageError(f"invalid size {text!r}: use e.g. 25M, 512k or 1000000")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def run_scan(
    ctx: Context,
    targets: Sequence[str],
    *,
    no_ignore: bool,
    excludes: Sequence[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[list[Finding], ScanStats]:
    """Scan ``targets`` for keys of the configured prefixes, with progress.

    Raises:
        UsageError: no prefix configured, a target does not exist, or ``-`` twice.
    """
    prefixes = ctx.require_prefixes()
    if list(targets).count("-") > 1:
        raise UsageError("'-' (standard input) can be given once")
    for target in targets:
        if target != "-" and not Path(target).exists():
            raise UsageError(f"no such file or directory: {target}")
    scanner = Scanner(
        prefixes, respect_gitignore=not no_ignore, max_bytes=max_bytes, excludes=excludes
    )
    with ctx.out.progress("scanning files") as progress:
        findings = scanner.scan(
            targets,
            stdin=sys.stdin.buffer if "-" in targets else None,
            on_file=lambda path: progress.advance(detail=log_safe(path)),
        )
    return findings, scanner.stats


def summary(stats: ScanStats, found: int) -> str:
    """One line on what a scan looked at."""
    skipped = []
    if stats.binary:
        skipped.append(f"{stats.binary} binary")
    if stats.too_large:
        skipped.append(f"{stats.too_large} too large")
    if stats.unreadable:
        skipped.append(f"{len(stats.unreadable)} unreadable")
    if stats.not_regular:
        skipped.append(f"{len(stats.not_regular)} not a regular file")
    text = f"{found} key(s) found in {stats.files} file(s) scanned"
    if skipped:
        text += f"; skipped {', '.join(skipped)}"
    if stats.allowed:
        text += f"; {stats.allowed} allowed by an apikeys:allow comment"
    return text


def finding_json(finding: Finding, verdict: Verdict | None) -> dict[str, Any]:
    """A finding as JSON-ready data (never the secret)."""
    data: dict[str, Any] = {
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "prefix": finding.prefix,
        "key_id": finding.key_id,
    }
    if verdict is not None:
        data["state"] = verdict.exposure.value
        data["reason"] = verdict.reason
    return data


def finding_text(finding: Finding, verdict: Verdict | None) -> str:
    """``path:line:column: <prefix> key <id>`` and, after a store check, its state.

    The path is escaped (:func:`~apikeys._logsafe.log_safe`): a file named with a
    newline or a terminal escape cannot forge or hide a line of the report."""
    text = f"{log_safe(finding.location)}: {finding.prefix} key {finding.key_id}"
    if verdict is not None:
        text += f" [{verdict.exposure.value}]"
        if verdict.reason:
            text += f" ({REASON_TEXT[verdict.reason]})"
    return text


def _scan(args: argparse.Namespace, ctx: Context) -> int:
    ctx.require_prefixes()
    targets = args.paths or ["."]
    max_bytes = parse_size(args.max_size) if args.max_size else DEFAULT_MAX_BYTES
    # Open the store before scanning, so a wrong URL fails at once, not after a long scan.
    manager = ctx.manager() if args.check_store else None
    findings, stats = run_scan(
        ctx, targets, no_ignore=args.no_ignore, excludes=args.exclude, max_bytes=max_bytes
    )
    verdicts: list[Verdict | None] = [None] * len(findings)
    if manager is not None and findings:
        classify = Classifier(manager, manager.now())
        with ctx.out.progress("checking keys", total=len(findings)) as progress:
            for index, finding in enumerate(findings):
                verdicts[index] = classify(finding.key)
                progress.advance()
    if manager is None:
        failing = bool(findings)
    else:
        failing = any(v is not None and v.exposure.dangerous for v in verdicts)
    if ctx.out.json_mode:
        ctx.out.json(
            {
                "findings": [finding_json(f, v) for f, v in zip(findings, verdicts, strict=True)],
                "files_scanned": stats.files,
                "skipped": {
                    "binary": stats.binary,
                    "too_large": stats.too_large,
                    "unreadable": stats.unreadable,
                    "not_regular": stats.not_regular,
                },
                "allowed": stats.allowed,
                "failed": failing,
            }
        )
    else:
        for finding, verdict in zip(findings, verdicts, strict=True):
            ctx.out.line(finding_text(finding, verdict))
        for path in stats.unreadable:
            ctx.out.note(f"apikeys: could not read {log_safe(path)}")
        for path in stats.not_regular:
            ctx.out.note(f"apikeys: skipped {log_safe(path)}: not a regular file or directory")
        ctx.out.note(summary(stats, len(findings)))
    return Exit.FAILED if failing else Exit.OK


def add_scan_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The options that choose what a scan reads (shared with ``revoke --from-scan``)."""
    parser.add_argument(
        "--no-ignore", action="store_true", help="also scan files ignored by .gitignore"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip paths or file names matching GLOB (repeat), e.g. 'tests/fixtures/*'",
    )
    parser.add_argument(
        "--max-size",
        metavar="SIZE",
        help=f"skip files larger than this (default {DEFAULT_MAX_BYTES // 1024**2}M)",
    )


def register(commands: Commands) -> None:
    """Add ``scan``."""
    p = commands.add(
        "scan",
        _scan,
        help="find leaked keys in files and directories (exit 1 when one is found)",
        description=(
            "Find keys of the configured prefixes in files, directories (respecting\n"
            ".gitignore) or standard input ('-'); binary files are skipped. A key is\n"
            "reported only if its checksum is right, as path:line:column and its id,\n"
            "never its secret. A line containing 'apikeys:allow' is not reported.\n\n"
            "Exit status 1 when a key is found; with --check-store, only when a found\n"
            "key is not revoked (live, suspended or expired) according to the store."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, directories, '-' (default .)")
    p.add_argument(
        "--check-store",
        action="store_true",
        help="look each key up: live, suspended, expired, revoked or unknown",
    )
    add_scan_options(p)
