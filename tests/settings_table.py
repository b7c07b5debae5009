"""One table of option values, fed to every front end (environment and CLI, Flask
config, Django's ``APIKEYS``): each must accept and refuse exactly the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apikeys import Settings
from apikeys.errors import ConfigurationError

TEXT_CASES: list[tuple[str, str]] = [
    ("database_url", "sqlite:///keys.db"),
    ("database_url", "keys.db"),
    ("prefix", "acme_live, acme"),
    ("prefix", "ACME"),
    ("hasher", "argon2-test"),
    ("hasher", "md5"),
    ("hmac_peppers", "p" * 40),
    ("default_expiry", "90d"),
    ("default_expiry", "P30D"),
    ("default_expiry", "soon"),
    ("default_expiry", "0s"),
    ("rotation_grace", "1d12h"),
    ("rotation_grace", "1 12:00:00"),
    ("rotation_grace", "-5"),
    ("authorization_header", "X-Auth"),
    ("api_key_header", "X-Acme-Key"),
    ("api_key_header", "X: y"),
    ("query_param", "key"),
    ("trusted_proxies", "10.0.0.0/8, 192.0.2.1"),
    ("trusted_proxies", "not-an-ip"),
    ("realm", "acme"),
    ("realm", 'a"b'),
    ("require_https", "true"),
    ("require_https", "maybe"),
    ("https_exempt_loopback", "0"),
    ("monitoring", "false"),
    ("rate_limits", "100/minute,5000/day"),
    ("rate_limits", "1/fortnight"),
    ("redis_url", "redis://127.0.0.1:6379/0"),
    ("redis_url", "http://127.0.0.1"),
    ("cache_invalidation", "postgresql://localhost/keys"),
    ("cache_invalidation", "ftp://x"),
    ("cache_max_staleness", "0.5"),
    ("cache_max_staleness", "later"),
    ("no_such_option", "1"),
]
"""(option, value as text): what an environment variable can say."""

NATIVE_CASES: list[tuple[str, Any]] = [
    ("prefix", ["acme_live", "acme"]),
    ("prefix", 42),
    ("default_expiry", timedelta(days=1)),
    ("default_expiry", 86400),
    ("default_expiry", timedelta(0)),
    ("rotation_grace", timedelta(hours=-1)),
    ("trusted_proxies", ["10.0.0.0/8"]),
    ("trusted_proxies", 10),
    ("rate_limits", ["10/second"]),
    ("rate_limits", "10/second"),
    ("query_param", None),
    ("authorization_header", None),
    ("monitoring", False),
    ("require_https", 2),
]
"""(option, Python value): what a Flask config or Django setting can also say."""


NAMED = ("refused", "naming the option")


def outcome(load: Any, name: str, value: Any) -> tuple[str, Any]:
    """``("ok", the option's value)``, or :data:`NAMED` for a ConfigurationError
    naming the option (``("refused", message)`` when it does not)."""
    try:
        settings: Settings = load(name, value)
    except ConfigurationError as exc:
        named = name.upper() in exc.message.upper()
        return NAMED if named else ("refused", exc.message)
    return ("ok", getattr(settings, name))
