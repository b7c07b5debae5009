"""Fixtures for the CLI tests: the real entry point in a subprocess, and ``main()``
in-process (same code, without the ~0.3 s interpreter start) for the many small cases."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from cli_support import CLI_ENV_VARS, Result, Runner, base_env

from apikeys._cli import main


@pytest.fixture
def run_cli(tmp_path: Path) -> Runner:
    """Run ``python -m apikeys ARGS`` (the real entry point) in ``tmp_path``."""

    def run(*args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "apikeys", *args],
            cwd=tmp_path,
            env=base_env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runner:
    """Call ``apikeys._cli.main(ARGS)`` in-process, in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    for name in CLI_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APIKEYS_HASHER", "argon2-test")

    def run(*args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", stdin)
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run
