"""DjangoStore: the key store on the Django ORM (any database Django supports).

It implements :class:`~apikeys.storage.KeyStore` and
:class:`~apikeys.storage.AsyncKeyStore` (and both touch capabilities), so one
instance serves a :class:`~apikeys.KeyManager` and an
:class:`~apikeys.AsyncKeyManager`. The awaitable methods run the ORM in Django's
thread-sensitive executor (``sync_to_async``), as Django's own async ORM does, so
a write and its transaction stay on one connection.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import Error as DatabaseError
from django.db import IntegrityError, connections, transaction
from django.db.models import Q

from apikeys._models import COLUMNS, KeyRecord, KeyState, row_to_record
from apikeys.django.models import APIKeyRecord
from apikeys.errors import ConfigurationError, ConflictError, StorageError
from apikeys.storage._changes import change_payload
from apikeys.storage._decoded import DecodedRows

__all__ = ["DjangoStore"]

_DATETIMES = ("created_at", "expires_at", "revoked_at", "disabled_at", "last_used_at")
_JSON = ("scopes", "allowed_ips", "metadata", "rate_limits")
_PLACEHOLDER = "\x00apikeys-key-id\x00"


def to_db(value: datetime | None) -> datetime | None:
    """An aware datetime as the database takes it: as is, or naive UTC when Django
    runs without time zone support (``USE_TZ = False``)."""
    if value is None or django_settings.USE_TZ:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The one seam where database errors become :class:`StorageError`."""
    try:
        yield
    except DatabaseError as exc:
        raise StorageError(
            f"the key database failed during {action} ({type(exc).__name__})"
        ) from exc


def state_filter(state: KeyState, now: datetime | None) -> Q:
    """The rows in ``state`` at ``now`` (a value as the database stores it)."""
    live = Q(revoked_at__isnull=True, disabled_at__isnull=True)
    if state is KeyState.REVOKED:
        return Q(revoked_at__isnull=False)
    if state is KeyState.DISABLED:
        return Q(revoked_at__isnull=True, disabled_at__isnull=False)
    if state is KeyState.EXPIRED:
        return live & Q(expires_at__lte=now)
    return live & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class DjangoStore:
    """Keeps records in the ``apikeys.django`` model's table.

    Writes run in ``transaction.atomic`` and update with a version check
    (``UPDATE … WHERE id = %s AND version = %s``), so concurrent changes to one key
    never lose a write. Every driver error surfaces as
    :class:`~apikeys.errors.StorageError`: a request fails closed (503).

    Args:
        using: The database alias (``settings.DATABASES``) holding the table.

    Raises:
        ConfigurationError: ``using`` is not a configured database.
    """

    def __init__(self, using: str = "default") -> None:
        if using not in connections:
            raise ConfigurationError(f"DjangoStore: no database {using!r} in settings.DATABASES")
        self.using = using
        self._plans = threading.local()
        self._decoded = DecodedRows()

    def __repr__(self) -> str:
        return f"DjangoStore(using={self.using!r})"

    # --- rows -------------------------------------------------------------------------

    @property
    def _objects(self) -> Any:
        return APIKeyRecord.objects.using(self.using)

    def _row(self, record: KeyRecord) -> dict[str, Any]:
        """The columns of :data:`~apikeys._models.COLUMNS`, JSON fields as Python
        values (the model's ``JSONField`` encodes them)."""
        key = record.key
        row: dict[str, Any] = {
            name: getattr(key, name) for name in COLUMNS if name != "secret_hash"
        }
        row["secret_hash"] = record.secret_hash
        for name in _JSON:
            if isinstance(row[name], tuple):
                row[name] = list(row[name])
        for name in _DATETIMES:
            row[name] = to_db(row[name])
        return row

    # --- KeyStore ---------------------------------------------------------------------

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of ``key_id``, or ``None``.

        Raises:
            StorageError: the database failed.
        """
        sql, params, slot, compiler, converters = self._get_plan()
        args = list(params)
        args[slot] = key_id
        with _translated("get"), connections[self.using].cursor() as cursor:
            cursor.execute(sql, args)
            row = cursor.fetchone()
        if row is not None and converters:
            row = tuple(next(iter(compiler.apply_converters([row], converters))))
        # The same decoded record while the row is unchanged (storage/_decoded.py).
        return self._decoded.record(key_id, None if row is None else tuple(row))

    def _get_plan(self) -> tuple[str, tuple[Any, ...], int, Any, dict[int, Any]]:
        """``get``'s query, compiled once per thread (each thread has its own
        connection): building an ORM query costs several times the indexed read
        itself, and ``get`` runs on every request."""
        plan: tuple[str, tuple[Any, ...], int, Any, dict[int, Any]] | None
        plan = getattr(self._plans, "get", None)
        if plan is None:
            query = self._objects.filter(pk=_PLACEHOLDER).values(*COLUMNS)[:1].query
            compiler = query.get_compiler(using=self.using)
            with _translated("get"):
                sql, params = compiler.as_sql()
            converters = compiler.get_converters([column for column, _, _ in compiler.select])
            plan = (sql, tuple(params), list(params).index(_PLACEHOLDER), compiler, converters)
            self._plans.get = plan
        return plan

    def supports_notify(self) -> bool:
        """Whether ``write``/``purge`` take ``notify=`` (the database is PostgreSQL),
        for :class:`~apikeys.storage.CachedStore`."""
        return bool(connections[self.using].vendor == "postgresql")

    def _notify(self, channel: str | None, ids: Sequence[str]) -> None:
        """``pg_notify`` in the current transaction, when a channel is given."""
        if channel is None:
            return
        if not self.supports_notify():
            raise ConfigurationError("notify= needs PostgreSQL (LISTEN/NOTIFY)")
        with connections[self.using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, change_payload(ids)])

    def write(
        self,
        *,
        insert: Sequence[KeyRecord] = (),
        update: Sequence[KeyRecord] = (),
        notify: str | None = None,
    ) -> None:
        """Insert and update records atomically, updates version-checked.

        Args:
            insert: New records.
            update: Changed records, each at its stored version + 1.
            notify: A PostgreSQL channel to announce the change on, in the same
                transaction (for :class:`~apikeys.storage.CachedStore`).

        Raises:
            ConflictError: an inserted id exists, or an updated record's stored
                version is not ``record.version - 1`` (nothing was written).
            ConfigurationError: ``notify`` on a database other than PostgreSQL.
            StorageError: the database failed (nothing was written).
        """
        ids = [r.id for r in insert] + [r.id for r in update]
        if len(set(ids)) != len(ids):
            raise ConflictError("one write names a key id twice")
        if not ids:
            return
        try:
            with _translated("write"), transaction.atomic(using=self.using):
                for record in insert:
                    self._objects.create(**self._row(record))
                for record in update:
                    row = self._row(record)
                    del row["id"]
                    changed = self._objects.filter(pk=record.id, version=record.version - 1).update(
                        **row
                    )
                    if changed != 1:
                        raise ConflictError(f"key {record.id!r} changed since it was read")
                self._notify(notify, ids)
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError) and self._any_exists(insert):
                raise ConflictError("a key id to insert exists") from exc.__cause__
            raise

    def _any_exists(self, records: Sequence[KeyRecord]) -> bool:
        if not records:
            return False
        with _translated("write"):
            return bool(self._objects.filter(pk__in=[r.id for r in records]).exists())

    def list(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        """Records ordered by id after ``after``, of ``owner``, in ``state`` at ``now``.

        Raises:
            StorageError: the database failed.
        """
        query = self._objects.all()
        if owner is not None:
            query = query.filter(owner=owner)
        if after is not None:
            query = query.filter(pk__gt=after)
        if state is not None:
            query = query.filter(state_filter(state, to_db(now)))
        with _translated("list"):
            rows = builtins.list(query.order_by("id").values(*COLUMNS)[: max(0, limit)])
        return [row_to_record(row) for row in rows]

    def purge(self, key_id: str, *, notify: str | None = None) -> bool:
        """Delete a record for good.

        Args:
            key_id: The key to delete.
            notify: A PostgreSQL channel to announce the deletion on, in the same
                transaction (for :class:`~apikeys.storage.CachedStore`).

        Returns:
            Whether one existed.

        Raises:
            ConfigurationError: ``notify`` on a database other than PostgreSQL.
            StorageError: the database failed.
        """
        with _translated("purge"), transaction.atomic(using=self.using):
            deleted, _ = self._objects.filter(pk=key_id).delete()
            self._notify(notify, [key_id])
        return bool(deleted)

    def touch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Record a use (``last_used_at``/``last_used_ip``) without a version bump.

        Raises:
            StorageError: the database failed.
        """
        with _translated("touch"):
            self._objects.filter(pk=key_id).update(last_used_at=to_db(at), last_used_ip=ip)

    def close(self) -> None:
        """Close this thread's connection to the database, unless a transaction is
        open on it (Django reopens it on the next query; in a web process Django
        manages connections itself)."""
        connection = connections[self.using]
        if not connection.in_atomic_block:
            connection.close()

    # --- AsyncKeyStore ----------------------------------------------------------------

    async def aget(self, key_id: str) -> KeyRecord | None:
        """Awaitable :meth:`get`."""
        return await sync_to_async(self.get)(key_id)

    async def awrite(
        self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()
    ) -> None:
        """Awaitable :meth:`write`."""
        await sync_to_async(self.write)(insert=insert, update=update)

    async def alist(
        self,
        *,
        owner: str | None = None,
        state: KeyState | None = None,
        now: datetime,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[KeyRecord]:
        """Awaitable :meth:`list`."""
        return await sync_to_async(self.list)(
            owner=owner, state=state, now=now, limit=limit, after=after
        )

    async def apurge(self, key_id: str) -> bool:
        """Awaitable :meth:`purge`."""
        return await sync_to_async(self.purge)(key_id)

    async def atouch(self, key_id: str, *, at: datetime, ip: str | None) -> None:
        """Awaitable :meth:`touch`."""
        await sync_to_async(self.touch)(key_id, at=at, ip=ip)

    async def aclose(self) -> None:
        """Awaitable :meth:`close` (closes the executor thread's connection)."""
        await sync_to_async(self.close)()
