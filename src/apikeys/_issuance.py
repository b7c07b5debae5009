"""The issuance policy: rules a manager enforces when it issues a key (pure, no I/O).

The managers call :meth:`IssuancePolicy.check_expiry` for every key they issue
(``create`` and the successor of ``rotate``) and, in ``create`` only,
:meth:`IssuancePolicy.check_live_keys` with the owner's count of live keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apikeys._models import KeyState
from apikeys.errors import ConfigurationError, InvalidArgument

LIVE_STATES: tuple[KeyState, ...] = (KeyState.ACTIVE, KeyState.DISABLED)
"""States that count as live for :attr:`IssuancePolicy.max_live_keys_per_owner`:
a suspended key can be enabled again, so it still counts."""


@dataclass(frozen=True, slots=True)
class IssuancePolicy:
    """What every key issued by a manager must satisfy.

    Pass it as ``KeyManager(..., issuance=IssuancePolicy(...))`` (or to
    ``AsyncKeyManager``); a ``create`` or ``rotate`` that breaks it raises
    :class:`~apikeys.errors.InvalidArgument` naming the rule, before anything is
    written.

    Attributes:
        require_expiry: Every new key must expire (``expires_in``/``expires_at``).
        max_lifetime: The longest lifetime a new key may have. With
            ``require_expiry=False``, a key without expiry is still allowed.
        max_live_keys_per_owner: How many live (active or suspended) keys one
            owner may hold; ``create`` beyond it is refused. Rotation is exempt
            (it replaces a key). The count is read before the insert, so creates
            racing for one owner may overshoot by the number of racers.

    Raises:
        ConfigurationError: a non-positive lifetime or count (counts up to 10000).
    """

    require_expiry: bool = False
    max_lifetime: timedelta | None = None
    max_live_keys_per_owner: int | None = None

    def __post_init__(self) -> None:
        if self.max_lifetime is not None and (
            not isinstance(self.max_lifetime, timedelta) or self.max_lifetime <= timedelta(0)
        ):
            raise ConfigurationError("max_lifetime must be a positive timedelta or None")
        cap = self.max_live_keys_per_owner
        if cap is not None and (
            isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 10_000
        ):
            raise ConfigurationError("max_live_keys_per_owner must be between 1 and 10000")

    def check_expiry(self, now: datetime, expires_at: datetime | None) -> None:
        """Raise unless a key issued at ``now`` expiring at ``expires_at`` is allowed.

        Raises:
            InvalidArgument: no expiry although one is required, or a lifetime
                longer than ``max_lifetime``.
        """
        if expires_at is None:
            if self.require_expiry:
                raise InvalidArgument(
                    "the issuance policy requires an expiry: pass expires_in or expires_at"
                )
            return
        if self.max_lifetime is not None and expires_at - now > self.max_lifetime:
            raise InvalidArgument(
                f"the issuance policy caps a key's lifetime at {self.max_lifetime}; "
                f"asked for {expires_at - now}"
            )

    def check_live_keys(self, owner: str, live: int) -> None:
        """Raise if ``owner``, holding ``live`` live keys, may not get another.

        Raises:
            InvalidArgument: the owner already holds ``max_live_keys_per_owner``.
        """
        cap = self.max_live_keys_per_owner
        if cap is not None and live >= cap:
            raise InvalidArgument(
                f"owner {owner!r} already holds {live} live keys, the most the issuance "
                f"policy allows ({cap}); revoke one first"
            )
