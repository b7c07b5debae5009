"""The requests of the problem-body leak scan, shared by test_leaks.py and the Django
subprocess (_django_leaks.py)."""

from __future__ import annotations

from core_support import with_wrong_secret


def leak_requests(plaintext: str, revoked: str) -> list[tuple[str, dict[str, str]]]:
    wrong = with_wrong_secret(plaintext)
    return [
        ("/orders", {"Authorization": f"Bearer {plaintext}"}),
        ("/orders", {"X-API-Key": plaintext}),
        ("/orders", {"X-API-Key": wrong}),
        ("/orders", {"X-API-Key": revoked}),
        ("/orders", {"X-API-Key": plaintext + plaintext}),
        ("/orders", {"X-API-Key": f"{plaintext} {plaintext}"}),
        ("/orders", {"Authorization": f"Basic {plaintext}"}),
        ("/orders", {"Authorization": f"Bearer {plaintext}", "X-API-Key": plaintext}),
        ("/orders", {"X-API-Key": plaintext[:-1]}),
        ("/write", {"X-API-Key": plaintext}),
        ("/orders", {"X-API-Key": plaintext, "X-Forwarded-For": plaintext}),
    ]
