"""``flask apikeys create|list|revoke|rotate``: manage keys with the app's own manager.

Registered on ``app.cli`` by :meth:`apikeys.flask.APIKeys.init_app`. The plaintext
of a new key is written once, alone on standard output (so
``KEY=$(flask apikeys create --owner ci)`` captures it); summaries and notes go
to standard error. Exit status as the ``apikeys`` command: 1 refused, 2 bad
arguments or configuration, 3 store unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from apikeys._cli._errors import UsageError
from apikeys._cli._values import key_id_of, parse_duration
from apikeys._cli.output import KEY_HEADERS, key_json, key_row, render_table, when
from apikeys._manager import KeyManager
from apikeys._models import APIKey, IssuedKey, KeyState
from apikeys.errors import (
    APIKeyError,
    ConfigurationError,
    ConflictError,
    InvalidArgument,
    StorageError,
)

F = TypeVar("F", bound=Callable[..., Any])

_PAGE = 1000


class _Refused(click.ClickException):
    """The operation was refused (no such key, a revoked key...): exit status 1."""

    exit_code = 1


class _BadArguments(click.ClickException):
    """Bad arguments or configuration: exit status 2."""

    exit_code = 2


class _StoreUnavailable(click.ClickException):
    """The key store failed or is unreachable: exit status 3."""

    exit_code = 3


def _failure(error: APIKeyError) -> click.ClickException:
    """One line on stderr and the ``apikeys`` command's exit status."""
    if isinstance(error, StorageError) and not isinstance(error, ConflictError):
        return _StoreUnavailable(error.message)
    if isinstance(error, InvalidArgument | ConfigurationError):
        return _BadArguments(error.message)
    return _Refused(error.message)


def _handle_errors(command: F) -> F:
    """Turn apikeys errors into a one-line message and an exit status (no traceback)."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except APIKeyError as exc:
            raise _failure(exc) from exc
        except UsageError as exc:
            raise click.UsageError(str(exc)) from exc

    return run  # type: ignore[return-value]  # same signature, wrapped


def _state() -> Any:
    from apikeys.flask import _app_state

    return _app_state()


def _manager() -> KeyManager:
    manager: KeyManager = _state().manager
    return manager


def _duration(text: str | None, *, allow_zero: bool = False) -> timedelta | None:
    return None if text is None else parse_duration(text, allow_zero=allow_zero)


def _split(values: Iterable[str]) -> list[str]:
    """Values of a repeated option, each possibly comma-separated."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _show_issued(issued: IssuedKey, manager: KeyManager, as_json: bool) -> None:
    now = manager.now()
    if as_json:
        click.echo(json.dumps({"key": key_json(issued.key, now), "plaintext": issued.plaintext}))
        return
    key = issued.key
    expires = when(key.expires_at) if key.expires_at else "never"
    click.echo(
        f"key id {key.id}, owner {key.owner}, scopes {', '.join(key.scopes) or '-'}, "
        f"expires {expires}. The key (shown once, store it now):",
        err=True,
    )
    click.echo(issued.plaintext)


apikeys_cli = AppGroup("apikeys", help="Issue, list, revoke and rotate API keys.")


@apikeys_cli.command("create")
@click.option("--owner", required=True, help="Who the key belongs to.")
@click.option("--name", help="A human label, e.g. CI.")
@click.option(
    "--scope",
    "-s",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="A granted scope (repeat, or comma-separate): orders:read, orders:*, *.",
)
@click.option(
    "--expires-in",
    metavar="DURATION",
    help="Lifetime: 90d, 12h, 2w, 1d12h (default: APIKEYS_DEFAULT_EXPIRY, else never).",
)
@click.option("--no-expiry", is_flag=True, help="The key never expires.")
@click.option(
    "--allow-ip",
    "allowed_ips",
    multiple=True,
    metavar="CIDR",
    help="An address or network the key may be used from (repeat); default anywhere.",
)
@click.option(
    "--rate-limit", "rate_limits", multiple=True, metavar="LIMIT", help="e.g. 100/minute."
)
@click.option("--quota", help="Uses allowed: 1000 or 1000/month.")
@click.option("--prefix", help="One of the manager's prefixes (default: the first).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the record and the key).")
@_handle_errors
def create_command(
    owner: str,
    name: str | None,
    scopes: tuple[str, ...],
    expires_in: str | None,
    no_expiry: bool,
    allowed_ips: tuple[str, ...],
    rate_limits: tuple[str, ...],
    quota: str | None,
    prefix: str | None,
    as_json: bool,
) -> None:
    """Issue a key and print it (shown once; only its hash is stored)."""
    if expires_in is not None and no_expiry:
        raise click.UsageError("give --expires-in or --no-expiry, not both")
    state = _state()
    lifetime = _duration(expires_in)
    if lifetime is None and not no_expiry:
        lifetime = state.settings.default_expiry
    manager: KeyManager = state.manager
    issued = manager.create(
        owner=owner,
        name=name,
        scopes=_split(scopes),
        expires_in=lifetime,
        allowed_ips=_split(allowed_ips),
        rate_limits=list(rate_limits),
        quota=quota,
        prefix=prefix,
    )
    _show_issued(issued, manager, as_json)


@apikeys_cli.command("list")
@click.option("--owner", help="Only this owner's keys.")
@click.option(
    "--state",
    type=click.Choice([state.value for state in KeyState]),
    help="Only keys in this state now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@_handle_errors
def list_command(owner: str | None, state: str | None, as_json: bool) -> None:
    """List keys (never their secrets), ordered by id."""
    manager = _manager()
    now = manager.now()
    keys: list[APIKey] = []
    after: str | None = None
    while True:
        page = manager.list(owner=owner, state=state, limit=_PAGE, after=after)
        keys.extend(page)
        if len(page) < _PAGE:
            break
        after = page[-1].id
    if as_json:
        click.echo(json.dumps([key_json(key, now) for key in keys]))
    elif keys:
        click.echo(render_table(KEY_HEADERS, (key_row(key, now) for key in keys)))
    else:
        click.echo("no keys", err=True)


@apikeys_cli.command("revoke")
@click.argument("key")
@click.option("--reason", help="Why, e.g. leaked (kept for the audit trail).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@_handle_errors
def revoke_command(key: str, reason: str | None, as_json: bool) -> None:
    """Revoke KEY (its id, or the whole key) at once and for good."""
    manager = _manager()
    revoked = manager.revoke(key_id_of(key), reason=reason)
    if as_json:
        click.echo(json.dumps(key_json(revoked, manager.now())))
    else:
        click.echo(f"revoked {revoked.id} (owner {revoked.owner}) at {when(revoked.revoked_at)}")


@apikeys_cli.command("rotate")
@click.argument("key")
@click.option(
    "--grace",
    default="0s",
    show_default=True,
    metavar="DURATION",
    help="How long the old key keeps working: 0s, 24h, 7d.",
)
@click.option("--expires-in", metavar="DURATION", help="The successor's lifetime.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the record and the key).")
@_handle_errors
def rotate_command(key: str, grace: str, expires_in: str | None, as_json: bool) -> None:
    """Issue a successor of KEY (same owner, scopes, settings) and print it."""
    manager = _manager()
    issued = manager.rotate(
        key_id_of(key),
        grace=_duration(grace, allow_zero=True) or timedelta(0),
        expires_in=_duration(expires_in),
    )
    _show_issued(issued, manager, as_json)
