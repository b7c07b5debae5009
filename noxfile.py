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
def docs(session: nox.Session) -> None:
    """The documentation site, built into site/ with ``mkdocs build --strict``: a
    broken link or anchor, or a docstring griffe cannot read, fails the build.

    Offline once installed (no web fonts, no social cards). ``nox -s docs -- serve``
    serves it on 127.0.0.1:8000 instead.
    """
    session.install("-e", ".[docs]", "ruff>=0.6")  # mkdocstrings formats signatures with ruff
    quiet = {"NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, on every build
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", "--strict", *session.posargs[1:], env=quiet)
    else:
        session.run(
            "mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=quiet
        )


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


# The other libraries of the comparison, each installed into a venv of its own
# (they pin Django, SQLAlchemy... differently from us and from each other).
COMPARED = {
    "drf-api-key": [
        "djangorestframework-api-key",
        "django",
        "djangorestframework",
        "psycopg[binary]",
    ],
    "keyshield": [
        "keyshield[sqlalchemy,argon2,aiocache]",
        "aiosqlite",
        "greenlet",
        "psycopg[binary]",
    ],
    # advanced-alchemy (its SQL backend) fails on SQLAlchemy 2.1.
    "litestar-api-auth": [
        "litestar-api-auth[sqlalchemy]",
        "sqlalchemy<2.1",
        "aiosqlite",
        "greenlet",
        "psycopg[binary]",
    ],
}


@nox.session
def compare(session: nox.Session) -> None:
    """apikeys beside djangorestframework-api-key, keyshield and litestar-api-auth,
    each in its own venv under .nox/compare-*, measured interleaved in one run;
    prints the Markdown for docs/benchmarks.md and writes docs/benchmarks-compare.svg.

    ``nox -s compare -- --quick`` for a smoke run.
    """
    import os
    import sys

    session.install("-e", ".[all,test]")
    tools = [f"apikeys={session.virtualenv.location}/bin/python"]
    missing = []
    for tool, requirements in COMPARED.items():
        venv = os.path.join(".nox", f"compare-{tool}")
        python = os.path.join(venv, "bin", "python")
        try:
            if not os.path.exists(python):
                session.run(sys.executable, "-m", "venv", venv, external=True)
            session.run(python, "-m", "pip", "install", "-q", *requirements, external=True)
        except nox.command.CommandFailed:
            missing.append(f"--missing={tool}=did not install")
            continue
        tools.append(f"{tool}={python}")
    session.run(
        "python",
        "benchmarks/bench_compare.py",
        *(f"--tool={t}" for t in tools),
        *missing,
        *session.posargs,
    )


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
            "BATTERY_TIER": tier,
            "BATTERY_REPORT": "docs/security.md",
            "BATTERY_COMMAND": command,
        },
    )
