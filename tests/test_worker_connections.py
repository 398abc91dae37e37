"""Celery workers keep their database connection between tasks, and tidy it
around each task as Django does around a web request: a broken one is
replaced, a healthy one kept."""

import pytest
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.db import OperationalError, connection, connections

from psyfi_review.celery import (
    HEALTH_CHECK_AFTER_IDLE_SECONDS,
    app,
    keep_database_connections,
    tidy_database_connections,
)


@pytest.fixture
def worker_connection():
    """The test's connection configured as keep_database_connections
    configures a worker's (restored afterwards)."""
    saved = {k: connection.settings_dict.get(k) for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    databases = {"default": connection.settings_dict}
    original = settings.DATABASES
    settings.DATABASES = databases
    try:
        keep_database_connections()
    finally:
        settings.DATABASES = original
    connection.close()  # the next query connects with the worker's settings
    yield connection
    connection.settings_dict.update(saved)
    connection.close()


def _terminate_our_backend() -> None:
    """Another session ends ours, as a PostgreSQL restart or an idle timeout would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def test_celery_leaves_the_connection_open_between_tasks():
    # Celery's Django fix-up closes the connection around every task unless this is set.
    assert settings.CELERY_DB_REUSE_MAX > 0
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX


@pytest.mark.django_db(transaction=True)
def test_a_healthy_connection_is_kept_from_one_task_to_the_next(worker_connection):
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    kept = worker_connection.connection
    tidy_database_connections()
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert worker_connection.connection is kept


@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_while_idle_is_replaced_before_the_next_task_uses_it(worker_connection):
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    _terminate_our_backend()
    tidy_database_connections()  # the next task starts
    with worker_connection.cursor() as cursor:  # its first query does not fail
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_failed_is_closed_before_the_next_task(worker_connection):
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    _terminate_our_backend()
    with pytest.raises(OperationalError), worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert worker_connection.errors_occurred
    tidy_database_connections()
    assert worker_connection.connection is None


@pytest.mark.django_db(transaction=True)
def test_a_connection_a_task_just_used_is_not_health_checked_before_the_next(worker_connection):
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    kept = worker_connection.connection
    tidy_database_connections(signal=task_postrun)  # a task ends
    tidy_database_connections(signal=task_prerun)  # the next starts at once
    assert worker_connection.health_check_done  # no "SELECT 1" round trip first
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert worker_connection.connection is kept


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_longer_than_a_moment_is_health_checked_before_the_next_task(worker_connection):
    with worker_connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    tidy_database_connections(signal=task_postrun)
    worker_connection.psyfi_tidied_at -= HEALTH_CHECK_AFTER_IDLE_SECONDS + 0.1  # it sat idle since
    _terminate_our_backend()
    tidy_database_connections(signal=task_prerun)
    assert not worker_connection.health_check_done
    with worker_connection.cursor() as cursor:  # replaced, not failed
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
