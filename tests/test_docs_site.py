"""The docs site documents every public module: each has a reference page that
mkdocstrings fills from its docstrings, listed in docs/api.md and in the nav.
(``nox -s docs`` builds the site with --strict: broken links and pages left out
of the nav fail there.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "apikeys"


def public_modules() -> list[str]:
    names = [
        path.stem
        for path in PACKAGE.iterdir()
        if not path.name.startswith("_")
        and (path.suffix == ".py" or (path / "__init__.py").exists())
    ]
    return ["apikeys", *sorted(f"apikeys.{name}" for name in names)]


def test_every_public_module_has_a_reference_page() -> None:
    index = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    modules = public_modules()
    assert "apikeys.storage" in modules
    assert "apikeys._cli" not in modules
    for module in modules:
        page = ROOT / "docs" / "reference" / f"{module}.md"
        assert f"::: {module}\n" in page.read_text(encoding="utf-8"), module
        assert f"(reference/{module}.md)" in index, module
        assert f"reference/{module}.md" in nav, module
