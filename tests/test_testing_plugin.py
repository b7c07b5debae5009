"""apikeys.testing: pytest-free helpers, the plugin's fixtures and its prefix option,
and the lazily loaded names that need pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import apikeys.testing
from apikeys import KeyManager
from apikeys.testing import plugin
from recipes.recipe_support import run_pytest


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "APIKEYS_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_helpers_import_and_work_without_pytest() -> None:
    code = """
import sys
sys.modules["pytest"] = None  # any import of pytest now fails
from apikeys.testing import ManualClock, auth_headers, make_manager
keys = make_manager("demo", clock=ManualClock())
raw = keys.create(owner="o").plaintext
assert keys.verify(raw).owner == "o" and raw.startswith("demo_")
assert auth_headers(raw)["Authorization"] == "Bearer " + raw
frameworks = {"fastapi", "flask", "django", "starlette", "litestar"} & set(sys.modules)
assert not frameworks, frameworks
try:
    from apikeys.testing import StoreConformance
except ImportError:
    print("StoreConformance needs pytest")
"""
    result = _python(code, APIKEYS_ALLOW_TEST_HASHER="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "StoreConformance needs pytest"


def test_the_plugin_imports_no_framework() -> None:
    code = (
        "import sys, apikeys.testing.plugin\n"
        "print(sorted({'fastapi', 'flask', 'django', 'starlette', 'litestar'} & set(sys.modules)))"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_names_needing_pytest_load_on_first_use() -> None:
    assert apikeys.testing.key_manager is plugin.key_manager
    assert apikeys.testing.StoreConformance.__module__ == "apikeys.testing._conformance"
    assert set(apikeys.testing.__all__) <= set(dir(apikeys.testing))
    with pytest.raises(AttributeError, match="no_such_helper"):
        _ = apikeys.testing.no_such_helper


def test_key_manager_uses_the_prefix_fixture(key_manager: KeyManager, apikeys_prefix: str) -> None:
    assert apikeys_prefix == "test"  # the ini option's default: this project sets none
    assert key_manager.create(owner="o").plaintext.startswith("test_")


def test_the_prefix_comes_from_the_ini_option_or_a_fixture_override(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\napikeys_prefix = acme_ci\n")
    (tmp_path / "test_ini.py").write_text(
        "def test_ini(issue_key):\n    assert issue_key().startswith('acme_ci_')\n"
    )
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef apikeys_prefix():\n    return 'old'\n"
    )
    (folder / "test_override.py").write_text(
        "def test_override(key_manager):\n"
        "    assert key_manager.create(owner='o').plaintext.startswith('old_')\n"
    )
    assert run_pytest(tmp_path) == {"passed": 2}
