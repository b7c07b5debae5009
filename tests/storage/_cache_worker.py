"""A second process verifying keys through its own CachedStore (run by
test_cached_store.py).

argv: database URL, invalidation URL, channel, cache name (the listener's
PostgreSQL application_name). Prints ``ready`` once its channel is live. Then,
for each plaintext key read from stdin: verifies it until it gets one accept
(so the record is cached), prints ``warm``, and keeps verifying until refused;
then prints one JSON line: ``last_accept`` (monotonic start of the last
accepted verify) and ``refused`` (monotonic end of the first refused one).
CLOCK_MONOTONIC is one clock for every process of the machine.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

from apikeys import AuthenticationError, KeyManager
from apikeys.hashing import HmacHasher
from apikeys.storage import CachedStore, SQLAlchemyStore

PEPPER = b"cache-worker-pepper-0123456789abcdef"


def main() -> None:
    url, invalidation, channel, name = sys.argv[1:5]
    store = CachedStore(
        SQLAlchemyStore(url),
        invalidation=invalidation,
        channel=channel,
        name=name,
        max_staleness=timedelta(milliseconds=100),
    )
    keys = KeyManager(store, prefix="acme", hasher=HmacHasher([PEPPER]), touch_interval=None)
    deadline = time.monotonic() + 10
    while not store.live and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    clock = time.monotonic
    for line in sys.stdin:
        plaintext = line.strip()
        keys.verify(plaintext)
        print("warm", flush=True)
        last_accept = clock()
        while True:
            start = clock()
            try:
                keys.verify(plaintext)
            except AuthenticationError:
                refused = clock()
                break
            last_accept = start
        print(json.dumps({"last_accept": last_accept, "refused": refused}), flush=True)
    keys.close()


if __name__ == "__main__":
    main()
