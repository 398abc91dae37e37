"""deploy/migrate.sh, compose's one-shot `migrate`, run for real against a
fresh PostgreSQL database: it migrates as the owner, applies the role split
and gives the application's role its password, after which the application
logs in as that role, reads and writes rows, and cannot rewrite the audit log."""

import os
import secrets
import subprocess
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_database(django_db_setup, django_db_blocker):
    db = connection.settings_dict
    server = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"])
    name, role = f"{db['NAME']}_migrate_step", f"{db['NAME']}_migrate_app"
    admin = psycopg.connect(dbname="postgres", autocommit=True, **server)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server, name, role
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_the_migrate_step_migrates_and_leaves_the_app_a_role_that_cannot_rewrite_the_audit_log(fresh_database):
    server, name, role = fresh_database
    password = secrets.token_urlsafe(16)
    auth = server["user"] + (f":{server['password']}" if server["password"] else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PSYFI_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "PATH": f"{ROOT / '.venv/bin'}:{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
            "OWNER_DATABASE_URL": f"postgres://{auth}@{server['host']}:{server['port']}/{name}",
            "PSYFI_DB_OWNER_ROLE": server["user"],
            "PSYFI_DB_APP_ROLE": role,
            "PSYFI_DB_NAME": name,
            "PSYFI_APP_DB_PASSWORD": password,
            "SECRET_KEY": "migrate-step-" + "k" * 50,
            "ALLOWED_HOSTS": "example.org",
            "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            "PSYFI_IDENTIFIER_SYSTEM": "https://example.org/note-id",
        }
    )
    run = subprocess.run(["deploy/migrate.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]

    app = psycopg.connect(
        dbname=name, host=server["host"], port=server["port"], user=role, password=password, autocommit=True
    )
    try:
        assert app.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER ALL")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("DELETE FROM audit_auditevent")
    finally:
        app.close()
    # Idempotent: an upgrade runs it again.
    again = subprocess.run(["deploy/migrate.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
