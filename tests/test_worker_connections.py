"""Celery workers keep their database connection between tasks
(CELERY_DB_REUSE_MAX), and drop one that broke before the next task."""

import pytest
from django.conf import settings
from django.db import OperationalError, connection, connections

from psyfi_review.celery import app, drop_broken_database_connections


def test_the_worker_reuses_its_database_connection_between_tasks():
    # Celery's Django fix-up closes the connection around every task unless
    # this is set; a fresh backend per delivery cost more than its queries.
    assert settings.CELERY_DB_REUSE_MAX > 0
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_closed_before_the_next_task():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    # Another session ends ours, as a PostgreSQL restart would.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.connection is not None and connection.errors_occurred

    drop_broken_database_connections()

    assert connection.connection is None
    with connection.cursor() as cursor:  # the next task connects afresh
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_a_healthy_connection_is_kept():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    kept = connection.connection
    drop_broken_database_connections()
    assert connection.connection is kept
