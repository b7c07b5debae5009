"""How fast ``apikeys scan`` reads: the key finder on text, and a whole tree.

Cases (per MiB of source-like text): no configured prefix in it (the prefilter
skips the regex), the prefix present but no key (every ``_`` + 54 characters is
tried), and 100 real keys per MiB (each checksum verified, lines and columns
computed). Then a tree of 2 000 small files walked with .gitignore rules (fallback
parser; no git) and scanned, as ``apikeys scan`` does.

Run: ``nox -s bench -- cli`` (or ``python benchmarks/bench_cli.py``).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Result, measure, table

from apikeys import _keyformat
from apikeys._cli._scanner import KeyFinder, Scanner, find_in_bytes

MIB = 1024 * 1024


def source_text(rng: random.Random, size: int, words: list[str]) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines).encode()[:size]


def main() -> None:
    rng = random.Random(1)
    words = [
        "def",
        "return",
        "self",
        "value",
        "my_variable",
        "x = 1",
        "{",
        "}",
        "acme_corp",
        "import",
        "os.path",
        "long_identifier_" + "a" * 40,
        "# comment",
        "'string'",
    ]
    finder = KeyFinder(["acme_live", "acme"])
    plain = source_text(rng, MIB, [w for w in words if "acme" not in w])
    with_prefix = source_text(rng, MIB, words)
    keyed = bytearray(with_prefix)
    step = len(keyed) // 100
    for i in range(100):
        key = _keyformat.generate("acme")[1].encode()
        at = keyed.rfind(b"\n", 0, i * step + step // 2) + 1
        keyed[at : at + len(key)] = key
    keyed_bytes = bytes(keyed)
    assert len(find_in_bytes(finder, keyed_bytes, "x")[0]) == 100

    results: list[Result] = [
        measure("1 MiB, prefix absent", lambda: find_in_bytes(finder, plain, "x"), n=200, warmup=5),
        measure(
            "1 MiB, prefix present, no key",
            lambda: find_in_bytes(finder, with_prefix, "x"),
            n=100,
            warmup=5,
        ),
        measure(
            "1 MiB, 100 keys", lambda: find_in_bytes(finder, keyed_bytes, "x"), n=100, warmup=5
        ),
    ]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".gitignore").write_text("build/\n*.log\n")
        for i in range(2000):
            directory = root / f"pkg{i % 40}" / ("build" if i % 10 == 0 else "src")
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"m{i}.py").write_bytes(plain[: 4096 + (i % 7) * 512])

        def scan_tree() -> None:
            Scanner(["acme"]).scan([str(root)])

        results.append(measure("tree: 2000 files (1800 scanned)", scan_tree, n=10, warmup=1))
    print(table("apikeys scan: key finder and tree walk", results))


if __name__ == "__main__":
    main()
