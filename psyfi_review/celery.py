"""The Celery app. The broker is whatever settings say: Redis in production
and tests, kombu's filesystem transport in the single-box demo."""

import os

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


@signals.task_prerun.connect
def drop_broken_database_connections(**kwargs) -> None:
    """Workers keep their database connection between tasks (settings:
    CELERY_DB_REUSE_MAX). One that failed and no longer answers, say after a
    PostgreSQL restart, is dropped before the next task instead of failing it."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred and not conn.is_usable():
            conn.close()
