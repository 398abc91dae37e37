import os

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client as DjangoClient

from tests.factories import PASSWORD, World, totp_now, world_factory


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://")[0]
    return f"psyfi-review tests: database={engine} broker={broker} CI={os.environ.get('CI', '')}"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Every test starts with no rate-limit or refused-key counters (they live
    in the shared cache, Redis in tests). Only the cache's own keys go: the
    Celery broker may share the Redis database."""
    location = settings.CACHES["default"]
    if location["BACKEND"].endswith("RedisCache"):
        client = redis.Redis.from_url(location["LOCATION"])
        try:
            keys = list(client.scan_iter(match=f"{location['KEY_PREFIX']}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    else:
        cache.clear()


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
