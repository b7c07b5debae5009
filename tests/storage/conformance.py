"""The conformance suite's record helpers, for the project's store tests.

The suite itself ships in the package: :class:`apikeys.testing.StoreConformance`.
"""

from apikeys.testing._conformance import HOUR, NOW, bumped, every_id, key_id, record

__all__ = ["HOUR", "NOW", "bumped", "every_id", "key_id", "record"]
