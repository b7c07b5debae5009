"""The one entry point for tests, lint, typing and benchmarks (``nox -l`` lists them)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, against the real services on this machine."""
    session.install("-e", ".[all,test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    paths = ["src", "tests", "benchmarks", "examples", "tools", "typing_tests", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package and typing_tests/."""
    session.install(
        "-e", ".[all,test]", "mypy>=1.10", "django-stubs>=5", "djangorestframework-stubs>=3.15"
    )
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; writes nothing, prints Markdown tables for docs/benchmarks.md.

    ``nox -s bench -- core`` runs one benchmark module (benchmarks/bench_core.py).
    """
    # limits: only for the comparison rows of bench_ratelimit.py.
    session.install("-e", ".[all,test]", "limits>=4.0")
    names = session.posargs or ["core"]
    for name in names:
        session.run("python", f"benchmarks/bench_{name}.py")


@nox.session
def generate(session: nox.Session) -> None:
    """Write the sync twins from their async sources (tools/unasync.py); offline.

    ``nox -s generate -- --check`` writes nothing and fails when a generated file
    is stale (CI runs it).
    """
    session.install("ruff>=0.6")
    session.run("python", "tools/unasync.py", *session.posargs)
