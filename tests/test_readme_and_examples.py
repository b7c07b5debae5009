"""The README's Python snippets and the quickstart example run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install . && python examples/quickstart.py" in readme
    assert "pip install nox && nox -s tests" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install nox && nox -s tests" in ci


@pytest.mark.parametrize("block", _python_blocks(ROOT / "README.md"))
def test_readme_snippet_runs(block: str) -> None:
    namespace: dict[str, object] = {"__name__": "readme_snippet"}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  (our own docs)


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
