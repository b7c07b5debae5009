"""``apikeys export-rules``: the exported expressions match every issued key and none
of 10 000 look-alikes (wrong prefix, length or alphabet, or glued to word characters).

A regex cannot check the CRC32 checksum, so the look-alikes here differ in shape;
``test_scan.py`` shows the scanner rejects same-shape strings with bad checksums.
"""

from __future__ import annotations

import math
import random
import re
import sys
from collections import Counter

import pytest
from cli_support import Runner, assert_one_line_error

from apikeys import _keyformat
from apikeys._cli.rules import GITLEAKS_ENTROPY, gitleaks, regex, trufflehog

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

PREFIXES = ["acme_live", "acme"]
BASE62 = _keyformat.ALPHABET
NOT_BASE62 = "-+/=.~!@#$%^&*(){}[]|\\:;\"'<>,? \té"
WORD = BASE62 + "_"


def issued(n: int = 200) -> list[str]:
    return [_keyformat.generate(PREFIXES[i % 2])[1] for i in range(n)]


def lookalikes(rng: random.Random, n: int = 10_000) -> list[str]:
    """Strings that resemble keys but must not match, four kinds in turn."""
    out: list[str] = []
    for i in range(n):
        key = _keyformat.generate(rng.choice(PREFIXES))[1]
        prefix, _, body = key.rpartition("_")
        kind = i % 4
        if kind == 0:  # wrong prefix: another word, changed or cased letters, no underscore
            other = rng.choice(
                ["acm", "acmee", "acme1", "Acme", "ACME", "acne", "live", "acme_test", "acmelive"]
            )
            out.append(other + "_" + body if rng.random() < 0.8 else prefix + body)
        elif kind == 1:  # wrong length: 1..53 or 55..80 characters
            length = rng.choice([*range(1, 54), *range(55, 81)])
            out.append(prefix + "_" + "".join(rng.choice(BASE62) for _ in range(length)))
        elif kind == 2:  # a character outside the alphabet somewhere in the body
            at = rng.randrange(len(body))
            out.append(prefix + "_" + body[:at] + rng.choice(NOT_BASE62) + body[at + 1 :])
        else:  # glued to word characters before or after
            glue = rng.choice(WORD)
            out.append(glue + key if rng.random() < 0.5 else key + glue)
    return out


@pytest.fixture(scope="module")
def fakes() -> list[str]:
    return lookalikes(random.Random(2024))


@pytest.mark.parametrize("flags", [0, re.ASCII], ids=["unicode", "ascii-like-re2"])
def test_regex_matches_every_issued_key_and_no_lookalike(flags: int, fakes: list[str]) -> None:
    pattern = re.compile(regex(PREFIXES), flags)
    keys = issued()
    for key in keys:
        assert pattern.fullmatch(key), key
        # ... and inside the text around it in config files, code and URLs
        for text in (f'API_KEY="{key}"', f"key: {key}\n", f"?key={key}&x=1", f"`{key}`"):
            assert [m.group(0) for m in pattern.finditer(text)] == [key]
    assert len(fakes) == 10_000
    matched = [fake for fake in fakes if pattern.search(fake)]
    assert matched == []


def test_gitleaks_config_parses_and_its_rules_match_their_prefix_only() -> None:
    config = tomllib.loads(gitleaks(PREFIXES))
    assert config["extend"] == {"useDefault": True}
    rules = {rule["id"]: rule for rule in config["rules"]}
    assert set(rules) == {"apikeys-acme-live", "apikeys-acme"}
    keys = issued(40)
    for prefix in PREFIXES:
        rule = rules["apikeys-" + prefix.replace("_", "-")]
        assert rule["keywords"] == [prefix + "_"]
        pattern = re.compile(rule["regex"], re.ASCII)
        for key in keys:
            assert bool(pattern.fullmatch(key)) == (key.rpartition("_")[0] == prefix)
        assert not re.search(r"\(\?[=!<]", rule["regex"]), "RE2 has no look-around"
    # Issued keys clear the entropy floor with a wide margin; a placeholder does not.
    assert min(shannon(key) for key in issued()) > GITLEAKS_ENTROPY + 1
    assert shannon("acme_" + "X" * 54) < GITLEAKS_ENTROPY


def shannon(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def test_trufflehog_config_has_one_detector_per_prefix() -> None:
    text = trufflehog(PREFIXES)
    names = re.findall(r"^  - name: (\S+)$", text, re.MULTILINE)
    assert names == ["apikeys-acme-live", "apikeys-acme"]
    patterns = re.findall(r"^      key: '(.*)'$", text, re.MULTILINE)
    assert len(patterns) == 2
    keys = issued(40)
    for prefix, pattern in zip(PREFIXES, patterns, strict=True):
        compiled = re.compile(pattern.replace("''", "'"), re.ASCII)
        assert compiled.groups == 1  # TruffleHog reports the first group
        for key in keys:
            match = compiled.search(f"token={key};")
            assert (match.group(1) if match else None) == (
                key if key.rpartition("_")[0] == prefix else None
            )


def test_export_rules_command(cli: Runner) -> None:
    result = cli("export-rules", "--prefix", "acme_live,acme")
    assert result.status == 0
    assert result.stdout == regex(PREFIXES) + "\n"
    toml = cli("export-rules", "-f", "gitleaks", env={"APIKEYS_PREFIX": "acme"})
    assert tomllib.loads(toml.stdout)["rules"][0]["id"] == "apikeys-acme"
    assert_one_line_error(cli("export-rules", "-f", "semgrep", "--prefix", "acme"), 2, "semgrep")
