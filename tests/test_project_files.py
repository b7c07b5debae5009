"""What a newcomer's checkout needs (issue 18): the ``[fastapi]`` extra brings the
server the docs run, and SQLite's side files are ignored by git."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_fastapi_extra_brings_the_server_the_docs_run() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (extra,) = re.findall(r"^fastapi = \[(.*)\]$", pyproject, re.MULTILINE)
    assert '"uvicorn' in extra
    guide = (ROOT / "docs" / "integrations" / "fastapi.md").read_text(encoding="utf-8")
    assert "uvicorn examples.fastapi_app:app" in guide
    assert "pip install '.[fastapi]'" in guide


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_sqlite_side_files_are_ignored(tmp_path: Path) -> None:
    names = ["apikeys.db", "apikeys.db-wal", "apikeys.db-shm", "other/keys.db-wal"]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == names
