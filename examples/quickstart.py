"""The main job, end to end, on the embedded default store (a SQLite file).

Issues a key, verifies and authorizes it, rotates it with a grace period and
revokes it. Creates ``apikeys.db`` in the working directory.

Run: ``python examples/quickstart.py``
"""

from __future__ import annotations

from datetime import timedelta

from apikeys import AuthenticationError, InsufficientScope, KeyManager


def main(database: str = "apikeys.db") -> None:
    # The keys, plus usage counts and the audit trail (`apikeys audit`), in one file.
    with KeyManager.from_url(f"sqlite:///{database}", prefix="acme") as keys:
        issued = keys.create(
            owner="team-42",
            scopes=["orders:read"],
            name="CI",
            expires_in=timedelta(days=90),
            allowed_ips=["10.0.0.0/8"],
            metadata={"plan": "pro"},
        )
        print(f"issued   {issued.key.id} (shown once: {issued.plaintext[:12]}…)")

        key = keys.verify(issued.plaintext, scopes=["orders:read"], ip="10.1.2.3")
        print(f"verified {key.id} owner={key.owner} scopes={list(key.scopes)}")

        try:
            keys.authorize(key, "orders:write")
        except InsufficientScope as exc:
            print(f"denied   orders:write ({exc.code}: missing {list(exc.missing)})")

        new = keys.rotate(key.id, grace=timedelta(hours=24))
        keys.verify(issued.plaintext, ip="10.1.2.3")  # the old key works during the grace
        print(f"rotated  {key.id} -> {new.key.id} (old key valid for 24 h)")

        keys.revoke(new.key.id, reason="leaked")
        try:
            keys.verify(new.plaintext, ip="10.1.2.3")
        except AuthenticationError as exc:
            print(f"revoked  {new.key.id} -> verify fails with code={exc.code!r}")

        live = keys.list(owner="team-42", state="active")
        print(f"active keys of team-42: {[k.id for k in live]}")


if __name__ == "__main__":
    main()
