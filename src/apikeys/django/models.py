"""The key table: one row per key, holding the hash of its secret, never the secret.

Its columns mirror :data:`apikeys._models.COLUMNS`, the schema every SQL store
shares. Write to it through :func:`apikeys.django.get_manager` (or
:class:`~apikeys.django.store.DjangoStore`), never with ``save()``: the managers
version-check every write, keep the audit fields and emit events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models

from apikeys._models import COLUMNS, APIKey, KeyState, row_to_record

__all__ = ["APIKeyRecord"]

if TYPE_CHECKING:  # django-stubs' generic fields (not subscriptable at run time)
    _Str = models.CharField[str, str]
    _OptStr = models.CharField[str | None, str | None]
    _Text = models.TextField[str, str]
    _OptText = models.TextField[str | None, str | None]
    _Time = models.DateTimeField[datetime, datetime]
    _OptTime = models.DateTimeField[datetime | None, datetime | None]
    _Json = models.JSONField[Any, Any]
    _Int = models.PositiveIntegerField[int, int]


class APIKeyRecord(models.Model):
    """One API key (the hash of its secret, its owner, scopes and audit trail)."""

    id: _Str = models.CharField("key id", primary_key=True, max_length=64, editable=False)
    prefix: _Str = models.CharField(max_length=32)
    owner: _Str = models.CharField(max_length=200, db_index=True)
    name: _OptStr = models.CharField(max_length=200, null=True, blank=True)
    scopes: _Json = models.JSONField(default=list)
    secret_hash: _Text = models.TextField(editable=False)
    created_at: _Time = models.DateTimeField()
    expires_at: _OptTime = models.DateTimeField(null=True, blank=True)
    revoked_at: _OptTime = models.DateTimeField(null=True, blank=True)
    revoke_reason: _OptText = models.TextField(null=True, blank=True)
    disabled_at: _OptTime = models.DateTimeField(null=True, blank=True)
    disabled_reason: _OptText = models.TextField(null=True, blank=True)
    last_used_at: _OptTime = models.DateTimeField(null=True, blank=True)
    last_used_ip: _OptStr = models.CharField("last used from", max_length=64, null=True, blank=True)
    allowed_ips: _Json = models.JSONField("allowed addresses", default=list)
    metadata: _Json = models.JSONField(default=dict)
    replaced_by: _OptStr = models.CharField(max_length=64, null=True, blank=True)
    replaces: _OptStr = models.CharField(max_length=64, null=True, blank=True)
    rate_limits: _Json = models.JSONField(default=list)
    quota: _OptStr = models.CharField(max_length=64, null=True, blank=True)
    version: _Int = models.PositiveIntegerField(default=1)

    objects: ClassVar[models.Manager[APIKeyRecord]] = models.Manager()

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        ordering: ClassVar[list[str]] = ["id"]

    def __str__(self) -> str:
        label = f"{self.prefix}_{self.id}…"
        return f"{label} ({self.name})" if self.name else label

    def to_key(self) -> APIKey:
        """This row as the :class:`~apikeys.APIKey` a handler sees (no hash)."""
        return row_to_record({name: getattr(self, name) for name in COLUMNS}).key

    def state(self, now: datetime) -> KeyState:
        """The key's state at ``now``."""
        return self.to_key().state(now)
