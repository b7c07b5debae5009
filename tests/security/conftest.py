"""Fixtures of the security battery: the results collector and its writer."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path

import pytest
from _report import Results, write_between_markers
from _tier import TIER

_RESULTS = Results()


@pytest.fixture
def battery(request: pytest.FixtureRequest) -> Generator[Results, None, None]:
    """Records this test's measured figures for the table in docs/security.md."""
    start = len(_RESULTS.rows)
    yield _RESULTS
    for row in _RESULTS.rows[start:]:
        row.nodeid = row.nodeid or request.node.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _RESULTS.outcomes[item.nodeid] = outcome
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("BATTERY_REPORT")
    if not target or not _RESULTS.rows:
        return
    command = os.environ.get("BATTERY_COMMAND", " ".join(["pytest", *sys.argv[1:]]))
    write_between_markers(Path(target), _RESULTS.table(TIER, command))
