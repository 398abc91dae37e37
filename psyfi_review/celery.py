"""The Celery app. The broker is whatever settings say: Redis in production
and tests, kombu's filesystem transport in the single-box demo."""

import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings")

app = Celery("psyfi_review")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="psyfi_review.ping", ignore_result=False)
def ping() -> str:
    """Answers "pong": lets an operator (and the tests) see that a worker is
    consuming from the configured broker."""
    return "pong"


@signals.worker_init.connect
def keep_database_connections(**kwargs) -> None:
    """A worker runs task after task: its database connection lives for
    WORKER_CONN_MAX_AGE seconds and is checked before reuse (Django's
    CONN_HEALTH_CHECKS), as a web process's would be between requests.
    Settings: CELERY_DB_REUSE_MAX stops Celery's fix-up closing it around
    every task; a fresh PostgreSQL backend per delivery, with cold catalog
    caches, cost more than the delivery's own queries. Runs in the worker's
    main process, before the pool forks."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        database["CONN_MAX_AGE"] = settings.WORKER_CONN_MAX_AGE
        database["CONN_HEALTH_CHECKS"] = True


# A connection that finished a task this recently (and was found usable
# then) is not asked "SELECT 1" before the next: a worker busy delivering
# would pay that round trip on every task for a connection it used a moment ago.
HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0


@signals.task_prerun.connect
@signals.task_postrun.connect
def tidy_database_connections(task=None, signal=None, **kwargs) -> None:
    """What Django does around each web request, around each task: drop a
    connection that failed and no longer answers, one left outside
    autocommit, or one past its age; otherwise ask for a health check before
    the next query, so a connection the server dropped while the worker was
    idle is replaced instead of failing the task. Not after a task that ended
    within HEALTH_CHECK_AFTER_IDLE_SECONDS on the same connection."""
    from django.db import connections

    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by its caller, inside the caller's connection and transaction
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            continue
        conn.close_if_unusable_or_obsolete()
        if conn.connection is None:
            continue
        if signal is signals.task_postrun:
            conn.psyfi_tidied_at = now
        elif now - getattr(conn, "psyfi_tidied_at", float("-inf")) < HEALTH_CHECK_AFTER_IDLE_SECONDS:
            conn.health_check_done = True


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def filter_database_errors(logger=None, **kwargs) -> None:
    """A worker logs through the handlers Celery sets up, not settings.LOGGING's:
    they keep clinical text out of database errors too (psyfi_review/log_filters.py)."""
    from django.conf import settings

    from psyfi_review.log_filters import handlers_filter_database_errors

    if logger is not None:
        handlers_filter_database_errors(logger)
        if getattr(settings, "LOG_FORMAT", "text") == "json":
            from operations.logs import handlers_format_json

            handlers_format_json(logger)
