"""The fenced code blocks of a Markdown page, and which of them are fragments.

A block is a fragment when the line just before its opening fence is the HTML
comment ``<!-- fragment -->`` (invisible in the rendered site). Fragments show a
piece of a larger program (a server, a database, a project layout) and are not run.
"""

from __future__ import annotations

import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FRAGMENT", "PYTHON", "Block", "blocks", "python_blocks", "run_page"]

FRAGMENT = "<!-- fragment -->"
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its code (dedented), where it starts."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    fragment: bool


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _OPEN.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, start = match["fence"], index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            body.append(lines[index])
            index += 1
        previous = lines[start - 1].strip() if start > 0 else ""
        found.append(
            Block(
                lang=match["lang"],
                code=textwrap.dedent("\n".join(body)) + "\n",
                line=start + 1,
                fragment=previous == FRAGMENT,
            )
        )
        index += 1
    return found


PYTHON = frozenset({"python", "py", "python3"})


def python_blocks(page: Path) -> list[Block]:
    """The Python blocks (``python``, ``py``) of ``page`` that are not fragments, in order."""
    return [b for b in blocks(page) if b.lang in PYTHON and not b.fragment]


def run_page(page: Path) -> None:
    """Run the Python blocks of ``page`` that are not fragments, in order, in one
    namespace: a module registered as ``docpage`` in ``sys.modules`` (some frameworks
    resolve annotations through a handler's module). A failing block raises, its
    traceback pointing at the page's own line numbers.
    """
    module = types.ModuleType("docpage")
    module.__file__ = str(page)
    sys.modules["docpage"] = module
    for block in python_blocks(page):
        # Padding keeps tracebacks on the page's line numbers.
        source = "\n" * block.line + block.code
        exec(compile(source, str(page), "exec"), module.__dict__)  # noqa: S102  (our own docs)


if __name__ == "__main__":
    run_page(Path(sys.argv[1]))
