"""The testing recipe of each docs page runs as written.

A page's recipe is its code blocks carrying a file name (````python title="app.py"``,
also ``ini``): they are written to an empty folder, as a user would copy them,
and pytest runs there (:func:`recipe_support.run_pytest`). Every test function of
the recipe must pass, and every test of :class:`~apikeys.testing.StoreConformance`
for a store recipe.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apikeys.testing import StoreConformance
from recipes.recipe_support import run_pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = [
    "testing.md",
    "integrations/fastapi.md",
    "integrations/flask.md",
    "integrations/django.md",
    "integrations/asgi.md",
    "integrations/litestar.md",
    "storage.md",
]
FILE_BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```$', re.DOTALL | re.MULTILINE)
TEST_FUNCTION = re.compile(r"^(?:async )?def test_\w+\(", re.MULTILINE)
CONFORMANCE_TESTS = sum(name.startswith("test_") for name in vars(StoreConformance))


def recipe_files(page: str) -> dict[str, str]:
    """The page's titled blocks, by file name."""
    files: dict[str, str] = {}
    for name, body in FILE_BLOCK.findall((DOCS / page).read_text(encoding="utf-8")):
        assert name not in files, f"{page}: two blocks titled {name}"
        files[name] = body
    return files


@pytest.mark.parametrize("page", PAGES)
def test_the_recipe_passes_as_written(page: str, tmp_path: Path) -> None:
    files = recipe_files(page)
    test_modules = [body for name, body in files.items() if Path(name).name.startswith("test_")]
    tests = sum(len(TEST_FUNCTION.findall(body)) for body in test_modules)
    tests += sum(body.count("(StoreConformance):") for body in test_modules) * CONFORMANCE_TESTS
    assert tests >= 2, f"{page} has no runnable recipe"
    for name, body in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    outcomes = run_pytest(tmp_path)
    assert set(outcomes) <= {"passed", "skipped"}, outcomes
    assert outcomes["passed"] >= tests, outcomes
