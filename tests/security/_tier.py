"""How hard the security battery pushes: one knob, read from the environment.

``BATTERY_TIER`` selects the tier:

- unset / ``quick``: the default ``pytest`` run. Small Hypothesis budgets; the parts
  that start servers, kill connections or sample timings are skipped (they run in
  ``nox -s security``).
- ``ci``: ``nox -s security``; everything, sized to finish within 10 minutes on a
  loaded 2-core machine.
- ``long``: ``nox -s security -- --long``; budgets and loop counts raised about tenfold.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
"""Under CI a missing service fails a test instead of skipping it (as in tests/conftest.py)."""

TIER = os.environ.get("BATTERY_TIER", "quick").strip().lower() or "quick"
if TIER not in {"quick", "ci", "long"}:
    raise RuntimeError(f"BATTERY_TIER must be quick, ci or long, not {TIER!r}")


def budget(quick: int, ci: int, long: int) -> int:
    """The number (examples, loop rounds, samples) of the current tier."""
    return {"quick": quick, "ci": ci, "long": long}[TIER]


heavy = pytest.mark.skipif(
    TIER == "quick",
    reason="part of the security battery's full tier: nox -s security (BATTERY_TIER=ci)",
)
"""Marks a test that starts servers, injects real faults or samples timings."""
