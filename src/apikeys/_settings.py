"""The one list of options: :class:`Settings`, read the same way by every front end.

Flask's ``APIKEYS_*`` config keys, Django's ``APIKEYS`` dict, the ``APIKEYS_*``
environment variables and the ``apikeys`` command's flags all end up here, so an
option has one name, one validation and one error message everywhere.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from apikeys import _values
from apikeys._redis import REDIS_SCHEMES, is_redis_url
from apikeys.errors import ConfigurationError, InvalidArgument

if TYPE_CHECKING:
    from apikeys._http import HTTPSettings
    from apikeys.hashing import Hasher

ENV_PREFIX = "APIKEYS_"
CLI_VARIABLES = frozenset({"APIKEYS_USAGE_URL", "APIKEYS_AUDIT_URL", "APIKEYS_ALLOW_TEST_HASHER"})
"""``APIKEYS_*`` variables that are not options: the ``apikeys`` command's own, and
the opt-in to the cheap test hasher outside tests (:mod:`apikeys.hashing`)."""
DEFAULT_DATABASE_URL = "sqlite:///apikeys.db"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def env_name(field: str) -> str:
    """The environment variable (and Flask config key) of a field: ``APIKEYS_PREFIX``."""
    return ENV_PREFIX + field.upper()


_DAYS_CLOCK = re.compile(r"(\d+) (\d{1,2}:\d\d(?::\d\d(?:\.\d+)?)?)")


def _named(field: str) -> str:
    """How an error names an option: ``prefix (APIKEYS_PREFIX)``."""
    return f"{field} ({env_name(field)})"


def _duration(value: Any, *, allow_zero: bool) -> Any:
    """A compact duration (``"90d"``) or seconds given as text; anything else is left
    to pydantic (a ``timedelta``, a number of seconds, ISO 8601 ``"P90D"``)."""
    if isinstance(value, str):
        text = value.strip()
        if _values.is_compact_duration(text):
            return _values.parse_duration(text, allow_zero=allow_zero)
        days = _DAYS_CLOCK.fullmatch(text)
        if days:  # Django's "1 12:00:00"
            return f"{days[1]} days, {days[2]}"
        try:
            return timedelta(seconds=float(text))
        except (ValueError, OverflowError):
            pass
        if text.upper().lstrip("+-").startswith("P") or ":" in text:
            return text  # ISO 8601 or [D,] HH:MM:SS, read by pydantic
        raise InvalidArgument(
            f"invalid duration {text[:40]!r}: use e.g. 90d, 1d12h, a number of seconds "
            "or ISO 8601 (P90D)"
        )
    return value


def _text_or_none(value: Any) -> Any:
    """An empty or blank string means "off" (how an environment variable says None)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class Settings(BaseModel):
    """Every option of apikeys, validated once (frozen; unknown options are refused).

    Each front end reads the same names: the environment variable and Flask config
    key are ``APIKEYS_`` + the upper-cased field name (``APIKEYS_DATABASE_URL``),
    Django's ``APIKEYS`` dict uses the upper-cased name (``DATABASE_URL``). Lists
    may be given as one comma-separated string; durations as ``timedelta``,
    seconds, ``"90d"``/``"1d12h"`` or ISO 8601 (``"P90D"``).

    Attributes:
        database_url: The key store (see :func:`~apikeys.storage.store_from_url`).
        prefix: Accepted key prefixes; the first is the one new keys get.
        hasher: ``argon2`` (default), ``hmac`` (with ``hmac_peppers``) or
            ``argon2-test`` (cheap, for tests only).
        hmac_peppers: Peppers of the ``hmac`` hasher, oldest first (never shown).
        default_expiry: Lifetime of keys issued by the CLI and the admin (``None``: never).
        rotation_grace: How long a key rotated by the CLI or the admin keeps working.
        authorization_header: Header carrying ``Bearer <key>`` (``None``: off).
        api_key_header: Header carrying the bare key (``None``: off).
        query_param: Query parameter carrying the key (``None``, the default: off).
        trusted_proxies: Reverse proxies whose ``X-Forwarded-For`` is believed.
        realm: The ``realm`` of ``WWW-Authenticate`` challenges.
        require_https: Refuse keys presented over plain HTTP.
        https_exempt_loopback: With ``require_https``, let loopback clients use HTTP.
        monitoring: Record usage and the audit trail in the key database.
        rate_limits: Default limits of every key without its own (``"100/minute"``).
        redis_url: Where rate-limit counters live (``None``: in the process).
        cache_invalidation: The channel of a record cache (``postgresql://`` or
            ``redis://``); ``None``: no cache.
        cache_max_staleness: How stale a cached record may be at most.

    Raises:
        ConfigurationError: an unknown option or an invalid value, naming the option.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)

    database_url: str = DEFAULT_DATABASE_URL
    prefix: tuple[str, ...] = ()
    hasher: Literal["argon2", "argon2-test", "hmac"] = "argon2"
    hmac_peppers: tuple[SecretStr, ...] = ()
    default_expiry: timedelta | None = None
    rotation_grace: timedelta = timedelta(0)
    authorization_header: str | None = "Authorization"
    api_key_header: str | None = "X-API-Key"
    query_param: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    realm: str = "api"
    require_https: bool = False
    https_exempt_loopback: bool = True
    monitoring: bool = True
    rate_limits: tuple[str, ...] = ()
    redis_url: str | None = None
    cache_invalidation: str | None = None
    cache_max_staleness: timedelta = Field(default=timedelta(milliseconds=100))

    OPTIONS: ClassVar[tuple[str, ...]]
    """Every option name (filled in below, from the fields)."""

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as exc:
            raise _configuration_error(exc) from None

    # --- validation ---------------------------------------------------------------------

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, value: Any) -> Any:
        if isinstance(value, str) and "://" not in value:
            raise InvalidArgument("must be a URL such as sqlite:///apikeys.db")
        return value

    @field_validator("prefix", mode="before")
    @classmethod
    def _check_prefix(cls, value: Any) -> Any:
        return _values.parse_prefixes(value)

    @field_validator("hasher", mode="before")
    @classmethod
    def _check_hasher(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("hmac_peppers", mode="before")
    @classmethod
    def _check_peppers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(p for p in value.split(",") if p)
        if isinstance(value, list | tuple):
            return tuple(p.get_secret_value() if isinstance(p, SecretStr) else p for p in value)
        return value

    @field_validator("trusted_proxies", "rate_limits", mode="before")
    @classmethod
    def _check_list(cls, value: Any) -> Any:
        return () if value is None else _values.split_list(value)

    @field_validator("default_expiry", mode="before")
    @classmethod
    def _check_expiry(cls, value: Any) -> Any:
        return _duration(_text_or_none(value), allow_zero=False)

    @field_validator("rotation_grace", "cache_max_staleness", mode="before")
    @classmethod
    def _check_duration(cls, value: Any) -> Any:
        return _duration(value, allow_zero=True)

    @field_validator("default_expiry", "rotation_grace", "cache_max_staleness")
    @classmethod
    def _check_sign(cls, value: timedelta | None, info: Any) -> timedelta | None:
        if value is not None:
            if value < timedelta(0):
                raise InvalidArgument("must not be negative")
            if info.field_name == "default_expiry" and value == timedelta(0):
                raise InvalidArgument("must be more than zero (or None: never expire)")
        return value

    @field_validator(
        "authorization_header",
        "api_key_header",
        "query_param",
        "redis_url",
        "cache_invalidation",
        mode="before",
    )
    @classmethod
    def _check_optional_text(cls, value: Any) -> Any:
        return _text_or_none(value)

    @field_validator("authorization_header", "api_key_header", "query_param")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and (value != value.strip() or any(c in value for c in ":\r\n")):
            raise InvalidArgument("must be a header or parameter name")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise InvalidArgument(f"{network[:64]!r} is not an address or network") from None
        return value

    @field_validator("realm")
    @classmethod
    def _check_realm(cls, value: str) -> str:
        if not value or '"' in value or "\\" in value or not value.isprintable():
            raise InvalidArgument("must be non-empty, printable, without quotes or backslashes")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _check_rates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from apikeys.ratelimit import _rules

        try:
            _rules.parse_rates(value)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is not None and not is_redis_url(value):
            raise InvalidArgument(f"must be a Redis URL ({', '.join(REDIS_SCHEMES)})")
        return value

    @field_validator("cache_invalidation")
    @classmethod
    def _check_invalidation(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(_POSTGRES_SCHEMES) or is_redis_url(value)):
            raise InvalidArgument("must be a postgresql:// or redis:// URL")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        if (self.authorization_header, self.api_key_header, self.query_param) == (None,) * 3:
            raise ValueError(
                f"{_named('api_key_header')}: enable at least one place to read the key "
                "from (authorization_header, api_key_header or query_param)"
            )
        if self.hasher == "hmac":
            self.make_hasher()
        elif self.hmac_peppers:
            raise ValueError(f"{_named('hmac_peppers')}: set only with hasher = 'hmac'")
        return self

    # --- loading ------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings in ``APIKEYS_*`` environment variables.

        An ``APIKEYS_*`` variable that names no option is refused, as an unknown
        Flask or Django key is (a typo would otherwise be ignored silently), except
        the command line's own :data:`CLI_VARIABLES`. An empty variable means the
        option's "off" value where it has one (``APIKEYS_QUERY_PARAM=``).

        Args:
            environ: The variables (default: ``os.environ``).
            **overrides: Options that win over the environment (the CLI's flags);
                ``None`` values are ignored.

        Raises:
            ConfigurationError: an unknown variable or an invalid value, naming it.
        """
        env = os.environ if environ is None else environ
        values = {
            k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and k not in CLI_VARIABLES
        }
        settings = cls.from_mapping(values, key_prefix=ENV_PREFIX, overrides=overrides)
        return settings

    @classmethod
    def from_mapping(
        cls,
        options: Mapping[str, Any],
        *,
        key_prefix: str = "",
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings from upper-case option names (a Flask config, Django's ``APIKEYS``).

        Args:
            options: ``{key_prefix + NAME: value}``; keys without ``key_prefix``
                are ignored, and ``None`` or a blank string means "not set" for
                options that have no "off" value (``DATABASE_URL``, ``PREFIX``...).
            key_prefix: ``"APIKEYS_"`` for a Flask config, ``""`` for Django.
            overrides: Options (field names) that win; ``None`` values are ignored.

        Raises:
            ConfigurationError: an unknown option (a typo would otherwise be ignored
                silently) or an invalid value.
        """
        values: dict[str, Any] = {}
        for key, value in options.items():
            if not key.startswith(key_prefix):
                continue
            name = key[len(key_prefix) :]
            if name != name.upper() or name.lower() not in cls.OPTIONS:
                raise ConfigurationError(
                    f"unknown apikeys option {key!r}; known: "
                    + ", ".join(key_prefix + n.upper() for n in cls.OPTIONS)
                )
            blank = value is None or (isinstance(value, str) and not value.strip())
            if blank and name.lower() not in _NULLABLE:
                continue  # "not set" for options that have no "off" value
            values[name.lower()] = value
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)

    # --- what the settings build --------------------------------------------------------

    @property
    def issuing_prefix(self) -> str | None:
        """The prefix new keys get (the first one), or ``None`` if none is set."""
        return self.prefix[0] if self.prefix else None

    @property
    def http(self) -> HTTPSettings:
        """The request layer's settings: headers, query parameter, proxies, realm,
        the transport rule."""
        from apikeys._http import HTTPSettings

        return HTTPSettings(
            authorization_header=self.authorization_header,
            api_key_header=self.api_key_header,
            query_param=self.query_param,
            trusted_proxies=self.trusted_proxies,
            realm=self.realm,
            require_https=self.require_https,
            https_exempt_loopback=self.https_exempt_loopback,
        )

    def make_hasher(self) -> Hasher:
        """The hasher named by :attr:`hasher`.

        Raises:
            ConfigurationError: ``hmac`` with missing, short or repeated peppers.
        """
        from apikeys.hashing import Argon2Hasher, HmacHasher

        if self.hasher == "argon2-test":
            return Argon2Hasher.for_tests()
        if self.hasher == "hmac":
            try:
                return HmacHasher([p.get_secret_value() for p in self.hmac_peppers])
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"invalid apikeys option {_named('hmac_peppers')}: {exc.message}"
                ) from None
        return Argon2Hasher()


Settings.OPTIONS = tuple(Settings.model_fields)
_NULLABLE = frozenset(
    name for name, info in Settings.model_fields.items() if type(None) in get_args(info.annotation)
)


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """One message naming each bad option by its field and environment name."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error.get("loc", ())
        name = str(loc[0]) if loc else ""
        message = str(error.get("msg", "invalid"))
        for noise in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(noise)
        if error.get("type") == "extra_forbidden":
            problems.append(
                f"unknown apikeys option {name!r}; known: {', '.join(Settings.OPTIONS)}"
            )
        elif name:
            problems.append(f"invalid apikeys option {_named(name)}: {message}")
        else:
            invalid = message.startswith("invalid")
            problems.append(message if invalid else f"invalid apikeys option {message}")
    return ConfigurationError("; ".join(problems))


__all__ = ["DEFAULT_DATABASE_URL", "Settings", "env_name"]
