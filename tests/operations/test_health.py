"""/healthz and /readyz: unauthenticated, PHI-free, and /readyz names what is
not ready (database, broker, migrations) against the real PostgreSQL and Redis."""

import pytest
from django.db import connection

from operations import health
from psyfi_review.celery import app as celery_app


@pytest.fixture(autouse=True)
def _fresh_migration_check():
    health._migrations_applied = False
    yield
    health._migrations_applied = False


def test_healthz_answers_without_login_and_for_any_host(client):
    # An orchestrator probes over plain http with its own Host header.
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_database_broker_and_migrations_are(client):
    response = client.get("/readyz", HTTP_HOST="probe.internal")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "migrations": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_unavailable_while_the_broker_does_not_answer(client):
    saved = celery_app.conf.broker_url
    # Nothing listens on port 1: a real refused connection.
    celery_app.conf.broker_url = "redis://:secret-password@127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        celery_app.conf.broker_url = saved
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "failed", "migrations": "ok"},
    }
    assert b"secret-password" not in response.content and b"127.0.0.1" not in response.content


@pytest.mark.django_db
def test_readyz_is_unavailable_while_a_migration_is_not_applied(client):
    # As if this code started before `migrate` ran: its newest audit migration
    # is not recorded (rolled back with the test's transaction).
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'audit' AND name = "
            "(SELECT max(name) FROM django_migrations WHERE app = 'audit')"
        )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "migrations": "failed"}
