"""One of two processes racing on the same keys (run by test_concurrency.py).

Reads key ids from stdin, one per line; for each it rotates and revokes that key
(in an order set by the round and the worker number) and answers with one JSON
line: the successor it created (id and plaintext), the error codes it met and
how many of its writes the database refused as stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import timedelta

from apikeys import APIKeyError, ConflictError, KeyManager, KeyRecord
from apikeys.storage import SQLAlchemyStore
from apikeys.testing import test_hasher


class CountingStore(SQLAlchemyStore):
    """Counts the writes the database refused as stale (the version check at work)."""

    refused = 0

    def write(self, *, insert: Sequence[KeyRecord] = (), update: Sequence[KeyRecord] = ()) -> None:
        try:
            super().write(insert=insert, update=update)
        except ConflictError:
            self.refused += 1
            raise


def main() -> None:
    url, worker = sys.argv[1], int(sys.argv[2])
    store = CountingStore(url)
    keys = KeyManager(store, prefix="acme", hasher=test_hasher(), cache_size=0)
    print("ready", flush=True)
    for n, line in enumerate(sys.stdin):
        key_id = line.strip()
        result: dict[str, object] = {"successor": None, "errors": [], "refused": 0}
        refused_before = store.refused
        rotate_first = (n + worker) % 3 != 0
        steps = ("rotate", "revoke") if rotate_first else ("revoke", "rotate")
        for step in steps:
            try:
                if step == "rotate":
                    issued = keys.rotate(key_id, grace=timedelta(minutes=5))
                    result["successor"] = [issued.key.id, issued.plaintext]
                else:
                    keys.revoke(key_id, reason=f"worker {worker}")
            except APIKeyError as exc:
                result["errors"].append(f"{step}:{exc.code}")  # type: ignore[union-attr]
        result["refused"] = store.refused - refused_before
        print(json.dumps(result), flush=True)
    keys.close()


if __name__ == "__main__":
    main()
