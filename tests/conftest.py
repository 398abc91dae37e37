import os

import pytest
from django.conf import settings
from django.test import Client as DjangoClient

from tests.factories import PASSWORD, World, totp_now, world_factory


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://")[0]
    return f"psyfi-review tests: database={engine} broker={broker} CI={os.environ.get('CI', '')}"


@pytest.fixture
def world(db) -> World:
    return world_factory()


def login(user) -> DjangoClient:
    """A browser session that passed password and OTP through the real login form."""
    client = DjangoClient()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD, "otp_token": totp_now(user)})
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def login_as():
    return login
