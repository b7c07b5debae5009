"""A tiny timing harness shared by the benchmark scripts (no dependencies).

Run each benchmark as a script; it prints Markdown for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    n: int
    median_ns: float
    p99_ns: float

    @property
    def per_second(self) -> float:
        return 1e9 / self.median_ns if self.median_ns else float("inf")


def measure(
    name: str, fn: Callable[[], object], *, n: int = 10_000, warmup: int = 100, batch: int = 1
) -> Result:
    """Time ``fn`` ``n`` times (after ``warmup`` calls); each sample is the mean of
    ``batch`` back-to-back calls, which steadies sub-microsecond timings."""
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        for _ in range(batch):
            fn()
        samples.append((clock() - start) / batch)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Result(name, n, statistics.median(samples), p99)


def fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def table(title: str, results: Sequence[Result], *, command: str | None = None) -> str:
    """A Markdown section: title, machine, command, then one row per result."""
    lines = [
        f"### {title}",
        "",
        f"Machine: {machine()}  ",
        f"Command: `{command or 'python ' + ' '.join(sys.argv)}`",
        "",
        "| case | samples | median | p99 | ops/s (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.n} | {fmt_ns(r.median_ns)} | {fmt_ns(r.p99_ns)} | "
            f"{r.per_second:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def summarize(name: str, samples: list[int] | list[float]) -> Result:
    """A :class:`Result` from raw per-call samples in nanoseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Result(name, len(ordered), statistics.median(ordered), p99)


def interleaved(
    cases: dict[str, Callable[[], int]], *, rounds: int, per_round: int, warmup: int
) -> list[Result]:
    """Time HTTP-call cases side by side: ``rounds`` rounds, each running every case
    ``per_round`` times, so machine noise falls on all cases alike.

    Each call returns its HTTP status; a case whose name contains ``refused`` must
    answer 401, every other 200 (checked after warm-up).
    """
    for name, call in cases.items():
        status = 0
        for _ in range(warmup):
            status = call()
        expected = 401 if "refused" in name else 200
        if status != expected:
            raise SystemExit(f"{name}: status {status}, expected {expected}")
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, call in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                call()
                bucket.append(clock() - start)
    return [summarize(name, values) for name, values in samples.items()]


def interleaved_calls(
    cases: dict[str, Callable[[], object]], *, rounds: int, per_round: int, warmup: int
) -> list[Result]:
    """Time plain calls side by side: ``rounds`` rounds, each running every case
    ``per_round`` times (after ``warmup`` calls each), so machine noise falls on
    all cases alike."""
    for call in cases.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, call in cases.items():
            bucket = samples[name]
            for _ in range(per_round):
                start = clock()
                call()
                bucket.append(clock() - start)
    return [summarize(name, values) for name, values in samples.items()]


def ratio_table(results: Sequence[Result], pairs: Sequence[tuple[str, str, float]]) -> str:
    """Markdown rows ``case | floor | ratio of medians | target | met``."""
    by_name = {r.name: r for r in results}
    lines = ["| case | floor beside it | ratio (medians) | target | |", "|---|---|---:|---:|---|"]
    for case, floor, target in pairs:
        if case in by_name and floor in by_name:
            ratio = by_name[case].median_ns / by_name[floor].median_ns
            verdict = "met" if ratio <= target else "missed"
            lines.append(f"| {case} | {floor} | {ratio:.2f}x | ≤ {target:g}x | {verdict} |")
    return "\n".join(lines) + "\n"
