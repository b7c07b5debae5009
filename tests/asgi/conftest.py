"""Fixtures of the generic ASGI adapter tests come from ``tests/web_battery.py``."""

import pytest

pytest.register_assert_rewrite("web_battery")
