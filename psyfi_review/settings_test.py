"""Test profile: real PostgreSQL and Redis when they answer on their standard
local ports (as on the dev machines and in CI); with CI=true a missing service
stops the run instead of falling back."""

import os
import socket

from django.core.exceptions import ImproperlyConfigured


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if "DATABASE_URL" not in os.environ:
    if _answers("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/psyfi"
    elif _in_ci:
        raise ImproperlyConfigured("CI=true but PostgreSQL does not answer on 127.0.0.1:5432")
if "REDIS_URL" not in os.environ:
    if _answers("127.0.0.1", 6379):
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/" + os.environ.get("PSYFI_TEST_REDIS_DB", "5")
    elif _in_ci:
        raise ImproperlyConfigured("CI=true but Redis does not answer on 127.0.0.1:6379")

from psyfi_review.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests hold no real passwords
AXES_FAILURE_LIMIT = 5
