"""Test profile: real PostgreSQL and Redis when they answer on their standard
local ports (as on the dev machines and in CI); with CI=true a missing service
stops the run instead of falling back."""

import os
import socket
import tempfile

from django.core.exceptions import ImproperlyConfigured


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Where to look for the services (overridable so the "missing service" rule is testable).
_pg_host, _pg_port = os.environ.get("PSYFI_TEST_PG_ADDR", "127.0.0.1:5432").rsplit(":", 1)
_redis_host, _redis_port = os.environ.get("PSYFI_TEST_REDIS_ADDR", "127.0.0.1:6379").rsplit(":", 1)
if "DATABASE_URL" not in os.environ:
    if _answers(_pg_host, int(_pg_port)):
        os.environ["DATABASE_URL"] = f"postgres://postgres@{_pg_host}:{_pg_port}/psyfi"
    elif _in_ci:
        raise ImproperlyConfigured(f"CI=true but PostgreSQL does not answer on {_pg_host}:{_pg_port}")
if "REDIS_URL" not in os.environ:
    if _answers(_redis_host, int(_redis_port)):
        os.environ["REDIS_URL"] = f"redis://{_redis_host}:{_redis_port}/" + os.environ.get("PSYFI_TEST_REDIS_DB", "5")
    elif _in_ci:
        raise ImproperlyConfigured(f"CI=true but Redis does not answer on {_redis_host}:{_redis_port}")

from psyfi_review.settings import *  # noqa: E402, F403

# The audit anchor sink and key file of this run, never the demo's in var/
# (a test's checkpoints would contradict the demo's chain, and back).
_anchor_tmp = tempfile.mkdtemp(prefix="psyfi-test-anchors-")
AUDIT_ANCHOR_DIR = os.environ.get("AUDIT_ANCHOR_DIR") or os.path.join(_anchor_tmp, "sink")
AUDIT_ANCHOR_KEY_FILE = os.environ.get("AUDIT_ANCHOR_KEY_FILE") or os.path.join(_anchor_tmp, "anchor-key.pem")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests hold no real passwords
AXES_FAILURE_LIMIT = 5
