"""Two processes rotating and revoking the same keys against PostgreSQL never
lose a write and never leave two live successors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apikeys import KeyManager, KeyState
from apikeys.storage import SQLAlchemyStore
from apikeys.testing import test_hasher

WORKER = Path(__file__).with_name("_race_worker.py")
ROUNDS = 40


@pytest.mark.postgres
def test_two_processes_rotate_and_revoke_the_same_keys(pg: str) -> None:
    keys = KeyManager(SQLAlchemyStore(pg), prefix="acme", hasher=test_hasher(), cache_size=0)
    originals = [keys.create(owner=f"owner-{n}", scopes=["a:b"]).key.id for n in range(ROUNDS)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), pg, str(w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]
    results: list[list[dict[str, object]]] = [[], []]
    try:
        for proc in workers:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for key_id in originals:
            for proc in workers:  # both get the key at once: they race on it
                assert proc.stdin is not None
                proc.stdin.write(key_id + "\n")
                proc.stdin.flush()
            for w, proc in enumerate(workers):
                assert proc.stdout is not None
                results[w].append(json.loads(proc.stdout.readline()))
    finally:
        for proc in workers:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err

    refused = sum(int(r["refused"]) for rs in results for r in rs)  # type: ignore[call-overload]
    for n, key_id in enumerate(originals):
        round_results = [results[0][n], results[1][n]]
        claimed = [r["successor"] for r in round_results if r["successor"] is not None]
        errors = [e for r in round_results for e in r["errors"]]  # type: ignore[attr-defined]
        old = keys.get(key_id)
        successors = [k for k in keys.list(owner=f"owner-{n}") if k.replaces == key_id]
        # Revocation always lands: by one worker, or by both through the retry.
        assert old.revoked_at is not None
        # Never two successors, and every successor a worker was told of exists.
        assert len(successors) <= 1
        assert len(claimed) == len(successors)
        if successors:
            successor = successors[0]
            successor_id, plaintext = claimed[0]  # type: ignore[misc]
            assert successor.id == successor_id == old.replaced_by
            assert successor.state(keys.now()) is KeyState.ACTIVE
            assert keys.verify(plaintext).id == successor_id
        else:
            assert old.replaced_by is None
        for error in errors:
            assert error in {"rotate:invalid_state", "rotate:conflict", "revoke:conflict"}, error
    # The race was real: the version check refused stale writes in some rounds.
    assert refused > 0
    keys.close()
