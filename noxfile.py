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
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package and typing_tests/."""
    session.install(
        "-e", ".[all]", "mypy>=1.10", "django-stubs>=5", "djangorestframework-stubs>=3.15"
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
def security(session: nox.Session) -> None:
    """The security battery (tests/security/): a state machine over the key lifecycle,
    fuzzing, real faults, timing ratios and leak scans. Rewrites the results table
    in docs/security.md.

    ``nox -s security`` is the CI tier (under 10 minutes on 2 cores);
    ``nox -s security -- --long`` raises budgets and loop counts about tenfold.
    Other arguments go to pytest.
    """
    session.install("-e", ".[all,test]")
    # atheris (coverage-guided fuzzing) ships wheels for CPython on Linux x86-64; where
    # it does not install, its four runs skip and the Hypothesis fuzzing still runs.
    session.run("python", "-m", "pip", "install", "-q", "atheris>=2.3", success_codes=[0, 1])
    args = list(session.posargs)
    tier = "long" if "--long" in args else "ci"
    args = [arg for arg in args if arg != "--long"]
    command = "nox -s security" + (" -- --long" if tier == "long" else "")
    session.run(
        "pytest",
        "tests/security",
        "-p",
        "no:cacheprovider",
        *args,
        env={
            "APIKEYS_SECURITY": tier,
            "APIKEYS_SECURITY_REPORT": "docs/security.md",
            "APIKEYS_SECURITY_COMMAND": command,
        },
    )
