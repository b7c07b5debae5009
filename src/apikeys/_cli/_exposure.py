"""Whether a found key still works: its state in the store, once its secret is
proven against the stored hash (the id alone proves nothing: ids are public)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from apikeys._keyformat import ParsedKey
from apikeys._manager import KeyManager
from apikeys._models import APIKey, KeyState


class Exposure(str, enum.Enum):
    """What a found key is, according to the store."""

    LIVE = "live"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNKNOWN = "unknown"

    @property
    def dangerous(self) -> bool:
        """Whether the key works now or can be made to work again (``enable``, or an
        ``update`` of its expiry). Only revocation is final."""
        return self in (Exposure.LIVE, Exposure.SUSPENDED, Exposure.EXPIRED)


_FROM_STATE = {
    KeyState.ACTIVE: Exposure.LIVE,
    KeyState.DISABLED: Exposure.SUSPENDED,
    KeyState.EXPIRED: Exposure.EXPIRED,
    KeyState.REVOKED: Exposure.REVOKED,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The store's answer for one found key.

    Attributes:
        exposure: What the key is.
        reason: Why an ``unknown`` key is unknown (``not_found``,
            ``secret_mismatch``, ``unsupported_hash``); ``None`` otherwise.
        key: The stored record, when the secret matched.
    """

    exposure: Exposure
    reason: str | None = None
    key: APIKey | None = None


def classify(manager: KeyManager, parsed: ParsedKey, now: datetime) -> Verdict:
    """Look a found key up and prove its secret, without side effects (no usage
    recorded, no re-hash written, no failure counted).

    Raises:
        StorageError: the store failed.
    """
    record = manager.store.get(parsed.key_id)
    if record is None:
        return Verdict(Exposure.UNKNOWN, "not_found")
    if not manager.hasher.supports(record.secret_hash):
        return Verdict(Exposure.UNKNOWN, "unsupported_hash")
    if not manager.hasher.verify(record.secret_hash, parsed.secret):
        return Verdict(Exposure.UNKNOWN, "secret_mismatch")
    return Verdict(_FROM_STATE[record.key.state(now)], None, record.key)


REASON_TEXT = {
    "not_found": "not in the store",
    "secret_mismatch": "the id exists but the secret does not match",
    "unsupported_hash": "stored hash not checkable with this hasher (see APIKEYS_HASHER)",
}


class Classifier:
    """:func:`classify` with a memory, so a key found in many places is hashed once."""

    def __init__(self, manager: KeyManager, now: datetime) -> None:
        self._manager = manager
        self._now = now
        self._seen: dict[tuple[str, str], Verdict] = {}

    def __call__(self, parsed: ParsedKey) -> Verdict:
        marker = (parsed.key_id, parsed.secret)
        verdict = self._seen.get(marker)
        if verdict is None:
            verdict = self._seen[marker] = classify(self._manager, parsed, self._now)
        return verdict
