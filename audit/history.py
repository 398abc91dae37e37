"""Who made a change, for django-simple-history, outside a web request.

In a request, simple_history's HistoryRequestMiddleware exposes the request
and its user (for DRF views too: DRF writes the user it authenticated back
onto the Django request). A Celery task or a management command has no
request, so its history rows would have no user. Two remedies:

- `history_user(user)`: a context manager for code that knows its acting
  person (a task that loads the actor by id and calls a service);
- the acting user travels with every task enqueued while one is known (in a
  request or inside `history_user`): a message header set on publish, read
  back by the worker around the task's run.
"""

from contextlib import contextmanager
from dataclasses import dataclass

from celery.signals import before_task_publish, task_postrun, task_prerun
from simple_history.models import HistoricalRecords

HEADER = "psyfi_acting_user"
_MISSING = object()


@dataclass(frozen=True)
class _ActingRequest:
    """Stands in for the request simple_history looks for: it reads .user only."""

    user: object


def history_acting_user():
    """The authenticated user history rows are attributed to now, or None."""
    user = getattr(getattr(HistoricalRecords.context, "request", None), "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def _set(request):
    previous = getattr(HistoricalRecords.context, "request", _MISSING)
    HistoricalRecords.context.request = request
    return previous


def _restore(previous) -> None:
    if previous is _MISSING:
        try:
            del HistoricalRecords.context.request
        except AttributeError:
            pass
    else:
        HistoricalRecords.context.request = previous


@contextmanager
def history_user(user):
    """Attribute every history row written inside the block to user."""
    previous = _set(_ActingRequest(user))
    try:
        yield
    finally:
        _restore(previous)


@before_task_publish.connect(dispatch_uid="audit.history.publish")
def _history_user_to_header(headers=None, **kwargs) -> None:
    user = history_acting_user()
    if user is not None and headers is not None and HEADER not in headers:
        headers[HEADER] = user.pk


def _header(task):
    request = task.request
    value = getattr(request, HEADER, None)
    if value is None:  # Task.apply (eager) keeps headers in a dict of their own
        value = (getattr(request, "headers", None) or {}).get(HEADER)
    return value


@task_prerun.connect(dispatch_uid="audit.history.prerun")
def _history_user_from_header(task=None, **kwargs) -> None:
    user_id = _header(task) if task is not None else None
    if user_id is None:
        return
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is not None:
        task.request._psyfi_history_previous = _set(_ActingRequest(user))


@task_postrun.connect(dispatch_uid="audit.history.postrun")
def _history_user_reset(task=None, **kwargs) -> None:
    previous = getattr(task.request, "_psyfi_history_previous", None) if task is not None else None
    if previous is not None:
        _restore(previous)
        task.request._psyfi_history_previous = None
