"""The fallback ``.gitignore`` matcher agrees with git on the documented subset."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import GIT, git

from apikeys._cli._gitignore import IgnoreStack, parse_rule, parse_rules
from apikeys._cli._scanner import walk_files

ROOT_RULES = "\n".join(
    [
        "# a comment, then a blank line",
        "",
        "*.log",
        "!keep.log",
        "/anchored.txt",
        "build/",
        "docs/**/draft.md",
        "**/cache",
        "vendor/**",
        "[abc]x.txt",
        "[!d]y.txt",
        "?z.txt",
        "\\#hash.txt",
        "\\!bang.txt",
        "trailing.txt   ",  # trailing spaces are trimmed
        "escaped\\ ",  # ... unless escaped
        "deep/inner/",
        "build/keep.txt",
        "!build/keep.txt",  # cannot re-include under an ignored directory
    ]
)

NESTED_RULES = """
!important.log
local.txt
/only_here.md
"""

FILES = [
    "a.log",
    "keep.log",
    "sub/b.log",
    "anchored.txt",
    "sub/anchored.txt",
    "build/x.txt",
    "build/keep.txt",
    "src/build/y.txt",
    "docs/draft.md",
    "docs/a/draft.md",
    "docs/a/b/draft.md",
    "other/draft.md",
    "cache/c.txt",
    "a/b/cache/d.txt",
    "cachefile.txt",
    "vendor/v.txt",
    "vendor/deep/w.txt",
    "ax.txt",
    "dx.txt",
    "ay.txt",
    "dy.txt",
    "az.txt",
    "abz.txt",
    "#hash.txt",
    "!bang.txt",
    "trailing.txt",
    "escaped ",
    "deep/inner/f.txt",
    "x/deep/inner/g.txt",
    "nested/important.log",
    "nested/other.log",
    "nested/local.txt",
    "nested/sub/local.txt",
    "nested/only_here.md",
    "nested/sub/only_here.md",
    "only_here.md",
    "plain.txt",
]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "tree"
    for name in FILES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    (root / ".gitignore").write_text(ROOT_RULES)
    (root / "nested" / ".gitignore").write_text(NESTED_RULES)
    return root


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_walk_lists_the_same_files_as_git(tree: Path) -> None:
    ours = set(walk_files(tree, respect_gitignore=True))
    git("init", "-q", ".", cwd=tree)
    listed = git("ls-files", "-z", "--others", "--exclude-standard", cwd=tree)
    theirs = {name for name in listed.split("\0") if name}
    assert ours == theirs
    # The fixture exercises both outcomes: several files ignored, several kept.
    assert 10 < len(ours) < len(FILES)


KEPT = (
    "keep.log",
    "sub/anchored.txt",
    "other/draft.md",
    "cachefile.txt",
    "dx.txt",
    "dy.txt",
    "abz.txt",
    "nested/important.log",
    "nested/sub/only_here.md",
    "only_here.md",
    "plain.txt",
    "x/deep/inner/g.txt",
    ".gitignore",
    "nested/.gitignore",
)
IGNORED = (
    "a.log",
    "sub/b.log",
    "anchored.txt",
    "build/keep.txt",
    "src/build/y.txt",
    "docs/draft.md",
    "docs/a/b/draft.md",
    "a/b/cache/d.txt",
    "vendor/deep/w.txt",
    "ax.txt",
    "ay.txt",
    "az.txt",
    "#hash.txt",
    "!bang.txt",
    "trailing.txt",
    "escaped ",
    "deep/inner/f.txt",
    "nested/other.log",
    "nested/sub/local.txt",
    "nested/only_here.md",
)


def test_expected_decisions_without_git(tree: Path) -> None:
    files = set(walk_files(tree, respect_gitignore=True))
    assert set(KEPT) <= files
    assert not set(IGNORED) & files


def test_without_ignore_rules_everything_but_dot_git_is_listed(tree: Path) -> None:
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("x")
    files = set(walk_files(tree, respect_gitignore=False))
    assert files == {*FILES, ".gitignore", "nested/.gitignore"}


def test_blank_lines_and_comments_are_not_rules() -> None:
    assert parse_rule("") is None
    assert parse_rule("   ") is None
    assert parse_rule("# comment") is None
    assert parse_rule("/") is None
    assert len(parse_rules("a\n\n#b\n!c\n")) == 2


def test_last_match_wins_and_dir_only_rules_skip_files() -> None:
    stack = IgnoreStack().push("", parse_rules("*.txt\n!a.txt\nout/\n"))
    assert stack.ignored("b.txt", is_dir=False)
    assert not stack.ignored("a.txt", is_dir=False)
    assert stack.ignored("x/out", is_dir=True)
    assert not stack.ignored("x/out", is_dir=False)
    deeper = stack.push("x", parse_rules("a.txt\n"))
    assert deeper.ignored("x/a.txt", is_dir=False)
    assert not deeper.ignored("a.txt", is_dir=False)


def test_unclosed_bracket_is_literal() -> None:
    rule = parse_rule("[abc.txt")
    assert rule is not None
    assert rule.regex.match("[abc.txt")
    assert not rule.regex.match("a")
