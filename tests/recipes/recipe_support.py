"""Run pytest in a folder of files as a user would: a fresh process, the apikeys
plugin loaded from its entry point, warnings as errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# Errors, but for Starlette 1.x deprecating its TestClient on httpx (it wants httpx2):
# not the recipe's doing (tests/fastapi/fastapi_support.py silences it the same way).
WARNINGS = ("-W", "error", "-W", "ignore:Using `httpx` with `starlette.testclient`")
OUTCOME = re.compile(r"(\d+) (passed|skipped|failed|errors?|xfailed|xpassed)")


def run_pytest(folder: Path) -> dict[str, int]:
    """Run pytest in ``folder``; fail unless it exits 0, else its outcome counts
    (``{"passed": 3, "skipped": 1}``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *WARNINGS],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    return {kind: int(count) for count, kind in OUTCOME.findall(summary)}
