"""Run as a script by the cross-process test: reports requests of one key through
``KeyManager.record_request`` from several threads, into Redis, then exits.

Arguments: redis_url namespace key_json instant_iso threads requests_per_thread
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime

from apikeys import APIKey
from apikeys.monitoring import Monitor, RedisUsageStore
from apikeys.testing import ManualClock, make_manager

ROUTES = [("GET", "/orders/{id}", 200), ("POST", "/orders", 201), ("GET", "/orders/{id}", 404)]


def main() -> None:
    url, namespace, key_json, instant, threads, per_thread = sys.argv[1:7]
    key = APIKey.model_validate_json(key_json)
    manager = make_manager("acme", clock=ManualClock(datetime.fromisoformat(instant)))
    monitor = Monitor(manager, usage_store=RedisUsageStore(url, namespace=namespace))
    gate = threading.Barrier(int(threads))

    def work(slot: int) -> None:
        gate.wait()
        for i in range(int(per_thread)):
            method, route, status = ROUTES[i % len(ROUTES)]
            manager.record_request(
                key, method=method, route=route, status=status, ip=f"10.0.{slot}.{i % 7}"
            )

    workers = [threading.Thread(target=work, args=(n,)) for n in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    monitor.close()
    sys.stdout.write(f"dropped={monitor.dropped}\n")


if __name__ == "__main__":
    main()
