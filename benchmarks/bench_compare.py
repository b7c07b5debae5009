"""apikeys beside other API-key libraries, each in a venv of its own, interleaved.

Every tool runs as a worker process in its own venv (``benchmarks/compare/worker_*.py``)
with its own SQLite file and its own fresh PostgreSQL database. Rounds go through
every (tool, case) pair in turn, so the machine's other load falls on all alike.
Cases: warm verify, unknown key, wrong secret, on SQLite and PostgreSQL, and a
protected route round trip (Django/DRF, one WSGI call) where the tool has one.

Prints Markdown (medians, p99, ratio to apikeys) and writes an SVG chart.

Run: ``nox -s compare`` (builds the venvs), or by hand:
``python benchmarks/bench_compare.py --tool apikeys=python --tool drf-api-key=/path/bin/python``
(``--missing NAME=why`` records a tool that did not install; ``--quick``; ``--svg PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, fmt_ns, machine, summarize
from bench_storage import PG_ADMIN

HERE = Path(__file__).parent / "compare"
WORKERS = {
    "apikeys": "worker_apikeys.py",
    "drf-api-key": "worker_drf.py",
    "keyshield": "worker_keyshield.py",
    "litestar-api-auth": "worker_litestar.py",
}


class Worker:
    def __init__(self, tool: str, python: str, tmp: Path, pg_name: str) -> None:
        self.tool = tool
        script = HERE / WORKERS[tool]
        self.process = subprocess.Popen(  # noqa: S603 (our own worker scripts)
            [
                os.path.abspath(python) if os.sep in python else python,
                str(script),
                str(tmp / f"{tool}.sqlite3"),
                pg_name,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        hello = json.loads(self._out.readline())
        self.cases: list[str] = hello["cases"]
        self.notes: dict[str, str] = hello["notes"]

    @property
    def _out(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def run(self, case: str, n: int) -> list[int]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"case": case, "n": n}) + "\n")
        self.process.stdin.flush()
        line = self._out.readline()
        if not line:
            raise SystemExit(f"{self.tool}: worker died during {case!r}")
        samples: list[int] = json.loads(line)
        return samples

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"quit": True}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self._out.close()


def pg_create(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def per_round_for(case: str, sample_ns: float) -> int:
    """Calls per round: fewer for slow cases (an Argon2 run), so every case gets
    a similar share of the run."""
    budget = 20_000_000  # ~20 ms of each case per round
    return max(2, min(200, int(budget / max(sample_ns, 1))))


def measure(workers: list[Worker], rounds: int) -> dict[tuple[str, str], Result]:
    plan: list[tuple[Worker, str, int]] = []
    for worker in workers:
        for case in worker.cases:
            probe = worker.run(case, 3)  # warm-up, and the size of a round
            plan.append((worker, case, per_round_for(case, sorted(probe)[1])))
    samples: dict[tuple[str, str], list[int]] = {(w.tool, c): [] for w, c, _ in plan}
    for _ in range(rounds):
        for worker, case, n in plan:
            samples[(worker.tool, case)] += worker.run(case, n)
    return {key: summarize(f"{key[0]}: {key[1]}", values) for key, values in samples.items()}


def markdown(
    tools: list[str],
    results: dict[tuple[str, str], Result],
    notes: dict[str, dict[str, str]],
    missing: dict[str, str],
    command: str,
) -> str:
    cases: list[str] = []
    for _, case in results:
        if case not in cases:
            cases.append(case)
    lines = [
        "### apikeys beside other libraries (interleaved, one run)",
        "",
        f"Machine: {machine()}  ",
        f"Command: `{command}`",
        "",
        "Median (p99) per call; the ratio is the tool's median over apikeys' "
        "(above 1: apikeys is faster).",
        "",
        "| case | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for case in cases:
        base = results.get(("apikeys", case))
        cells = []
        for tool in tools:
            if tool in missing:
                cells.append("not measured")
                continue
            result = results.get((tool, case))
            if result is None:
                cells.append("—")
                continue
            cell = f"{fmt_ns(result.median_ns)} ({fmt_ns(result.p99_ns)})"
            if base is not None and tool != "apikeys":
                cell += f", **{result.median_ns / base.median_ns:.1f}x**"
            cells.append(cell)
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines.append("")
    for tool in tools:
        if tool in missing:
            lines.append(f"- {tool}: {missing[tool]}")
        for topic, note in notes.get(tool, {}).items():
            lines.append(f"- {tool}, {topic}: {note}")
    return "\n".join(lines) + "\n"


def svg_chart(tools: list[str], results: dict[tuple[str, str], Result]) -> str:
    """Grouped horizontal bars, medians on a log scale (our own few lines of SVG)."""
    import math

    palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1"]
    cases: list[str] = []
    for _, case in results:
        if case not in cases:
            cases.append(case)
    bar, gap, left, width = 12, 10, 330, 480
    lo, hi = 3.0, 9.0  # 1 µs .. 1 s, as log10(ns)
    rows = []
    y = 40
    for case in cases:
        rows.append(f'<text x="{left - 8}" y="{y + bar}" text-anchor="end">{case}</text>')
        for index, tool in enumerate(tools):
            result = results.get((tool, case))
            if result is None:
                continue
            x = (min(max(math.log10(result.median_ns), lo), hi) - lo) / (hi - lo) * width
            colour = palette[index % len(palette)]
            rows.append(
                f'<rect x="{left}" y="{y}" width="{x:.1f}" height="{bar - 2}" fill="{colour}"/>'
                f'<text x="{left + x + 4:.1f}" y="{y + bar - 3}">{fmt_ns(result.median_ns)}</text>'
            )
            y += bar
        y += gap
    axis = []
    for power, label in (
        (3, "1 µs"),
        (4, "10 µs"),
        (5, "100 µs"),
        (6, "1 ms"),
        (7, "10 ms"),
        (8, "100 ms"),
        (9, "1 s"),
    ):
        x = left + (power - lo) / (hi - lo) * width
        axis.append(
            f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{y}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{label}</text>'
        )
    legend = "".join(
        f'<rect x="{left + i * 130}" y="8" width="10" height="10" fill="{palette[i % 4]}"/>'
        f'<text x="{left + i * 130 + 14}" y="17">{tool}</text>'
        for i, tool in enumerate(tools)
    )
    height = y + 24
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
        f'<rect width="100%" height="100%" fill="white"/>{legend}{"".join(axis)}{"".join(rows)}'
        "</svg>\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", action="append", default=[], help="NAME=PYTHON")
    parser.add_argument("--missing", action="append", default=[], help="NAME=WHY")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--svg", default="docs/benchmarks-compare.svg")
    args = parser.parse_args()
    pythons = dict(item.split("=", 1) for item in args.tool) or {"apikeys": sys.executable}
    missing = dict(item.split("=", 1) for item in args.missing)
    tools = [
        t
        for t in ("apikeys", "drf-api-key", "keyshield", "litestar-api-auth")
        if t in pythons or t in missing
    ]
    rounds = 3 if args.quick else 15
    tmp = Path(tempfile.mkdtemp(prefix="apikeys-compare-"))
    databases = {tool: f"apikeys_cmp_{os.getpid()}_{secrets.token_hex(3)}" for tool in pythons}
    workers: list[Worker] = []
    try:
        with ExitStack() as stack:
            for tool, python in pythons.items():
                pg_create(databases[tool])
                stack.callback(pg_drop, databases[tool])
                worker = Worker(tool, python, tmp, databases[tool])
                stack.callback(worker.close)
                workers.append(worker)
            results = measure(workers, rounds)
        command = "nox -s compare" + (" -- --quick" if args.quick else "")
        notes = {w.tool: w.notes for w in workers}
        print(markdown(tools, results, notes, missing, command))
        Path(args.svg).write_text(svg_chart([t for t in tools if t in pythons], results))
        print(f"Chart: {args.svg}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
