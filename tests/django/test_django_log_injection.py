"""A request path an attacker chose cannot forge a line of the Django adapter's log."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory

from apikeys.django import problem_response
from apikeys.errors import StorageError


def test_a_hostile_path_is_logged_on_one_printable_line(caplog: pytest.LogCaptureFixture) -> None:
    request = RequestFactory().get("/orders/%0D%0AERROR%20forged%1B%5B1A%E2%80%A8x")
    assert "\r\n" in request.path  # Django hands the view the decoded path
    caplog.set_level(logging.DEBUG, logger="apikeys")
    assert problem_response(StorageError("down"), request).status_code == 503
    [record] = [r for r in caplog.records if "answered" in r.msg]
    message = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert message.isprintable()
    assert "/orders/\\x0d\\x0aERROR forged\\x1b[1A\\u2028x answered 503" in message
