"""How fast the dashboard's pages render with 100,000 keys and a year of hourly
counts, and what the metrics wrappers cost a verification.

Data (SQLite files in a temporary folder, built once per run):

- 100,000 keys in a :class:`~apikeys.storage.SQLiteStore`;
- a year of hourly and daily counters for the 200 busiest keys (a 200 and,
  every tenth hour, a 404 on one route): about 1.9 million hour rows plus the
  day rows, in a :class:`~apikeys.monitoring.SQLiteUsageStore`;
- 20,000 audit entries (failures, lifecycle events).

Each page is rendered by the framework-free core (``Dashboard.handle``), so the
figures are the dashboard's own work, without HTTP. Cases run interleaved in
rounds. The metrics rows time ``verify`` of a warm key (HMAC hasher, memory
store) bare, wrapped by :class:`~apikeys.metrics.PrometheusMetrics`, and wrapped
by :class:`~apikeys.metrics.OpenTelemetryTracing` with the API's no-op tracer.

Run: ``nox -s bench -- dashboard`` (or ``python benchmarks/bench_dashboard.py``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import interleaved, table

from apikeys import KeyManager, _keyformat
from apikeys._models import APIKey, KeyRecord
from apikeys.dashboard import Dashboard, DashboardRequest
from apikeys.events import KeyCreated, VerificationFailed
from apikeys.hashing import HmacHasher
from apikeys.monitoring import Monitor, SQLiteAuditStore, SQLiteUsageStore
from apikeys.monitoring._usage import CounterRow
from apikeys.storage import MemoryStore, SQLiteStore

KEYS = 100_000
BUSY = 200
HOURS = 365 * 24
COMMAND = "nox -s bench -- dashboard"


def build(folder: Path, now: datetime) -> tuple[KeyManager, Monitor, list[str]]:
    hasher = HmacHasher([b"bench-pepper-bench-pepper-bench!"])
    manager = KeyManager(SQLiteStore(str(folder / "keys.db")), prefix="acme", hasher=hasher)
    ids: list[str] = []
    batch: list[KeyRecord] = []
    for i in range(KEYS):
        parts, _ = _keyformat.generate("acme")
        created = now - timedelta(days=400) + timedelta(seconds=i)
        key = APIKey(
            id=parts.key_id,
            prefix="acme",
            owner=f"team-{i % 1000}",
            name=f"key {i}",
            scopes=("orders:read",),
            created_at=created,
            expires_at=None if i % 3 else now + timedelta(days=i % 60),
        )
        batch.append(KeyRecord(key, hasher.hash(parts.secret)))
        ids.append(parts.key_id)
        if len(batch) == 5000:
            manager.store.write(insert=batch)
            batch = []
    usage = SQLiteUsageStore(folder / "monitoring.db")
    start = int(now.timestamp()) // 3600 * 3600 - HOURS * 3600
    for key_id in ids[:BUSY]:
        rows: list[CounterRow] = []
        days: dict[tuple[int, int], int] = {}
        for h in range(HOURS):
            bucket = start + h * 3600
            rows.append(CounterRow(key_id, 3600, bucket, "GET", "/orders/{id}", 200, 30))
            days[(bucket - bucket % 86_400, 200)] = (
                days.get((bucket - bucket % 86_400, 200), 0) + 30
            )
            if h % 10 == 0:
                rows.append(CounterRow(key_id, 3600, bucket, "GET", "/orders/{id}", 404, 2))
                day = (bucket - bucket % 86_400, 404)
                days[day] = days.get(day, 0) + 2
        rows += [
            CounterRow(key_id, 86_400, d, "GET", "/orders/{id}", s, n) for (d, s), n in days.items()
        ]
        usage.add(rows, [])
    audit = SQLiteAuditStore(folder / "monitoring.db")
    events = []
    for i in range(20_000):
        at = now - timedelta(minutes=i)
        if i % 4:
            events.append(VerificationFailed(at=at, key_id=ids[i % BUSY], code="invalid_secret"))
        else:
            events.append(KeyCreated(at=at, key_id=ids[i], owner="team-1"))
    audit.emit_batch(events[::-1])
    monitor = Monitor(manager, usage_store=usage, audit_store=audit)
    return manager, monitor, ids


def pages(monitor: Monitor, ids: list[str]) -> str:
    dashboard = Dashboard(monitor, authorize=lambda request: "bench")

    def page(path: str, **query: str) -> object:
        request = DashboardRequest("GET", path, query=query)
        return lambda: dashboard.handle(request).status

    busy = ids[0]
    cases = {
        "overview, 24h (hour buckets)": page("/", period="24h"),
        "overview, 7d (hour buckets)": page("/", period="7d"),
        "overview, 365d (day buckets)": page("/", period="365d"),
        "keys list, first page": page("/keys"),
        "keys list, one owner": page("/keys", owner="team-7"),
        "keys list, search by name (scans 2,000)": page("/keys", q="key 99999"),
        "one key, 24h": page(f"/keys/{busy}", period="24h"),
        "one key, 365d": page(f"/keys/{busy}", period="365d"),
        "review, first 250 keys": page("/review"),
    }
    results = interleaved(cases, rounds=5, per_round=4, warmup=2)  # type: ignore[arg-type]
    return table(
        f"Dashboard pages: {KEYS:,} keys, a year of hourly counts for {BUSY} keys (SQLite)",
        results,
        command=COMMAND,
    )


def metrics() -> str:
    from prometheus_client import CollectorRegistry

    from apikeys.metrics import OpenTelemetryTracing, PrometheusMetrics

    hasher = HmacHasher([b"bench-pepper-bench-pepper-bench!"])
    store = MemoryStore()
    bare = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    prom = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    otel = KeyManager(store, prefix="acme", hasher=hasher, failure_limit=0)
    PrometheusMetrics(CollectorRegistry()).instrument(prom)
    OpenTelemetryTracing().instrument(otel)
    raw = bare.create(owner="bench").plaintext

    def call(manager: KeyManager) -> object:
        def run() -> int:
            manager.verify(raw)
            return 200

        return run

    results = interleaved(
        {  # type: ignore[arg-type]
            "verify, bare": call(bare),
            "verify, PrometheusMetrics": call(prom),
            "verify, OpenTelemetryTracing (no-op tracer)": call(otel),
        },
        rounds=7,
        per_round=3000,
        warmup=500,
    )
    base = results[0].median_ns
    lines = [
        table("Metrics: cost per verification (MemoryStore, warm key)", results, command=COMMAND)
    ]
    lines += ["| case | median vs bare |", "|---|---:|"]
    lines += [f"| {r.name} | {r.median_ns / base:.2f}x |" for r in results[1:]]
    return "\n".join(lines) + "\n"


def main() -> None:
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        manager, monitor, ids = build(Path(folder), now)
        print(f"(data built in {time.perf_counter() - started:.0f} s)\n", file=sys.stderr)
        print(pages(monitor, ids))
        monitor.close()
        manager.close()
    print(metrics())


if __name__ == "__main__":
    main()
