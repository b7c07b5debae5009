"""Fixtures of the Flask adapter tests (helpers live in ``flask_support``)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_support import CLIENT_IP, Env, build_app, make_env

from apikeys.flask import APIKeys


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def app(env: Env) -> Flask:
    return build_app(APIKeys(env.manager))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client whose requests come from ``CLIENT_IP``."""
    test_client = app.test_client()
    test_client.environ_base["REMOTE_ADDR"] = CLIENT_IP
    return test_client
