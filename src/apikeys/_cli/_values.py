"""Command-line values: the neutral parsers of :mod:`apikeys._values` (which raise
``InvalidArgument``, turned into exit status 2 by the command), plus JSON objects."""

from __future__ import annotations

import json
from typing import Any

from apikeys._cli._errors import UsageError
from apikeys._values import key_id_of, parse_duration, parse_instant, parse_prefixes


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object (for ``--metadata``).

    Raises:
        UsageError: not valid JSON, or not an object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"invalid JSON for --metadata: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError('--metadata must be a JSON object, e.g. \'{"team": "billing"}\'')
    return value


__all__ = ["key_id_of", "parse_duration", "parse_instant", "parse_json_object", "parse_prefixes"]
