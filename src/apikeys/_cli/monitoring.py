"""Monitoring commands: usage (with a small chart), audit, review, suspend, enable.

Usage counters and the audit trail live in their own tables, by default in the
key database (``--database-url``); ``--usage-url`` (e.g. ``redis://…``) and
``--audit-url`` point elsewhere. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from apikeys._cli._app import Commands
from apikeys._cli._context import ENV_AUDIT_URL, ENV_USAGE_URL, Context
from apikeys._cli._errors import Exit
from apikeys._cli._values import key_id_of, parse_duration, parse_instant
from apikeys._cli.output import key_json, when
from apikeys._display import readable, state_label
from apikeys.monitoring import Monitor, UsageReport

BARS: Final = " ▁▂▃▄▅▆▇█"
ASCII_BARS: Final = " .:-=+*#@"
CHART_WIDTH: Final = 60


def _monitor(ctx: Context) -> Monitor:
    """The monitor of the CLI's manager (closed with the context)."""
    return ctx.monitor()


def _since(text: str | None, now: datetime, default: timedelta) -> datetime:
    """``--since``: a duration back from now (``24h``) or an instant."""
    if text is None:
        return now - default
    if text.strip()[:1].isdigit() and text.strip()[-1:].lower() in "wdhms":
        return now - parse_duration(text)
    return parse_instant(text)


def _add_period(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help=f"a duration back from now (24h) or an instant (default {default})",
    )
    parser.add_argument("--until", metavar="WHEN", help="an instant (default: now)")


def _add_store_urls(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("monitoring stores")
    group.add_argument(
        "--usage-url",
        metavar="URL",
        help=f"usage counters: SQL or redis:// URL (env {ENV_USAGE_URL}; default: key database)",
    )
    group.add_argument(
        "--audit-url",
        metavar="URL",
        help=f"audit trail: SQL URL (env {ENV_AUDIT_URL}; default: the key database)",
    )


def _can_encode(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def sparkline(values: Sequence[int], width: int = CHART_WIDTH, bars: str = BARS) -> str:
    """One line of bars, one per value (summed in groups when there are more than
    ``width``); an empty bucket is a space, any request at least the lowest bar."""
    if not values:
        return ""
    group = max(1, math.ceil(len(values) / width))
    sums = [sum(values[i : i + group]) for i in range(0, len(values), group)]
    peak = max(sums)
    top = len(bars) - 1
    if peak == 0:
        return bars[0] * len(sums)
    return "".join(bars[0] if n == 0 else bars[max(1, round(n / peak * top))] for n in sums)


def render_usage(report: UsageReport, width: int = CHART_WIDTH, ascii_only: bool = False) -> str:
    """The ``usage`` text: summary, chart with its time axis, counts table."""
    values = [n for _, n in report.series]
    group = max(1, math.ceil(len(values) / width))
    chart = sparkline(values, width, ASCII_BARS if ascii_only else BARS)
    # The line names the bucket asked for; a bar summing several says so apart.
    peak = max(values, default=0)
    bars = "" if group == 1 else f"; each bar sums {group} {report.granularity}s"
    start = when(report.since)
    end = when(report.series[-1][0]) if report.series else when(report.until)
    lines = [
        f"key {report.key_id}: {report.total:,} requests, {start} to {end}",
        f"per {report.granularity}, peak {peak:,}{bars}",
        f"|{chart}|",
        f" {start}{' ' * max(1, len(chart) - len(start) - len(end))}{end}",
    ]
    if report.by and report.counts:
        headers = [name.upper() for name in report.by] + ["REQUESTS"]
        rows = [[str(v) for v in values] + [f"{n:,}"] for values, n in report.counts.items()]
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        lines.append("")
        for row in [headers, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


# With --granularity and no --since: a period whose buckets fit the chart.
_DEFAULT_PERIODS = {
    "minute": timedelta(minutes=CHART_WIDTH - 1),  # the partial first bucket makes 60
    "hour": timedelta(hours=24),
    "day": timedelta(days=30),
}


def _usage(args: argparse.Namespace, ctx: Context) -> int:
    key_id = key_id_of(args.key)
    monitor = _monitor(ctx)
    now = monitor.manager.now()
    until = parse_instant(args.until) if args.until else None
    default = _DEFAULT_PERIODS.get(args.granularity, timedelta(days=1))
    since = _since(args.since, until or now, default)
    by = [d.strip() for d in args.by.split(",") if d.strip()] if args.by else []
    report = monitor.usage(key_id, since=since, until=until, by=by, granularity=args.granularity)
    if ctx.out.json_mode:
        ctx.out.json(report.to_dict())
    else:
        ascii_only = not _can_encode(BARS)
        ctx.out.line(render_usage(report, ascii_only=ascii_only))
    return Exit.OK


def _audit(args: argparse.Namespace, ctx: Context) -> int:
    monitor = _monitor(ctx)
    now = monitor.manager.now()
    until = parse_instant(args.until) if args.until else None
    since = _since(args.since, until or now, timedelta(days=30)) if args.since else None
    entries = monitor.audit(
        key_id=key_id_of(args.key) if args.key else None,
        owner=args.owner,
        since=since,
        until=until,
        types=args.type or None,
        limit=args.limit,
    )
    if ctx.out.json_mode:
        ctx.out.json([entry.to_dict() for entry in entries])
        return Exit.OK
    rows = []
    for entry in entries:
        shown = sorted((k, v) for k, v in entry.data.items() if v not in (None, []))
        details = ", ".join(f"{name}={readable(value)}" for name, value in shown)
        rows.append(
            (
                str(entry.id),
                when(entry.at),
                entry.type,
                entry.key_id or "-",
                entry.owner or "-",
                details,
            )
        )
    ctx.out.table(("ID", "AT", "EVENT", "KEY", "OWNER", "DETAILS"), rows)
    if not entries:
        ctx.out.note("no audit entries match")
    return Exit.OK


def _review(args: argparse.Namespace, ctx: Context) -> int:
    findings = _monitor(ctx).review(
        unused_for=parse_duration(args.unused_for) if args.unused_for != "off" else None,
        max_age=parse_duration(args.max_age) if args.max_age != "off" else None,
        broad_scopes=args.broad_scope or ["*"],
        flag_no_expiry=not args.allow_no_expiry,
        owner=args.owner,
    )
    if ctx.out.json_mode:
        ctx.out.json([finding.to_dict() for finding in findings])
    else:
        ctx.out.table(
            ("ID", "OWNER", "NAME", "ISSUES", "NOTES"),
            (
                (
                    f.key.id,
                    f.key.owner,
                    f.key.name or "-",
                    ",".join(f.issues),
                    "; ".join(f.notes.values()),
                )
                for f in findings
            ),
        )
        ctx.out.note(f"{len(findings)} key(s) need a look" if findings else "no findings")
    return Exit.FAILED if findings and args.check else Exit.OK


def _suspend(args: argparse.Namespace, ctx: Context) -> int:
    return _switch(args, ctx, suspend=True)


def _enable(args: argparse.Namespace, ctx: Context) -> int:
    return _switch(args, ctx, suspend=False)


def _switch(args: argparse.Namespace, ctx: Context, *, suspend: bool) -> int:
    key_id = key_id_of(args.key)
    manager = ctx.manager()  # its monitor puts the change in the audit trail
    key = manager.suspend(key_id, reason=args.reason) if suspend else manager.enable(key_id)
    now = manager.now()
    if ctx.out.json_mode:
        ctx.out.json(key_json(key, now))
    else:
        ctx.out.line(f"{key.id}: {state_label(key.state(now))}")
    return Exit.OK


def register(commands: Commands) -> None:
    """Add the monitoring commands."""
    p = commands.add(
        "usage",
        _usage,
        help="show a key's requests over time, by route and status, with a small chart",
    )
    p.add_argument("key", metavar="KEY_ID", help="the key id (or the whole key)")
    _add_period(p, "24h; 1h with --granularity minute, 30d with day")
    p.add_argument(
        "--by",
        default="route,status",
        metavar="DIMS",
        help="break counts down by route, method, status (comma-separated; '' for none)",
    )
    p.add_argument("--granularity", choices=("minute", "hour", "day"), help="bucket size")
    _add_store_urls(p)

    p = commands.add("audit", _audit, help="show the audit trail (oldest first)")
    p.add_argument("--key", metavar="KEY_ID", help="one key's entries")
    p.add_argument("--owner", help="one owner's entries")
    _add_period(p, "all")
    p.add_argument("--type", action="append", metavar="TYPE", help="only this event type")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    _add_store_urls(p)

    p = commands.add(
        "review",
        _review,
        help="list live keys that are unused, never expire, too old or hold broad scopes",
    )
    p.add_argument(
        "--unused-for",
        default="90d",
        metavar="DURATION",
        help="flag keys unused this long (default 90d; 'off')",
    )
    p.add_argument(
        "--max-age",
        default="365d",
        metavar="DURATION",
        help="flag keys older than this (default 365d; 'off')",
    )
    p.add_argument(
        "--broad-scope",
        action="append",
        metavar="SCOPE",
        help="a scope too broad to hold (repeatable; default '*')",
    )
    p.add_argument(
        "--allow-no-expiry", action="store_true", help="do not flag keys that never expire"
    )
    p.add_argument("--owner", help="only this owner's keys")
    p.add_argument("--check", action="store_true", help="exit with status 1 if anything is found")
    _add_store_urls(p)

    p = commands.add("suspend", _suspend, help="suspend a key (reversible with 'enable')")
    p.add_argument("key", metavar="KEY_ID", help="the key id (or the whole key)")
    p.add_argument("--reason", help="why (kept with the key and in the audit trail)")
    _add_store_urls(p)

    p = commands.add("enable", _enable, help="lift a key's suspension")
    p.add_argument("key", metavar="KEY_ID", help="the key id (or the whole key)")
    _add_store_urls(p)
