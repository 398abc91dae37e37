"""Settings come from the environment; production passes check --deploy."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, env_extra: dict, drop: tuple = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PSYFI_TEST")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_profile_passes_check_deploy_without_warnings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_extra={
            "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
            "SECRET_KEY": "x" * 20 + "production-secret-with-enough-entropy-1234567890",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/psyfi",
            "ALLOWED_HOSTS": "notes.example.org",
            "PSYFI_CREDENTIALS_KEYS": "Bo8xbHk7J1sUIg6bEsYNCmxfCylbh1p_w4Yh7kNSA3w=",
            "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.org/fhir/note-id",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage(
        "check",
        env_extra={
            "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
            "DATABASE_URL": "sqlite:///x.sqlite3",
            "ALLOWED_HOSTS": "a.example",
        },
        drop=("SECRET_KEY",),
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_a_malformed_setting_stops_start_up_with_its_name():
    result = _manage(
        "check", env_extra={"DJANGO_SETTINGS_MODULE": "psyfi_review.settings", "IDLE_TIMEOUT_MINUTES": "fifteen"}
    )
    assert result.returncode != 0 and "fifteen" in result.stderr


def test_the_default_profile_needs_no_server():
    """Nothing set: SQLite and the filesystem broker (the `make run` demo)."""
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='psyfi_review.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env["PSYFI_VAR_DIR"] = "/tmp/psyfi-settings-test"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["django.db.backends.sqlite3", "filesystem://", "False"], out.stderr


def test_in_ci_a_missing_database_is_a_failure_not_a_fallback():
    code = "import psyfi_review.settings_test"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"CI": "true", "PSYFI_TEST_PG_ADDR": "127.0.0.1:9"})
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "PostgreSQL does not answer" in out.stderr
