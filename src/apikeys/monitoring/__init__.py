"""Know how every key is used: event sinks, the audit trail, usage counters, abuse
detectors, compromise response and key hygiene (see ``docs/monitoring.md``).

Quick start::

    from apikeys import KeyManager
    from apikeys.monitoring import FailedSecretBurst, Monitor, NewNetwork, TrafficSpike

    keys = KeyManager(store, prefix="acme")
    monitor = Monitor(keys, detectors=[FailedSecretBurst(), NewNetwork(), TrafficSpike()])
    ...
    monitor.usage(key_id, by=("route", "status"))   # requests per route and status
    monitor.audit(owner="team-42")                  # the owner's audit trail
    monitor.respond_to_compromise(key_id)           # revoke, replace, report
    monitor.review()                                # stale, eternal, old or broad keys

Importing this module loads no database or Redis driver: the SQL and Redis stores
import theirs when made.
"""

from __future__ import annotations

from apikeys._issuance import IssuancePolicy
from apikeys.monitoring._async_monitor import AsyncMonitor
from apikeys.monitoring._audit import AuditEntry, AuditStore, MemoryAuditStore
from apikeys.monitoring._detector_state import RedisDetectorState
from apikeys.monitoring._detectors import (
    Action,
    Detector,
    FailedSecretBurst,
    ManyAddresses,
    NewNetwork,
    PlaintextTransport,
    TrafficSpike,
)
from apikeys.monitoring._monitor import Monitor
from apikeys.monitoring._monitor_base import DEFAULT_AUDIT_TYPES, MonitorBase
from apikeys.monitoring._redis import RedisUsageStore
from apikeys.monitoring._review import ActivityReport, CompromiseReport, ReviewFinding
from apikeys.monitoring._sinks import BufferedSink, CallbackSink, LoggingSink
from apikeys.monitoring._sqlalchemy import SQLAlchemyAuditStore, SQLAlchemyUsageStore
from apikeys.monitoring._sqlite import SQLiteAuditStore, SQLiteUsageStore
from apikeys.monitoring._urls import audit_store_from_url, usage_store_from_url
from apikeys.monitoring._usage import (
    OTHER,
    AddressActivity,
    AddressRow,
    CounterRow,
    MemoryUsageStore,
    UsageRecorder,
    UsageReport,
    UsageStore,
)

__all__ = [
    "DEFAULT_AUDIT_TYPES",
    "OTHER",
    "Action",
    "ActivityReport",
    "AddressActivity",
    "AddressRow",
    "AsyncMonitor",
    "AuditEntry",
    "AuditStore",
    "BufferedSink",
    "CallbackSink",
    "CompromiseReport",
    "CounterRow",
    "Detector",
    "FailedSecretBurst",
    "IssuancePolicy",
    "LoggingSink",
    "ManyAddresses",
    "MemoryAuditStore",
    "MemoryUsageStore",
    "Monitor",
    "MonitorBase",
    "NewNetwork",
    "PlaintextTransport",
    "RedisDetectorState",
    "RedisUsageStore",
    "ReviewFinding",
    "SQLAlchemyAuditStore",
    "SQLAlchemyUsageStore",
    "SQLiteAuditStore",
    "SQLiteUsageStore",
    "TrafficSpike",
    "UsageRecorder",
    "UsageReport",
    "UsageStore",
    "audit_store_from_url",
    "usage_store_from_url",
]
