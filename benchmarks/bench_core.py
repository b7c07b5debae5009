"""Core verification cost on the memory store (issue 2's targets).

Cases: warm valid key (cached digest, no Argon2), first (cold) verify with the
default Argon2id profile, malformed key, unknown key id, wrong secret (cached key,
rejected without Argon2) — all through ``KeyManager.verify``.

Run: ``nox -s bench -- core`` (or ``python benchmarks/bench_core.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, measure, table

from apikeys import APIKeyError, KeyManager
from apikeys._keyformat import format_key, new_key_id, parse_or_none, random_base62
from apikeys.hashing import Argon2Hasher
from apikeys.storage import MemoryStore


def _failing(fn: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        try:
            fn()
        except APIKeyError:
            return
        raise AssertionError("expected a failure")

    return call


def main() -> None:
    keys = KeyManager(MemoryStore(), prefix="acme", failure_limit=0)
    issued = keys.create(owner="bench", scopes=["orders:read"])
    raw = issued.plaintext
    keys.verify(raw)
    malformed = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    unknown = format_key("acme", new_key_id(), random_base62(32))
    wrong = format_key("acme", issued.key.id, random_base62(32))

    cold_keys = [keys.create(owner="bench").plaintext for _ in range(300)]
    cold_iter = iter(cold_keys)

    results: list[Result] = [
        measure("warm verify (valid key)", lambda: keys.verify(raw), n=20_000, batch=5),
        measure(
            "warm verify with scope",
            lambda: keys.verify(raw, scopes=["orders:read"]),
            n=20_000,
            batch=5,
        ),
        measure(
            "cold verify (first, Argon2id default)",
            lambda: keys.verify(next(cold_iter)),
            n=250,
            warmup=10,
        ),
        measure(
            "malformed key (bad checksum)",
            _failing(lambda: keys.verify(malformed)),
            n=20_000,
            batch=5,
        ),
        measure(
            "format check alone (parse_or_none, bad checksum)",
            lambda: parse_or_none(malformed, keys.prefixes),
            n=20_000,
            batch=5,
        ),
        measure("unknown key id", _failing(lambda: keys.verify(unknown)), n=20_000, batch=5),
        measure(
            "wrong secret (cached key id)", _failing(lambda: keys.verify(wrong)), n=20_000, batch=5
        ),
    ]
    hasher = Argon2Hasher()
    stored = hasher.hash("x" * 32)
    results.append(
        measure(
            "Argon2id hash check alone", lambda: hasher.verify(stored, "x" * 32), n=200, warmup=5
        )
    )
    print(table("Core: KeyManager.verify on MemoryStore", results, command="nox -s bench -- core"))


if __name__ == "__main__":
    main()
