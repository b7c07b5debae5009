"""Key lifecycle commands: create, list, show, update, revoke, rotate, verify, purge."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from apikeys._cli._app import Commands
from apikeys._cli._context import Context
from apikeys._cli._errors import Exit, UsageError
from apikeys._cli._values import (
    key_id_of,
    parse_duration,
    parse_instant,
    parse_json_object,
)
from apikeys._cli.output import KEY_HEADERS, key_details, key_json, key_row, when
from apikeys._cli.scan import add_scan_options
from apikeys._manager import KeyManager
from apikeys._models import APIKey, IssuedKey, KeyState
from apikeys.errors import (
    APIKeyError,
    AuthenticationError,
    KeyNotFound,
    PermissionDenied,
    RateLimited,
)

PAGE: Final = 1000
MAX_COUNT: Final = 100_000
_SHOWN_ONCE = "This is the only time the key is shown: store it now."


def _scopes(values: Sequence[str] | None) -> list[str]:
    """Scopes from repeated and/or comma-separated options."""
    return [s.strip() for value in values or () for s in value.split(",") if s.strip()]


def iter_keys(
    manager: KeyManager, *, owner: str | None = None, state: KeyState | None = None
) -> Iterator[APIKey]:
    """Every key (of ``owner``, in ``state``), page by page, ordered by id."""
    after: str | None = None
    while True:
        batch = manager.list(owner=owner, state=state, limit=PAGE, after=after)
        yield from batch
        if len(batch) < PAGE:
            return
        after = batch[-1].id


def show_issued(ctx: Context, issued: Sequence[IssuedKey], *, quiet: bool) -> None:
    """Print newly issued keys: plaintext only (``quiet``), JSON, or a summary."""
    out = ctx.out
    now = ctx.manager().now()
    if quiet:
        for item in issued:
            out.line(item.plaintext)
    elif out.json_mode:
        data = [{"key": key_json(i.key, now), "plaintext": i.plaintext} for i in issued]
        out.json(data[0] if len(data) == 1 else data)
    elif len(issued) == 1:
        key = issued[0].key
        out.line(f"key id:   {key.id}")
        out.line(f"owner:    {key.owner}")
        out.line(f"scopes:   {', '.join(key.scopes) or '-'}")
        out.line(f"expires:  {when(key.expires_at) if key.expires_at else 'never'}")
        out.line(f"key:      {issued[0].plaintext}")
    else:
        out.table(("ID", "OWNER", "KEY"), ((i.key.id, i.key.owner, i.plaintext) for i in issued))
    if issued and not quiet and not out.json_mode:
        out.note(_SHOWN_ONCE)


# --- create ---------------------------------------------------------------------------


def _create(args: argparse.Namespace, ctx: Context) -> int:
    ctx.require_prefixes()
    if not 1 <= args.count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT}")
    options: dict[str, Any] = {
        "owner": args.owner,
        "scopes": _scopes(args.scope),
        "name": args.name,
        "expires_in": (
            parse_duration(args.expires_in)
            if args.expires_in
            else None
            if args.expires_at
            else ctx.default_expiry
        ),
        "expires_at": parse_instant(args.expires_at) if args.expires_at else None,
        "allowed_ips": _scopes(args.allow_ip),
        "metadata": parse_json_object(args.metadata) if args.metadata else None,
        "rate_limits": list(args.rate_limit or ()),
        "quota": args.quota,
    }
    manager = ctx.manager(create_database=True, issuing=True)
    issued: list[IssuedKey] = []
    try:
        with ctx.out.progress("issuing keys", total=args.count) as progress:
            for _ in range(args.count):
                issued.append(manager.create(**options))
                progress.advance()
    except APIKeyError:
        if issued:  # never lose a plaintext that was issued and stored
            show_issued(ctx, issued, quiet=args.quiet)
            ctx.out.note(f"stopped after {len(issued)} of {args.count} keys")
        raise
    show_issued(ctx, issued, quiet=args.quiet)
    return Exit.OK


def _add_key_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope",
        "-s",
        action="append",
        metavar="SCOPE",
        help="a granted scope (repeat, or comma-separate): orders:read, orders:*, *",
    )
    parser.add_argument("--name", help="a human label, e.g. CI")
    parser.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="lifetime: 90d, 12h, 2w, 1d12h (default: APIKEYS_DEFAULT_EXPIRY, else never)",
    )
    parser.add_argument("--expires-at", metavar="WHEN", help="expiry (ISO 8601, UTC if no zone)")
    parser.add_argument(
        "--allow-ip",
        action="append",
        metavar="CIDR",
        help="an address or network the key may be used from (repeat); default anywhere",
    )
    parser.add_argument("--metadata", metavar="JSON", help="a JSON object of your own data")
    parser.add_argument(
        "--rate-limit", action="append", metavar="LIMIT", help="e.g. 100/minute (repeat)"
    )
    parser.add_argument("--quota", help="uses allowed: 1000 or 1000/month")


# --- list / show ----------------------------------------------------------------------


def _state(value: str | None) -> KeyState | None:
    if value is None:
        return None
    # "suspended" is what people read; "disabled" is the state's machine name.
    return KeyState.DISABLED if value == "suspended" else KeyState(value)


def _list(args: argparse.Namespace, ctx: Context) -> int:
    manager = ctx.manager()
    now = manager.now()
    state = _state(args.state)
    if args.all:
        keys: list[APIKey] = []
        with ctx.out.progress("listing keys") as progress:
            for key in iter_keys(manager, owner=args.owner, state=state):
                keys.append(key)
                progress.advance()
        more = False
    else:
        if not 1 <= args.limit <= 10_000:
            raise UsageError("--limit must be between 1 and 10000")
        keys = manager.list(owner=args.owner, state=state, limit=args.limit, after=args.after)
        more = len(keys) == args.limit
    if ctx.out.json_mode:
        ctx.out.json([key_json(key, now) for key in keys])
    elif keys:
        ctx.out.table(KEY_HEADERS, (key_row(key, now) for key in keys))
    else:
        ctx.out.note("no keys")
    if more:
        ctx.out.note(f"more keys may follow: --after {keys[-1].id} for the next page, or --all")
    return Exit.OK


def _show(args: argparse.Namespace, ctx: Context) -> int:
    key_id = key_id_of(args.key_id)
    manager = ctx.manager()
    key = manager.get(key_id)
    if ctx.out.json_mode:
        ctx.out.json(key_json(key, manager.now()))
    else:
        ctx.out.line(key_details(key, manager.now()))
    return Exit.OK


# --- update ---------------------------------------------------------------------------


def _update(args: argparse.Namespace, ctx: Context) -> int:
    key_id = key_id_of(args.key_id)
    manager = ctx.manager()
    changes: dict[str, Any] = {}
    if args.scope is not None or args.add_scope or args.remove_scope:
        base = _scopes(args.scope) if args.scope is not None else list(manager.get(key_id).scopes)
        removed = set(_scopes(args.remove_scope))
        changes["scopes"] = [s for s in base + _scopes(args.add_scope) if s not in removed]
    if args.name is not None:
        changes["name"] = args.name
    if args.clear_name:
        changes["name"] = None
    if args.expires_at:
        changes["expires_at"] = parse_instant(args.expires_at)
    if args.expires_in:
        changes["expires_at"] = manager.now() + parse_duration(args.expires_in)
    if args.no_expiry:
        changes["expires_at"] = None
    if args.allow_ip is not None:
        changes["allowed_ips"] = _scopes(args.allow_ip)
    if args.allow_anywhere:
        changes["allowed_ips"] = []
    if args.metadata is not None:
        changes["metadata"] = parse_json_object(args.metadata)
    if args.clear_metadata:
        changes["metadata"] = None
    if args.rate_limit is not None:
        changes["rate_limits"] = list(args.rate_limit)
    if args.clear_rate_limits:
        changes["rate_limits"] = []
    if args.quota is not None:
        changes["quota"] = args.quota
    if args.no_quota:
        changes["quota"] = None
    if not changes:
        raise UsageError("nothing to update: give at least one setting (see --help)")
    key = manager.update(key_id, **changes)
    if ctx.out.json_mode:
        ctx.out.json(key_json(key, manager.now()))
    else:
        ctx.out.line(key_details(key, manager.now()))
    return Exit.OK


def _add_update_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key_id", metavar="KEY_ID", help="the key's id (or the whole key)")
    scopes = parser.add_argument_group("scopes")
    scopes.add_argument(
        "--scope",
        "-s",
        action="append",
        metavar="SCOPE",
        help="replace the scopes with these (repeat or comma-separate)",
    )
    scopes.add_argument("--add-scope", action="append", metavar="SCOPE", help="grant a scope")
    scopes.add_argument("--remove-scope", action="append", metavar="SCOPE", help="withdraw a scope")
    name = parser.add_mutually_exclusive_group()
    name.add_argument("--name", help="set the label")
    name.add_argument("--clear-name", action="store_true", help="remove the label")
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument("--expires-at", metavar="WHEN", help="set the expiry (ISO 8601)")
    expiry.add_argument("--expires-in", metavar="DURATION", help="expire this long from now")
    expiry.add_argument("--no-expiry", action="store_true", help="never expire")
    ips = parser.add_mutually_exclusive_group()
    ips.add_argument(
        "--allow-ip",
        action="append",
        metavar="CIDR",
        help="replace the allowed addresses with these (repeat)",
    )
    ips.add_argument("--allow-anywhere", action="store_true", help="remove the address limits")
    meta = parser.add_mutually_exclusive_group()
    meta.add_argument("--metadata", metavar="JSON", help="replace the metadata")
    meta.add_argument("--clear-metadata", action="store_true", help="remove the metadata")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument(
        "--rate-limit",
        action="append",
        metavar="LIMIT",
        help="replace the rate limits with these (repeat)",
    )
    limits.add_argument("--clear-rate-limits", action="store_true", help="use the default limits")
    quota = parser.add_mutually_exclusive_group()
    quota.add_argument("--quota", help="set the quota: 1000 or 1000/month")
    quota.add_argument("--no-quota", action="store_true", help="remove the quota")


# --- revoke ---------------------------------------------------------------------------


def _revoke_many(ctx: Context, key_ids: Sequence[str], reason: str | None) -> int:
    manager = ctx.manager()
    now = manager.now()
    done: list[APIKey] = []
    failures = 0
    with ctx.out.progress("revoking keys", total=len(key_ids)) as progress:
        for key_id in key_ids:
            try:
                done.append(manager.revoke(key_id, reason=reason))
            except KeyNotFound as exc:
                failures += 1
                ctx.out.note(f"apikeys: error: {exc.message}")
            progress.advance()
    if ctx.out.json_mode:
        ctx.out.json([key_json(key, now) for key in done])
    elif done:
        ctx.out.table(
            ("ID", "OWNER", "REVOKED", "REASON"),
            ((k.id, k.owner, when(k.revoked_at), k.revoke_reason or "-") for k in done),
        )
    return Exit.FAILED if failures else Exit.OK


def _revoke(args: argparse.Namespace, ctx: Context) -> int:
    modes = sum((bool(args.key_ids), args.owner is not None, args.from_scan is not None))
    if modes != 1:
        raise UsageError("give KEY_ID..., --owner OWNER or --from-scan PATH... (one of them)")
    if args.rotate and args.from_scan is None:
        raise UsageError("--rotate goes with --from-scan (or use 'apikeys rotate KEY_ID')")
    if args.from_scan is not None:
        from apikeys._cli.respond import respond

        return respond(ctx, args)
    if args.owner is not None:
        manager = ctx.manager()
        now = manager.now()
        targets = [k for k in iter_keys(manager, owner=args.owner) if k.revoked_at is None]
        if not targets:
            ctx.out.note(f"no unrevoked keys of owner {args.owner!r}")
            return Exit.OK
        if not args.yes:
            ctx.out.table(KEY_HEADERS, (key_row(k, now) for k in targets))
            raise UsageError(f"would revoke these {len(targets)} keys: add --yes to do it")
        return _revoke_many(ctx, [k.id for k in targets], args.reason)
    return _revoke_many(ctx, [key_id_of(v) for v in args.key_ids], args.reason)


# --- rotate ---------------------------------------------------------------------------


def _rotate(args: argparse.Namespace, ctx: Context) -> int:
    grace = (
        parse_duration(args.grace, allow_zero=True) if args.grace else ctx.settings.rotation_grace
    )
    expires_in = parse_duration(args.expires_in) if args.expires_in else None
    old_id = key_id_of(args.key_id)
    manager = ctx.manager(issuing=True)
    issued = manager.rotate(old_id, grace=grace, expires_in=expires_in)
    show_issued(ctx, [issued], quiet=args.quiet)
    if not args.quiet and not ctx.out.json_mode:
        old = manager.get(old_id)
        ends = when(old.expires_at) if old.expires_at else "now"
        ctx.out.note(f"key {old_id} is replaced by {issued.key.id}; it works until {ends}")
    return Exit.OK


# --- verify ---------------------------------------------------------------------------


def _read_key(value: str | None) -> str:
    if value is None or value == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("give the key on standard input (safer than an argument) or as KEY")
        return sys.stdin.readline().strip()
    return value.strip()


def _verify(args: argparse.Namespace, ctx: Context) -> int:
    raw = _read_key(args.key)
    manager = ctx.manager()
    try:
        key = manager.verify(raw, scopes=_scopes(args.scope), ip=args.ip)
    except (AuthenticationError, PermissionDenied, RateLimited) as exc:
        key_id = getattr(exc, "key_id", None)
        if ctx.out.json_mode:
            ctx.out.json(
                {"valid": False, "code": exc.code, "message": exc.message, "key_id": key_id}
            )
        else:
            ctx.out.line(f"invalid: {exc.code}: {exc.message}")
        return Exit.FAILED
    if ctx.out.json_mode:
        ctx.out.json({"valid": True, "key": key_json(key, manager.now())})
    else:
        ctx.out.line(f"valid: key {key.id} of {key.owner} (scopes: {', '.join(key.scopes) or '-'})")
    return Exit.OK


# --- purge ----------------------------------------------------------------------------


def _purge_targets(ctx: Context, state: str, older_than: str | None) -> list[APIKey]:
    manager = ctx.manager()
    cutoff: datetime = manager.now() - (
        parse_duration(older_than, allow_zero=True) if older_than else timedelta(0)
    )
    wanted = KeyState(state)
    targets = []
    for key in iter_keys(manager, state=wanted):
        moment = key.revoked_at if wanted is KeyState.REVOKED else key.expires_at
        if moment is not None and moment <= cutoff:
            targets.append(key)
    return targets


def _purge(args: argparse.Namespace, ctx: Context) -> int:
    if bool(args.key_ids) == (args.state is not None):
        raise UsageError("give KEY_ID... or --state revoked|expired (one of them)")
    if args.older_than and args.state is None:
        raise UsageError("--older-than goes with --state")
    requested = [key_id_of(v) for v in args.key_ids]
    manager = ctx.manager()
    now = manager.now()
    if args.state is not None:
        targets = _purge_targets(ctx, args.state, args.older_than)
        if targets and not args.yes:
            ctx.out.table(KEY_HEADERS, (key_row(k, now) for k in targets))
            raise UsageError(f"would purge these {len(targets)} keys: add --yes to do it")
        key_ids = [k.id for k in targets]
    else:
        key_ids = requested
    purged: list[str] = []
    missing: list[str] = []
    with ctx.out.progress("purging keys", total=len(key_ids)) as progress:
        for key_id in key_ids:
            (purged if manager.purge(key_id) else missing).append(key_id)
            progress.advance()
    for key_id in missing:
        ctx.out.note(f"apikeys: error: {KeyNotFound(key_id).message}")
    if ctx.out.json_mode:
        ctx.out.json({"purged": purged, "not_found": missing})
    else:
        if args.state is not None:
            ctx.out.note(f"purged {len(purged)} key(s)")
        for key_id in purged:
            ctx.out.line(key_id)
    return Exit.FAILED if missing else Exit.OK


# --- registration ---------------------------------------------------------------------


def register(commands: Commands) -> None:
    """Add the key lifecycle commands."""
    p = commands.add("create", _create, help="issue a new key and print it (once)")
    p.add_argument("--owner", required=True, help="who the key belongs to")
    _add_key_settings(p)
    p.add_argument("--count", type=int, default=1, metavar="N", help="issue N keys (default 1)")
    p.add_argument(
        "--quiet", "-q", action="store_true", help="print only the key itself (for pipes)"
    )

    p = commands.add("list", _list, help="list keys (ordered by id)")
    p.add_argument("--owner", help="only this owner's keys")
    p.add_argument(
        "--state",
        choices=[*(s.value for s in KeyState), "suspended"],
        help="only keys in this state (suspended = disabled)",
    )
    p.add_argument("--limit", type=int, default=100, help="page size (default 100)")
    p.add_argument("--after", metavar="KEY_ID", help="start after this id (next page)")
    p.add_argument("--all", action="store_true", help="every key, all pages")

    p = commands.add("show", _show, help="show one key's record")
    p.add_argument("key_id", metavar="KEY_ID", help="the key's id (or the whole key)")

    p = commands.add("update", _update, help="change a key's settings")
    _add_update_arguments(p)

    p = commands.add(
        "revoke",
        _revoke,
        help="revoke keys now, for good (by id, by owner, or every key a scan finds)",
        description=(
            "Revoke keys at once, for every process sharing the store. Final.\n\n"
            "  apikeys revoke KEY_ID...                     these keys\n"
            "  apikeys revoke --owner OWNER --yes           every key of an owner\n"
            "  apikeys revoke --from-scan PATH... [--rotate]\n"
            "      scan PATH... (as 'apikeys scan'), revoke every found key that is not\n"
            "      revoked yet (live, suspended or expired), and with --rotate issue a\n"
            "      replacement for each live one: their ids and keys are printed."
        ),
    )
    p.add_argument("key_ids", nargs="*", metavar="KEY_ID", help="ids (or whole keys) to revoke")
    p.add_argument("--reason", help="why (kept in the record), e.g. leaked")
    p.add_argument("--owner", help="revoke every unrevoked key of this owner (with --yes)")
    p.add_argument("--yes", action="store_true", help="confirm a bulk revocation")
    p.add_argument(
        "--from-scan",
        nargs="+",
        metavar="PATH",
        help="revoke the keys found in these files/directories ('-': stdin)",
    )
    p.add_argument(
        "--rotate",
        action="store_true",
        help="with --from-scan: issue a replacement for each live key",
    )
    add_scan_options(p.add_argument_group("with --from-scan"))

    p = commands.add("rotate", _rotate, help="issue a successor; the old key ends after --grace")
    p.add_argument("key_id", metavar="KEY_ID", help="the key's id (or the whole key)")
    p.add_argument(
        "--grace",
        metavar="DURATION",
        help="how long the old key keeps working (default: APIKEYS_ROTATION_GRACE, else 0)",
    )
    p.add_argument(
        "--expires-in", metavar="DURATION", help="the successor's lifetime (default: the old key's)"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only the new key")

    p = commands.add(
        "verify",
        _verify,
        help="check a key as an application would (exit 0 valid, 1 invalid)",
        description=(
            "Check a key as an application would: format, secret, state, address and\n"
            "scopes. Reads the key from standard input unless given (an argument ends\n"
            "up in shell history and process lists). Exit status 0 valid, 1 invalid."
        ),
    )
    p.add_argument("key", nargs="?", metavar="KEY", help="the key ('-' or absent: stdin)")
    p.add_argument("--scope", "-s", action="append", metavar="SCOPE", help="a required scope")
    p.add_argument("--ip", help="the client address to check against the key's allowlist")

    p = commands.add(
        "purge",
        _purge,
        help="delete key records for good (the audit trail keeps their entries)",
        description=(
            "Delete key records for good. Their audit entries are kept, and a\n"
            "key.purged entry is added, so 'apikeys audit --key ID' still tells the\n"
            "key's story (entries go only by the audit retention)."
        ),
    )
    p.add_argument("key_ids", nargs="*", metavar="KEY_ID", help="ids to purge")
    p.add_argument(
        "--state", choices=["revoked", "expired"], help="purge every key in this state (with --yes)"
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="with --state: only keys revoked/expired at least this long ago",
    )
    p.add_argument("--yes", action="store_true", help="confirm a bulk purge")


__all__ = ["iter_keys", "register", "show_issued"]
