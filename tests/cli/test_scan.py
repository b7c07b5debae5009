"""``apikeys scan``: exact findings on a fixture tree with real keys, look-alikes
with bad checksums, binary files and ignored files; with and without git."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import GIT, Runner, assert_one_line_error, base_env, git

from apikeys import _keyformat
from apikeys._cli._scanner import Finding, KeyFinder, Scanner, find_in_bytes

PREFIXES = ("acme", "acme_live")
BASE62 = _keyformat.ALPHABET


def new_key(prefix: str = "acme") -> tuple[str, str]:
    """A real key of ``prefix``: (key id, plaintext)."""
    parts, plaintext = _keyformat.generate(prefix)
    return parts.key_id, plaintext


def bad_checksum(key: str) -> str:
    """``key`` with its last checksum character changed (same shape, wrong CRC)."""
    last = key[-1]
    return key[:-1] + BASE62[(BASE62.index(last) + 1) % 62]


@dataclass
class Tree:
    root: Path
    expected: list[tuple[str, int, int, str]]  # path, line, column, key id


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    """A project tree; ``expected`` lists exactly what a scan must report."""
    # Keep git from finding a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "project"
    root.mkdir()
    k1_id, k1 = new_key("acme")
    k2_id, k2 = new_key("acme_live")
    k3_id, k3 = new_key("acme")
    k4_id, k4 = new_key("acme")
    _, foreign = new_key("other")
    _, ignored_key = new_key("acme")

    def write(rel: str, text: str | bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    write(".gitignore", "build/\n*.log\n!keep.log\n/secret.env\n")
    write(
        "app/settings.py",
        "import os\n"
        f'API_KEY = "{k1}"\n'  # line 2, column 12
        f'BROKEN = "{bad_checksum(k1)}"\n'  # same shape, bad checksum: not reported
        f'GLUED = "x{bad_checksum(k3)}"\n'
        f'OTHER = "{foreign}"\n'  # a valid key of a prefix we do not look for
        f'LONGER = "xx{k1[2:]}"\n',  # ends like a key, but is not one
    )
    # JSON-escaped newline right before the key, and a non-ASCII character earlier on
    # the line: the column counts characters, not bytes.
    write("app/config.json", '{"note": "é", "k": "line\\n' + k2 + '"}\n')  # line 1, column 27
    write("docs/example.md", f"Example: `{k3}` <!-- apikeys:allow -->\n")
    write("keep.log", f"\n\n   {k3} and again {k3}\n")  # line 3, columns 4 and 74
    write("debug.log", f"{ignored_key}\n")
    write("build/out.txt", f"{ignored_key}\n")
    write("secret.env", f"KEY={ignored_key}\n")
    write("sub/secret.env", f"KEY={k4}\n")  # /secret.env is anchored to the root
    write("nested/.gitignore", "local.txt\n")
    write("nested/local.txt", f"{ignored_key}\n")
    write("image.png", b"\x89PNG\r\n\x1a\n\x00\x00" + k1.encode() + b"\x00")
    write("sub/.git/config", f"{ignored_key}\n")
    link = root / "link.txt"
    link.symlink_to(root / "build" / "out.txt")
    return Tree(
        root,
        [
            ("app/config.json", 1, 27, k2_id),
            ("app/settings.py", 2, 12, k1_id),
            ("keep.log", 3, 4, k3_id),
            ("keep.log", 3, 74, k3_id),
            ("sub/secret.env", 1, 5, k4_id),
        ],
    )


def found(scanner: Scanner, target: str) -> list[tuple[str, int, int, str]]:
    return [(f.path, f.line, f.column, f.key_id) for f in scanner.scan([target])]


def test_scan_reports_exactly_the_real_keys(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.root)
    scanner = Scanner(PREFIXES)
    assert found(scanner, ".") == tree.expected
    assert scanner.stats.binary == 1
    assert scanner.stats.allowed == 1
    # Everything but the binary, the ignored and the .git files, and the symlink.
    assert scanner.stats.files == 7


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_scan_in_a_git_work_tree_asks_git(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.root)
    git("init", "-q", ".", cwd=tree.root)
    assert found(Scanner(PREFIXES), ".") == tree.expected
    # git's own rules now decide: .git/info/exclude is honoured (the fallback
    # parser does not read it), and a tracked file is scanned although ignored.
    (tree.root / ".git" / "info").mkdir(exist_ok=True)
    (tree.root / ".git" / "info" / "exclude").write_text("sub/\n")
    git("add", "-f", "debug.log", cwd=tree.root)
    paths = {path for path, *_ in found(Scanner(PREFIXES), ".")}
    assert paths == {"app/config.json", "app/settings.py", "keep.log", "debug.log"}


def test_no_ignore_scans_ignored_files_but_never_dot_git(tree: Tree) -> None:
    scanner = Scanner(PREFIXES, respect_gitignore=False)
    paths = {path for path, *_ in found(scanner, str(tree.root))}
    root = str(tree.root)
    assert paths == {
        f"{root}/{p}"
        for p in (
            "app/config.json",
            "app/settings.py",
            "keep.log",
            "debug.log",
            "build/out.txt",
            "secret.env",
            "sub/secret.env",
            "nested/local.txt",
        )
    }


def test_a_file_named_explicitly_is_scanned_even_if_ignored(tree: Tree) -> None:
    target = str(tree.root / "debug.log")
    assert len(found(Scanner(PREFIXES), target)) == 1
    assert found(Scanner(PREFIXES), str(tree.root / "image.png")) == []


def test_excludes_match_paths_and_file_names(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.root)
    scanner = Scanner(PREFIXES, excludes=("app/*", "*.log"))
    assert found(scanner, ".") == [tree.expected[-1]]


def test_large_files_are_skipped_and_counted(tmp_path: Path) -> None:
    _, key = new_key()
    (tmp_path / "big.txt").write_text(key + "\n" + "x" * 2000)
    scanner = Scanner(PREFIXES, max_bytes=1000)
    assert found(scanner, str(tmp_path / "big.txt")) == []
    assert scanner.stats.too_large == 1


def test_same_shape_strings_with_bad_checksums_are_never_reported() -> None:
    rng = random.Random(7)
    finder = KeyFinder(PREFIXES)
    # Random bodies: a CRC32 match by chance is ~2**-32 each; the seed fixes the draw.
    lookalikes = [
        rng.choice(PREFIXES) + "_" + "".join(rng.choice(BASE62) for _ in range(54))
        for _ in range(10_000)
    ]
    # Every single-character change of a real key (CRC32 catches each of them).
    _, key = new_key("acme_live")
    for index in range(len("acme_live_"), len(key)):
        for replacement in rng.sample(BASE62, 3):
            if replacement != key[index]:
                lookalikes.append(key[:index] + replacement + key[index + 1 :])
    data = "\n".join(lookalikes).encode()
    assert list(finder.find(data)) == []
    assert [p.key_id for _, p in finder.find(data + b"\n" + key.encode())] == [
        key.split("_")[-1][:16]
    ]


def test_keys_glued_to_other_text_are_still_found() -> None:
    key_id, key = new_key("acme")
    finder = KeyFinder(["acme"])
    for text in (f"x{key}", f"{key}x", f"%22{key}%22", f"_{key}_", f"\\n{key}\\n"):
        findings, _ = find_in_bytes(finder, text.encode(), "t")
        assert [f.key_id for f in findings] == [key_id], text


def test_a_longer_prefix_glued_in_front_is_resolved_by_the_checksum() -> None:
    # "live_…" is a real key of the prefix "live"; glued after "acme_" it reads like
    # an "acme_live_…" key, whose checksum fails, so the "live" key is reported.
    key_id, key = new_key("live")
    finder = KeyFinder(["acme_live", "live"])
    findings, _ = find_in_bytes(finder, f"acme_{key}".encode(), "t")
    assert [(f.prefix, f.key_id, f.column) for f in findings] == [("live", key_id, 6)]


# --- through the command ----------------------------------------------------------------


def test_scan_command_prints_locations_and_ids_never_secrets(
    tree: Tree, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.root)
    result = cli("scan", "--prefix", "acme,acme_live")
    assert result.status == 1
    assert result.stdout.splitlines() == [
        f"{path}:{line}:{column}: {'acme_live' if path.endswith('json') else 'acme'} key {key_id}"
        for path, line, column, key_id in tree.expected
    ]
    assert "5 key(s) found in 7 file(s) scanned; skipped 1 binary" in result.stderr
    secrets = [p.secret for _, p in KeyFinder(PREFIXES).find((tree.root / "keep.log").read_bytes())]
    assert secrets
    assert all(s not in result.stdout + result.stderr for s in secrets)

    as_json = json.loads(cli("scan", "--prefix", "acme,acme_live", "--json", ".").stdout)
    assert [(f["path"], f["line"], f["column"], f["key_id"]) for f in as_json["findings"]] == (
        tree.expected
    )
    assert as_json["failed"] is True
    assert as_json["skipped"] == {
        "binary": 1,
        "too_large": 0,
        "unreadable": [],
        "not_regular": [],
    }


def test_scan_of_a_clean_tree_and_of_stdin(cli: Runner, tmp_path: Path) -> None:
    (tmp_path / "clean.txt").write_text("nothing to see\n")
    clean = cli("scan", "--prefix", "acme", "--no-progress", "clean.txt")
    assert (clean.status, clean.stdout) == (0, "")
    key_id, key = new_key()
    piped = cli("scan", "--prefix", "acme", "-", input=f"token: {key}\n")
    assert piped.status == 1
    assert piped.stdout == f"<stdin>:1:8: acme key {key_id}\n"


def test_scan_usage_errors(cli: Runner) -> None:
    assert_one_line_error(cli("scan", "missing-dir", "--prefix", "acme"), 2, "missing-dir")
    assert_one_line_error(cli("scan", "."), 2, "--prefix")
    assert_one_line_error(cli("scan", "--prefix", "Bad-Prefix"), 2, "invalid key prefix")
    assert_one_line_error(cli("scan", "--prefix", "acme", "--max-size", "lots"), 2, "size")


# --- FIFOs, devices and other files that are not regular --------------------------------


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


@needs_fifo
def test_scanner_skips_a_fifo_without_opening_it_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    scanner = Scanner(PREFIXES)
    done: list[list[Finding]] = []
    worker = threading.Thread(target=lambda: done.append(scanner.scan([str(fifo)])), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the stuck reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("scanning a FIFO blocked")
    assert done == [[]]
    assert scanner.stats.not_regular == [str(fifo)]
    assert scanner.stats.files == 0


@needs_fifo
def test_scan_command_skips_fifos_and_devices_with_a_message(tmp_path: Path) -> None:
    key_id, key = new_key()
    (tmp_path / "leak.txt").write_text(f"token={key}\n")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "dir" / "inner-pipe")  # met while walking: skipped quietly
    (tmp_path / "dir" / "also.txt").write_text(f"again {key}\n")
    targets = ["pipe", "leak.txt", "dir"]
    if Path("/dev/zero").exists():
        targets.append("/dev/zero")  # endless: must not be read at all
    done = subprocess.run(
        [sys.executable, "-m", "apikeys", "scan", "--prefix", "acme", "--no-progress", *targets],
        cwd=tmp_path,
        env=base_env({"GIT_CEILING_DIRECTORIES": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"leak.txt:1:7: acme key {key_id}",
        f"dir/also.txt:1:7: acme key {key_id}",
    ]
    assert "apikeys: skipped pipe: not a regular file or directory" in done.stderr
    assert "inner-pipe" not in done.stderr
    skipped = len(targets) - 2
    assert f"2 file(s) scanned; skipped {skipped} not a regular file" in done.stderr
    if "/dev/zero" in targets:
        assert "apikeys: skipped /dev/zero: not a regular file or directory" in done.stderr

    as_json = subprocess.run(
        [sys.executable, "-m", "apikeys", "scan", "--prefix", "acme", "--json", "pipe"],
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(as_json.stdout)["skipped"]["not_regular"] == ["pipe"]


def test_hostile_file_names_cannot_forge_report_lines(cli: Runner, tmp_path: Path) -> None:
    key_id, key = new_key()
    (tmp_path / "a\nfake.py:1:1: acme key 0000000000000000\x1b[2K.txt").write_text(key)
    result = cli("scan", "--prefix", "acme", "--no-progress", ".")
    assert result.status == 1
    assert result.stdout.splitlines() == [
        f"a\\x0afake.py:1:1: acme key 0000000000000000\\x1b[2K.txt:1:1: acme key {key_id}"
    ]
    as_json = json.loads(cli("scan", "--prefix", "acme", "--json", ".").stdout)
    assert as_json["findings"][0]["path"] == "a\nfake.py:1:1: acme key 0000000000000000\x1b[2K.txt"
