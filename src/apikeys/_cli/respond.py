"""``apikeys revoke --from-scan``: the one-step response to leaked keys.

Scan, prove each found key's secret against the store, revoke every one that is
not revoked yet (live, suspended or expired: all could work again), and with
``--rotate`` issue a replacement for each live one, with the same settings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Final

from apikeys._cli._context import Context
from apikeys._cli._errors import Exit
from apikeys._cli._exposure import REASON_TEXT, Classifier, Exposure, Verdict
from apikeys._cli._scanner import DEFAULT_MAX_BYTES, Finding
from apikeys._cli.output import key_json
from apikeys._cli.scan import parse_size, run_scan, summary
from apikeys._models import IssuedKey
from apikeys.errors import APIKeyError

_MAX_REASON: Final = 200


@dataclass
class _Case:
    """One distinct found key and what was done about it."""

    finding: Finding
    verdict: Verdict
    locations: list[str] = field(default_factory=list)
    action: str = "none"
    replacement: IssuedKey | None = None
    replacement_id: str | None = None


def _reason(args: argparse.Namespace, case: _Case) -> str:
    if args.reason:
        return str(args.reason)
    text = f"leaked: found by apikeys scan at {case.locations[0]}"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _handle(ctx: Context, args: argparse.Namespace, case: _Case) -> None:
    manager = ctx.manager()
    exposure = case.verdict.exposure
    key = case.verdict.key
    if not exposure.dangerous or key is None:
        case.action = "already revoked" if exposure is Exposure.REVOKED else "none (unknown)"
        return
    if args.rotate and exposure is Exposure.LIVE:
        if key.replaced_by is None:
            case.replacement = manager.rotate(key.id)
            case.replacement_id = case.replacement.key.id
        else:
            case.replacement_id = key.replaced_by
    manager.revoke(key.id, reason=_reason(args, case))
    case.action = "revoked"


def _report(ctx: Context, cases: list[_Case], files: int) -> None:
    out = ctx.out
    now = ctx.manager().now()
    if out.json_mode:
        out.json(
            {
                "keys": [
                    {
                        "key_id": c.finding.key_id,
                        "prefix": c.finding.prefix,
                        "owner": c.verdict.key.owner if c.verdict.key else None,
                        "locations": c.locations,
                        "state": c.verdict.exposure.value,
                        "reason": c.verdict.reason,
                        "action": c.action,
                        "replacement_id": c.replacement_id,
                        "replacement": (
                            {
                                "key": key_json(c.replacement.key, now),
                                "plaintext": c.replacement.plaintext,
                            }
                            if c.replacement
                            else None
                        ),
                    }
                    for c in cases
                ],
                "files_scanned": files,
            }
        )
        return
    if cases:
        out.table(
            ("KEY ID", "OWNER", "FOUND AT", "WAS", "ACTION", "REPLACEMENT"),
            (
                (
                    c.finding.key_id,
                    c.verdict.key.owner if c.verdict.key else "-",
                    c.locations[0]
                    + (f" (+{len(c.locations) - 1})" if len(c.locations) > 1 else ""),
                    c.verdict.exposure.value
                    + (f" ({REASON_TEXT[c.verdict.reason]})" if c.verdict.reason else ""),
                    c.action,
                    c.replacement_id or "-",
                )
                for c in cases
            ),
        )
    issued = [c.replacement for c in cases if c.replacement is not None]
    if issued:
        out.line()
        out.line("New keys, shown only this once (hand each to its owner):")
        out.table(("ID", "OWNER", "KEY"), ((i.key.id, i.key.owner, i.plaintext) for i in issued))


def respond(ctx: Context, args: argparse.Namespace) -> int:
    """Run ``revoke --from-scan``; see the module docstring.

    Returns:
        0 when every found key that could work is now revoked.
    """
    manager = ctx.manager()
    max_bytes = parse_size(args.max_size) if args.max_size else DEFAULT_MAX_BYTES
    findings, stats = run_scan(
        ctx, args.from_scan, no_ignore=args.no_ignore, excludes=args.exclude, max_bytes=max_bytes
    )
    classify = Classifier(manager, manager.now())
    cases: dict[tuple[str, str], _Case] = {}
    for finding in findings:
        marker = (finding.key_id, finding.key.secret)
        case = cases.get(marker)
        if case is None:
            case = cases[marker] = _Case(finding, classify(finding.key))
        case.locations.append(finding.location)
    ordered = list(cases.values())
    try:
        with ctx.out.progress("revoking found keys", total=len(ordered)) as progress:
            for case in ordered:
                _handle(ctx, args, case)
                progress.advance()
    except APIKeyError:
        _report(ctx, ordered, stats.files)  # never lose a replacement's plaintext
        raise
    _report(ctx, ordered, stats.files)
    revoked = sum(c.action == "revoked" for c in ordered)
    if not ctx.out.json_mode:
        ctx.out.note(summary(stats, len(findings)) + f"; revoked {revoked} key(s)")
    return Exit.OK
