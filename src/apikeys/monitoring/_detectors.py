"""Abuse detectors: small state machines over the event stream.

Each one watches some event types and, when it sees its pattern, returns the
evidence (a JSON-ready dict); :class:`~apikeys.monitoring.Monitor` turns that
into an :class:`~apikeys.events.AnomalyDetected` event and applies the
detector's action. Time is the events' own ``at`` (the manager's clock), so
scripted traffic with a manual clock drives them deterministically.

Detectors keep per-key state in memory, bounded (``max_keys``, least recently
seen dropped first), per process; they are not thread-safe: a Monitor calls
them from its one background thread. :class:`FailedSecretBurst` and
:class:`ManyAddresses` can keep their windows in Redis instead
(``shared=RedisDetectorState(url)``), so a burst spread over processes and hosts
is seen, and one of them fires.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar

from apikeys.errors import ConfigurationError, StorageError
from apikeys.events import AnomalyDetected, Event, KeyExposed, KeyVerified, VerificationFailed
from apikeys.monitoring._detector_state import RedisDetectorState

logger = logging.getLogger("apikeys")
_WARN_EVERY = 10.0

Action = Literal["record", "callback", "suspend"]
"""What a detector's finding leads to, besides the ``AnomalyDetected`` event:
``record`` (the event only), ``callback`` (also call the detector's callback),
``suspend`` (also suspend the key, reversibly, through the manager)."""

ACTIONS: tuple[str, ...] = ("record", "callback", "suspend")
MAX_LISTED = 20  # addresses listed in evidence

S = TypeVar("S")


class _KeyStates(Generic[S]):
    """Per-key state, least recently used dropped beyond ``limit``."""

    __slots__ = ("_items", "_limit")

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[str, S] = OrderedDict()
        self._limit = limit

    def get(self, key_id: str, factory: Callable[[], S]) -> S:
        items = self._items
        state = items.get(key_id)
        if state is None:
            state = items[key_id] = factory()
            if len(items) > self._limit:
                items.popitem(last=False)
        else:
            items.move_to_end(key_id)
        return state

    def __len__(self) -> int:
        return len(self._items)


def _positive(value: timedelta, name: str) -> float:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ConfigurationError(f"{name} must be a positive timedelta")
    return value.total_seconds()


class Detector:
    """The base of every detector: its action, callback and per-key cooldown.

    Args:
        action: ``"record"``, ``"callback"`` or ``"suspend"`` (see :data:`Action`).
        callback: Called with the ``AnomalyDetected`` event (in the monitor's
            background thread); required for ``action="callback"``, optional
            with ``"suspend"``.
        cooldown: After firing for a key, stay quiet for that key this long.
        max_keys: Keys whose state is kept (least recently seen dropped first).
        shared: A :class:`RedisDetectorState`: keep the window in Redis, shared by
            every process and host that passes one on the same Redis (detectors
            with ``shareable = True`` only). The cooldown is shared too: one
            process fires. When Redis fails, the in-process window is used.

    Raises:
        ConfigurationError: an unknown action, ``"callback"`` without a callback,
            a negative cooldown, or ``shared`` on a detector that cannot share.
    """

    name: ClassVar[str] = "detector"
    """The name in ``AnomalyDetected.detector``."""
    watches: ClassVar[tuple[type[Event], ...]] = ()
    """The event classes :meth:`observe` needs to see."""
    shareable: ClassVar[bool] = False
    """Whether the detector can keep its window in Redis (``shared=``)."""

    def __init__(
        self,
        *,
        action: Action = "record",
        callback: Callable[[AnomalyDetected], object] | None = None,
        cooldown: timedelta = timedelta(0),
        max_keys: int = 100_000,
        shared: RedisDetectorState | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ConfigurationError(f"action must be one of {', '.join(ACTIONS)}")
        if action == "callback" and callback is None:
            raise ConfigurationError('action="callback" needs a callback')
        if callback is not None and not callable(callback):
            raise ConfigurationError("callback must be callable")
        if not isinstance(cooldown, timedelta) or cooldown < timedelta(0):
            raise ConfigurationError("cooldown must be a timedelta of zero or more")
        if max_keys < 1:
            raise ConfigurationError("max_keys must be >= 1")
        if shared is not None and not self.shareable:
            raise ConfigurationError(f"{type(self).__name__} keeps its state per process only")
        if shared is not None and not hasattr(shared, "window"):
            raise ConfigurationError("shared must be a RedisDetectorState")
        self.shared = shared
        self._warned_at = -_WARN_EVERY
        self.action: Action = action
        self.callback = callback
        self.cooldown = cooldown
        self.max_keys = max_keys
        self._fired: _KeyStates[list[datetime]] = _KeyStates(max_keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(action={self.action!r})"

    def observe(self, event: Event) -> dict[str, Any] | None:
        """Feed one event; return the evidence if the pattern is seen now.

        Subclasses implement :meth:`_observe`; this adds the cooldown.
        """
        if not isinstance(event, self.watches) or event.key_id is None:
            return None
        evidence = self._observe(event)
        if evidence is None:
            return None
        last = self._fired.get(event.key_id, list)
        if last and event.at - last[0] < self.cooldown:
            return None
        last[:] = [event.at]
        return evidence

    def _observe(self, event: Event) -> dict[str, Any] | None:
        raise NotImplementedError

    def _shared_window(
        self, event: Event, member: str, *, window: float, threshold: int, most: int
    ) -> tuple[int, list[str]] | Literal[False] | None:
        """Feed the shared window: ``(count, recent members)`` when firing, ``None``
        when not, ``False`` when Redis failed (use the in-process window)."""
        if self.shared is None or event.key_id is None:
            return False
        try:
            return self.shared.window(
                self.name,
                event.key_id,
                at_us=int(event.at.timestamp() * 1_000_000),
                window_us=int(window * 1_000_000),
                member=member,
                threshold=threshold,
                cooldown_ms=int(self.cooldown.total_seconds() * 1000),
                most=most,
                listed=MAX_LISTED,
            )
        except StorageError as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY:
                self._warned_at = now
                logger.warning(
                    "apikeys: shared state of detector %s unavailable (%s); "
                    "using this process's window",
                    self.name,
                    exc.message,
                )
            return False


class FailedSecretBurst(Detector):
    """Many wrong secrets presented for one key id in a short window: someone
    holds the id (it is public, in every key) and is guessing, or replays an old
    key.

    Warning:
        Key ids are public, so anyone can trigger this for any key. With
        ``action="suspend"`` an attacker can switch off a key of their choosing;
        prefer ``record`` or ``callback`` (the managers already throttle guessing).

    Args:
        threshold: Failures within ``window`` that fire.
        window: The sliding window.
        codes: Failure codes that count (the default: a wrong secret, and
            attempts refused by the failure throttle).
        **options: ``action``, ``callback``, ``cooldown`` (default: ``window``),
            ``max_keys`` (see :class:`Detector`).

    Raises:
        ConfigurationError: a threshold below 2 or a non-positive window.
    """

    name: ClassVar[str] = "failed_secret_burst"
    watches: ClassVar[tuple[type[Event], ...]] = (VerificationFailed,)
    shareable: ClassVar[bool] = True

    def __init__(
        self,
        *,
        threshold: int = 20,
        window: timedelta = timedelta(minutes=5),
        codes: Collection[str] = ("invalid_secret", "too_many_failures"),
        **options: Any,
    ) -> None:
        options.setdefault("cooldown", window)
        super().__init__(**options)
        if threshold < 2:
            raise ConfigurationError("threshold must be >= 2")
        self.threshold = threshold
        self.window = window
        self._window = _positive(window, "window")
        self.codes = frozenset(codes)
        self._recent: _KeyStates[deque[tuple[datetime, str | None, str]]] = _KeyStates(
            self.max_keys
        )

    def _observe(self, event: Event) -> dict[str, Any] | None:
        if (
            not isinstance(event, VerificationFailed)
            or event.code not in self.codes
            or event.key_id is None
        ):
            return None
        at_us = int(event.at.timestamp() * 1_000_000)
        member = f"{at_us}|{event.code}|{event.ip or ''}|{secrets.token_hex(6)}"
        found = self._shared_window(
            event, member, window=self._window, threshold=self.threshold, most=self.threshold
        )
        if found is None:
            return None
        if found is not False:
            count, members = found
            seen = [m.split("|") for m in members]
            recent_shared = [
                (datetime.fromtimestamp(int(us) / 1e6, event.at.tzinfo), ip or None, code)
                for us, code, ip, _ in seen
            ]
            return self._evidence(count, recent_shared, event.at)
        recent = self._recent.get(event.key_id, lambda: deque(maxlen=self.threshold))
        recent.append((event.at, event.ip, event.code))
        if len(recent) < self.threshold:
            return None
        if (event.at - recent[0][0]).total_seconds() > self._window:
            return None
        return self._evidence(len(recent), list(recent), event.at)

    def _evidence(
        self, failures: int, recent: list[tuple[datetime, str | None, str]], last: datetime
    ) -> dict[str, Any]:
        addresses = sorted({ip for _, ip, _ in recent if ip is not None})
        codes: dict[str, int] = {}
        for _, _, code in recent:
            codes[code] = codes.get(code, 0) + 1
        return {
            "failures": failures,
            "window_seconds": self._window,
            "first_at": min(at for at, _, _ in recent).isoformat(),
            "last_at": last.isoformat(),
            "codes": codes,
            "distinct_addresses": len(addresses),
            "addresses": addresses[:MAX_LISTED],
        }


class PlaintextTransport(Detector):
    """A proven key was sent over plain HTTP to an app with ``require_https``
    (:class:`~apikeys.events.KeyExposed` with reason ``plaintext_transport``):
    anyone on the path could read it. Fires on every such report (the key was
    proven before the report, so ``action="suspend"`` cannot be aimed at someone
    else's key).

    Its options are those of :class:`Detector`: ``action`` (``"record"`` by
    default; ``"suspend"`` takes the key out of service until an operator enables
    or rotates it), ``callback``, ``cooldown``, ``max_keys``.
    """

    name: ClassVar[str] = "plaintext_transport"
    watches: ClassVar[tuple[type[Event], ...]] = (KeyExposed,)

    def _observe(self, event: Event) -> dict[str, Any] | None:
        if not isinstance(event, KeyExposed) or event.reason != "plaintext_transport":
            return None
        return {"reason": event.reason, "ip": event.ip}


class ManyAddresses(Detector):
    """One key used from more distinct client addresses than usual within a short
    window: a key shared widely, leaked into a public repository, or used by a
    botnet.

    Args:
        max_addresses: Distinct addresses within ``window`` that are still normal;
            one more fires.
        window: The sliding window.
        **options: ``action``, ``callback``, ``cooldown`` (default: ``window``),
            ``max_keys`` (see :class:`Detector`).

    Raises:
        ConfigurationError: ``max_addresses`` below 1 or a non-positive window.
    """

    name: ClassVar[str] = "many_addresses"
    watches: ClassVar[tuple[type[Event], ...]] = (KeyVerified,)
    shareable: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_addresses: int = 10,
        window: timedelta = timedelta(minutes=10),
        **options: Any,
    ) -> None:
        options.setdefault("cooldown", window)
        super().__init__(**options)
        if max_addresses < 1:
            raise ConfigurationError("max_addresses must be >= 1")
        self.max_addresses = max_addresses
        self.window = window
        self._window = _positive(window, "window")
        self._seen: _KeyStates[OrderedDict[str, datetime]] = _KeyStates(self.max_keys)

    def _observe(self, event: Event) -> dict[str, Any] | None:
        if not isinstance(event, KeyVerified) or event.ip is None or event.key_id is None:
            return None
        found = self._shared_window(
            event,
            event.ip,
            window=self._window,
            threshold=self.max_addresses + 1,
            most=4 * self.max_addresses + 64,
        )
        if found is None:
            return None
        if found is not False:
            count, members = found
            return self._evidence(count, list(reversed(members)))
        seen = self._seen.get(event.key_id, OrderedDict)
        seen[event.ip] = event.at
        seen.move_to_end(event.ip)
        while seen:
            oldest_ip, oldest_at = next(iter(seen.items()))
            if (event.at - oldest_at).total_seconds() <= self._window:
                break
            del seen[oldest_ip]
        while len(seen) > 4 * self.max_addresses + 64:  # bound memory under a flood
            seen.popitem(last=False)
        if len(seen) <= self.max_addresses:
            return None
        return self._evidence(len(seen), list(reversed(seen)))

    def _evidence(self, distinct: int, recent: list[str]) -> dict[str, Any]:
        return {
            "distinct_addresses": distinct,
            "max_addresses": self.max_addresses,
            "window_seconds": self._window,
            "addresses": recent[:MAX_LISTED],
        }


class NewNetwork(Detector):
    """A key, once its usual networks are learnt, used from a network it was never
    used from (IPv4 /24, IPv6 /48 by default): a stolen key tends to show up from
    somewhere new.

    A key learns while it is younger (in this process's view) than ``learning``
    *or* has made fewer than ``min_requests`` requests; networks seen then are
    known. Afterwards each new network fires once and then counts as known.
    A key seen from more than ``max_networks`` networks is clearly used
    everywhere; it stops firing.

    Args:
        ipv4_prefix: Prefix length grouping IPv4 addresses into networks.
        ipv6_prefix: Prefix length grouping IPv6 addresses into networks.
        learning: How long a key learns its networks, from its first request seen.
        min_requests: Requests a key must have made before it stops learning.
        max_networks: Networks remembered per key.
        **options: ``action``, ``callback``, ``cooldown`` (default: 0),
            ``max_keys`` (see :class:`Detector`).

    Raises:
        ConfigurationError: a prefix length out of range, or a negative setting.
    """

    name: ClassVar[str] = "new_network"
    watches: ClassVar[tuple[type[Event], ...]] = (KeyVerified,)

    def __init__(
        self,
        *,
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 48,
        learning: timedelta = timedelta(days=1),
        min_requests: int = 20,
        max_networks: int = 256,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
            raise ConfigurationError("ipv4_prefix must be 0-32 and ipv6_prefix 0-128")
        if min_requests < 0 or max_networks < 1:
            raise ConfigurationError("min_requests must be >= 0 and max_networks >= 1")
        if not isinstance(learning, timedelta) or learning < timedelta(0):
            raise ConfigurationError("learning must be a timedelta of zero or more")
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.learning = learning
        self.min_requests = min_requests
        self.max_networks = max_networks
        self._keys: _KeyStates[_Networks] = _KeyStates(self.max_keys)

    def network_of(self, ip: str) -> str | None:
        """The network (``"203.0.113.0/24"``) an address belongs to, or ``None``."""
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        prefix = self.ipv4_prefix if address.version == 4 else self.ipv6_prefix
        return str(ipaddress.ip_network((address, prefix), strict=False))

    def _observe(self, event: Event) -> dict[str, Any] | None:
        if not isinstance(event, KeyVerified) or event.ip is None or event.key_id is None:
            return None
        network = self.network_of(event.ip)
        if network is None:
            return None
        state = self._keys.get(event.key_id, lambda: _Networks(event.at))
        state.requests += 1
        if network in state.known:
            return None
        if state.requests <= self.min_requests or event.at - state.since < self.learning:
            if len(state.known) < self.max_networks:
                state.known.add(network)
            return None
        if len(state.known) >= self.max_networks:
            return None
        state.known.add(network)
        return {
            "network": network,
            "address": event.ip,
            "known_networks": len(state.known) - 1,
            "learning_since": state.since.isoformat(),
        }


class _Networks:
    __slots__ = ("known", "requests", "since")

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.requests = 0
        self.known: set[str] = set()


class TrafficSpike(Detector):
    """A key making far more requests in a window than its own baseline (an
    exponentially weighted mean of its past windows, empty ones included).

    Keys are judged against themselves: a key that always makes 5,000 requests a
    minute is quiet at 5,000; one that makes 5 fires at ``factor`` times 5 (and at
    least ``min_requests``). A key needs ``min_history`` windows of history
    before it can fire.

    Args:
        factor: How many times its baseline a window must reach.
        window: The window (counted from the epoch, like usage buckets).
        baseline_windows: The span, in windows, of the weighted mean.
        min_history: Windows of history needed before firing.
        min_requests: Requests a window must reach whatever the baseline.
        **options: ``action``, ``callback``, ``cooldown`` (default: ``window``),
            ``max_keys`` (see :class:`Detector`).

    Raises:
        ConfigurationError: a factor not above 1, or a setting below 1.
    """

    name: ClassVar[str] = "traffic_spike"
    watches: ClassVar[tuple[type[Event], ...]] = (KeyVerified,)

    def __init__(
        self,
        *,
        factor: float = 10.0,
        window: timedelta = timedelta(minutes=1),
        baseline_windows: int = 60,
        min_history: int = 30,
        min_requests: int = 50,
        **options: Any,
    ) -> None:
        options.setdefault("cooldown", window)
        super().__init__(**options)
        if factor <= 1 or baseline_windows < 1 or min_history < 1 or min_requests < 1:
            raise ConfigurationError(
                "factor must be > 1; baseline_windows, min_history, min_requests >= 1"
            )
        self.factor = float(factor)
        self.window = window
        self._window = _positive(window, "window")
        self.baseline_windows = baseline_windows
        self.min_history = min_history
        self.min_requests = min_requests
        self._alpha = 2.0 / (baseline_windows + 1)
        self._keys: _KeyStates[_Traffic] = _KeyStates(self.max_keys)

    def _observe(self, event: Event) -> dict[str, Any] | None:
        if event.key_id is None:
            return None
        bucket = int(event.at.timestamp() // self._window)
        state = self._keys.get(event.key_id, lambda: _Traffic(bucket))
        if bucket > state.bucket:
            state.close(bucket, self._alpha)
        state.count += 1
        if state.windows < self.min_history or state.fired == state.bucket:
            return None
        baseline = state.baseline()
        # Whole requests; the epsilon keeps float noise (5.0000001 x 10) from adding one.
        threshold = max(self.min_requests, math.ceil(self.factor * baseline - 1e-6))
        if state.count < threshold:
            return None
        state.fired = state.bucket
        return {
            "requests": state.count,
            "window_seconds": self._window,
            "baseline": round(baseline, 3),
            "factor": self.factor,
            "threshold": threshold,
        }


class _Traffic:
    __slots__ = ("bucket", "count", "fired", "mean", "weight", "windows")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.count = 0
        self.mean = 0.0  # weighted mean before bias correction
        self.weight = 0.0  # total weight, to correct the zero start
        self.windows = 0
        self.fired = -1

    def close(self, bucket: int, alpha: float) -> None:
        """Fold the current window, and the empty ones up to ``bucket``, into the mean."""
        self.mean = alpha * self.count + (1 - alpha) * self.mean
        self.weight = alpha + (1 - alpha) * self.weight
        empty = bucket - self.bucket - 1
        if empty > 0:
            decay = (1 - alpha) ** empty
            self.mean *= decay
            self.weight = 1 - decay * (1 - self.weight)
        self.windows += bucket - self.bucket
        self.bucket = bucket
        self.count = 0

    def baseline(self) -> float:
        return self.mean / self.weight if self.weight > 0 else 0.0
