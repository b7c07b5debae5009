"""What monitoring costs a request (issue 9's target: at most 20 % on the memory store).

One request = what an adapter does: ``KeyManager.verify`` (warm key) then
``record_request``. Three managers share one MemoryStore and one key:

- off: no event sink (``record_request`` does nothing);
- events + usage: a :class:`~apikeys.monitoring.Monitor` with the memory audit
  and usage stores (events queued for the background thread, requests counted);
- + detectors: the same with the four detectors watching every verification.

The cases are measured in interleaved rounds in one process, so machine noise
hits them alike; the background thread runs (and competes for the GIL) while
the request path is timed.

Run: ``nox -s bench -- monitoring`` (or ``python benchmarks/bench_monitoring.py``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, table

from apikeys import KeyManager
from apikeys.hashing import HmacHasher
from apikeys.monitoring import (
    FailedSecretBurst,
    ManyAddresses,
    Monitor,
    NewNetwork,
    TrafficSpike,
)
from apikeys.storage import MemoryStore

ROUNDS = 7
SAMPLES = 4_000
BATCH = 5


def _samples(fn: Callable[[], object], n: int, batch: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        for _ in range(batch):
            fn()
        out.append((clock() - start) / batch)
    return out


def _result(name: str, samples: list[float]) -> Result:
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Result(name, len(samples), statistics.median(samples), p99)


def main() -> None:
    store = MemoryStore()
    hasher = HmacHasher([b"bench-pepper-bench-pepper-bench!"])
    plain = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    monitored = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    detected = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    monitors = [
        Monitor(monitored),
        Monitor(
            detected,
            detectors=[FailedSecretBurst(), ManyAddresses(), NewNetwork(), TrafficSpike()],
        ),
    ]
    raw = plain.create(owner="bench", scopes=["orders:read"]).plaintext

    def verify(manager: KeyManager) -> Callable[[], None]:
        def call() -> None:
            manager.verify(raw, scopes=["orders:read"], ip="10.0.0.7")

        return call

    def request(manager: KeyManager) -> Callable[[], None]:
        def call() -> None:
            key = manager.verify(raw, scopes=["orders:read"], ip="10.0.0.7")
            manager.record_request(
                key, method="GET", route="/orders/{id}", status=200, ip="10.0.0.7"
            )

        return call

    groups = {
        "verify": {
            "verify, monitoring off": verify(plain),
            "verify, events + usage on": verify(monitored),
            "verify, events + usage + 4 detectors": verify(detected),
        },
        "request": {
            "verify + record_request, monitoring off": request(plain),
            "verify + record_request, events + usage on": request(monitored),
            "verify + record_request, events + usage + 4 detectors": request(detected),
        },
    }
    out = []
    for title, cases in groups.items():
        for fn in cases.values():
            for _ in range(500):
                fn()
        pooled: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for name, fn in cases.items():
                pooled[name] += _samples(fn, SAMPLES, BATCH)
        results = [_result(name, samples) for name, samples in pooled.items()]
        out.append(
            table(
                f"Monitoring: {title} on MemoryStore", results, command="nox -s bench -- monitoring"
            )
        )
        out.append(_overheads(results))
    for monitor in monitors:
        monitor.flush()
    dropped = sum(m.dropped for m in monitors)
    out.append(f"Events dropped by the monitors' queues during the run: {dropped}.")
    print("\n".join(out))
    for monitor in monitors:
        monitor.close()


def _overheads(results: list[Result]) -> str:
    base = results[0]
    lines = ["| case | median overhead vs off | p99 overhead vs off |", "|---|---:|---:|"]
    for r in results[1:]:
        lines.append(
            f"| {r.name} | {100 * (r.median_ns / base.median_ns - 1):+.1f} % | "
            f"{100 * (r.p99_ns / base.p99_ns - 1):+.1f} % |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
