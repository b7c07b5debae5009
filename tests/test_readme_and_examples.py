"""The README's commands and the quickstart example run as written (the README's
Python blocks run in test_docs_snippets.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install . && python examples/quickstart.py" in readme
    assert "pip install nox && nox -s tests" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install nox && nox -s tests" in ci


def test_quickstart_runs_on_a_sqlite_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:6]] == [
        "issued",
        "verified",
        "denied",
        "rotated",
        "revoked",
        "active",
    ]
    assert "code='revoked'" in lines[4]
    assert (tmp_path / "apikeys.db").exists()
    # The database holds the hash, never the plaintext shown once.
    assert b"argon2id" in (tmp_path / "apikeys.db").read_bytes()
