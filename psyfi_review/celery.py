"""The Celery app. The broker is whatever settings say: Redis in production
and tests, kombu's filesystem transport in the single-box demo."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings")

app = Celery("psyfi_review")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="psyfi_review.ping", ignore_result=False)
def ping() -> str:
    """Answers "pong": lets an operator (and the tests) see that a worker is
    consuming from the configured broker."""
    return "pong"
