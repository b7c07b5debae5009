"""The installed ``apikeys`` console script, and the shipped pre-commit hook."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import base_env

from apikeys import _keyformat

REPO = Path(__file__).resolve().parents[2]


def console_script() -> str | None:
    """The ``apikeys`` script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "apikeys"
    return str(beside) if beside.exists() else shutil.which("apikeys")


def hook_entry() -> list[str]:
    """The ``entry`` of the apikeys-scan hook in ``.pre-commit-hooks.yaml``."""
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert re.search(r"^- id: apikeys-scan$", text, re.MULTILINE)
    assert re.search(r"^  language: python$", text, re.MULTILINE)
    assert re.search(r"^  types: \[text\]$", text, re.MULTILINE)
    match = re.search(r"^  entry: (.+)$", text, re.MULTILINE)
    assert match is not None
    return match.group(1).split()


@pytest.mark.skipif(console_script() is None, reason="apikeys is not installed as a script")
def test_pre_commit_hook_entry_runs_the_installed_script(tmp_path: Path) -> None:
    entry = hook_entry()
    assert entry[0] == "apikeys"
    script = console_script()
    assert script is not None
    parts, key = _keyformat.generate("acme")
    (tmp_path / "staged.py").write_text(f'KEY = "{key}"\n')
    (tmp_path / "clean.py").write_text("print('hello')\n")
    # pre-commit appends the hook's args, then the staged file names.
    command = [script, *entry[1:], "--prefix", "acme"]

    leaked = subprocess.run(
        [*command, "staged.py", "clean.py"],
        cwd=tmp_path, env=base_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert leaked.returncode == 1
    assert leaked.stdout == f"staged.py:1:8: acme key {parts.key_id}\n"
    assert parts.secret not in leaked.stdout + leaked.stderr

    clean = subprocess.run(
        [*command, "clean.py"],
        cwd=tmp_path, env=base_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (clean.returncode, clean.stdout) == (0, "")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_is_drawn_only_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    import pty

    (tmp_path / "a.txt").write_text("nothing\n")
    command = [sys.executable, "-m", "apikeys", "scan", "--prefix", "acme", "a.txt"]

    def stderr_of(*extra: str, tty: bool) -> str:
        if not tty:
            done = subprocess.run(
                [*command, *extra], cwd=tmp_path, env=base_env(), capture_output=True, check=False
            )
            return done.stderr.decode()
        leader, follower = pty.openpty()
        try:
            subprocess.run(
                [*command, *extra], cwd=tmp_path, env=base_env(), stderr=follower,
                stdout=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        finally:
            os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the terminal is drained
            while chunk := os.read(leader, 4096):
                chunks.append(chunk)
        os.close(leader)
        return b"".join(chunks).decode()

    assert "scanning files: 1  a.txt" in stderr_of(tty=True)
    assert "\x1b" not in stderr_of(tty=False)
    assert "\x1b" not in stderr_of("--no-progress", tty=True)
