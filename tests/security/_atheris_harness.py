"""atheris entry point: ``python _atheris_harness.py <target> [libFuzzer flags]``.

Run by ``test_fuzz.py::test_atheris`` in a subprocess (atheris.Fuzz never returns).
An exception other than an ``apikeys.errors`` error, or a broken contract
(``FuzzFailure``), is a crash: libFuzzer prints it and exits non-zero.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["apikeys"]):
    import _fuzz_targets as targets

    from apikeys._keyformat import generate
    from apikeys.errors import APIKeyError


def _key(fdp: atheris.FuzzedDataProvider) -> str:
    return generate("acme_live" if fdp.ConsumeBool() else "acme")[1]


def key_parser(fdp: atheris.FuzzedDataProvider) -> None:
    raw = fdp.ConsumeUnicode(120)
    if fdp.ConsumeBool():
        key = _key(fdp)
        at = fdp.ConsumeIntInRange(0, len(key))
        raw = key[:at] + raw + key[at:] if fdp.ConsumeBool() else key[:at] + raw
    targets.key_parser(raw)


def header_extraction(fdp: atheris.FuzzedDataProvider) -> None:
    lists: list[list[str]] = [[], [], []]
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        value = fdp.ConsumeUnicode(40)
        if fdp.ConsumeBool():
            value = value + _key(fdp) + fdp.ConsumeUnicode(4)
        lists[fdp.ConsumeIntInRange(0, 2)].append(value)
    targets.header_extraction(*lists)


def stored_hash(fdp: atheris.FuzzedDataProvider) -> None:
    text = fdp.ConsumeUnicode(160)
    if fdp.ConsumeBool():
        text = "$argon2id$v=19$" + text
    targets.stored_hash(text, "s3cret")


def scanner(fdp: atheris.FuzzedDataProvider) -> None:
    planted = [_key(fdp) for _ in range(fdp.ConsumeIntInRange(0, 2))]
    head = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    tail = fdp.ConsumeBytes(300)
    body = b" ".join(k.encode() for k in planted)
    targets.scanner(head + b"\n " + body + b" \n" + tail, planted)


TARGETS: dict[str, Callable[[atheris.FuzzedDataProvider], None]] = {
    "key_parser": key_parser,
    "header_extraction": header_extraction,
    "stored_hash": stored_hash,
    "scanner": scanner,
}


def main() -> None:
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        with contextlib.suppress(APIKeyError):
            target(atheris.FuzzedDataProvider(data))

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
