"""Every Python block of README.md and docs/ runs, page by page, in order.

Each page runs in a fresh interpreter (its own ``sys.modules``, Django settings,
logging; warnings are errors) in an empty temporary working directory, with one
namespace for all its blocks, as a reader pasting them one after the other would.
A block that shows a piece of a larger program (a server, PostgreSQL, a project's
``settings.py``) is marked by ``<!-- fragment -->`` on the line just before its
fence and is skipped. Console blocks are never run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import FRAGMENT, blocks, python_blocks

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "doc_blocks.py"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# What a project provides before a page's blocks run, as its settings module would.
DJANGO_SETTINGS = """
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="docs-only-not-a-secret",
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                    "rest_framework", "apikeys.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}},
    ROOT_URLCONF=[],
    APIKEYS={"PREFIX": "acme"},
    USE_TZ=True,
)
django.setup()
"""
SETUP = {"docs/integrations/django.md": DJANGO_SETTINGS}


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


RUNNABLE = [page for page in PAGES if python_blocks(page)]


@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_page_runs_in_order(page: Path, tmp_path: Path) -> None:
    setup = SETUP.get(_name(page), "")
    program = f"{setup}\nimport sys, runpy\nsys.argv = ['doc_blocks', {str(page)!r}]\n"
    program += f"runpy.run_path({str(RUNNER)!r}, run_name='__main__')\n"
    env = {**os.environ, "PYTHONPATH": str(RUNNER.parent)}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", program],  # as filterwarnings = error
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_parser_sees_fences_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\na = 1\n```\n"
        f"{FRAGMENT}\n```python\nraise SystemExit\n```\n"
        "1. item\n\n   ```python\n   b = a + 1\n   ```\n"
        "```console\n$ rm -rf /\n```\n"
        "```py\nc = b\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.fragment) for b in found] == [
        ("python", False),
        ("python", True),
        ("python", False),
        ("console", False),
        ("py", False),
    ]
    assert [b.code for b in python_blocks(page)] == ["a = 1\n", "b = a + 1\n", "c = b\n"]


def test_a_failing_block_fails_its_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f'File "{page}", line 6' in result.stderr
