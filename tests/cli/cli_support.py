"""Helpers shared by the CLI tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLI_ENV_VARS = ("APIKEYS_DATABASE_URL", "APIKEYS_PREFIX", "APIKEYS_HASHER", "APIKEYS_HMAC_PEPPERS")


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


Runner = Callable[..., Result]


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: the test's, minus apikeys settings,
    with the cheap test hasher (never for real keys)."""
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_VARS}
    env["APIKEYS_HASHER"] = "argon2-test"
    env.update(extra or {})
    return env


def assert_one_line_error(result: Result, status: int, *fragments: str) -> None:
    """The command failed with ``status`` and one ``apikeys: error:`` line, no traceback."""
    assert result.status == status, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("apikeys: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


GIT = shutil.which("git")


def git(*args: str, cwd: Path) -> str:
    """Run git (found on PATH) in ``cwd``; its stdout."""
    assert GIT is not None
    done = subprocess.run([GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout
