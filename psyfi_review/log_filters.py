"""Keep clinical text out of the logs when the database refuses a statement.

A PostgreSQL error carries what it refused: the primary message quotes the
bad value ('invalid input syntax for type integer: "..."'), DETAIL and
CONTEXT quote the row or the JSON around it ('CONTEXT: JSON data, line 1:
...she was assaulted by her uncle"'), and the statement with its values
rides along. Django's request logger logs the exception with its traceback,
so one failed intake wrote a client's disclosure to the web log.

DatabaseErrorFilter, on every handler (settings.LOGGING, and the Celery
worker's handlers via psyfi_review.celery), rewrites such a record before it
is formatted: the traceback keeps its frames (where it failed) but every
exception in the chain is shown by class only, and a database error by
class and SQLSTATE. Log arguments that are database errors are replaced the
same way. The record is changed in place, so handlers that see it after
this one (another handler of the same logger, a test's capture) get the
redacted text as well.
"""

import logging
import traceback
from collections.abc import Iterator

import psycopg
from django.db import Error as DjangoDatabaseError

DATABASE_ERRORS = (DjangoDatabaseError, psycopg.Error)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and the exceptions it was raised from or during, newest first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ if exc.__cause__ is not None else (None if exc.__suppress_context__ else exc.__context__)


def is_database_error(exc: BaseException | None) -> bool:
    return exc is not None and any(isinstance(e, DATABASE_ERRORS) for e in _chain(exc))


def _sqlstate(exc: BaseException) -> str | None:
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None)
        if state:
            return state
    return None


def database_error_summary(exc: BaseException) -> str:
    """'django.db.utils.DataError (SQLSTATE 22P02)': what failed, nothing of the data."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    state = _sqlstate(exc)
    return f"{kind} (SQLSTATE {state})" if state else kind


def redacted_traceback(exc: BaseException) -> str:
    """The traceback of exc and its chain, oldest first as Python prints it,
    with each exception's message withheld."""
    chain = list(_chain(exc))
    parts = []
    for i, e in enumerate(reversed(chain)):
        if i:  # how e relates to the older exception printed before it
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if e.__cause__ is not None
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if e.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(e.__traceback__))
        parts.append(f"{database_error_summary(e)}: [message withheld: it may quote clinical data]\n")
    return "".join(parts).rstrip("\n")


class DatabaseErrorFilter(logging.Filter):
    """Redacts database errors in a record (see the module docstring); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if is_database_error(exc):
            record.exc_text = redacted_traceback(exc)
            record.exc_info = None  # the formatter would render the original again
        if isinstance(record.msg, BaseException) and is_database_error(record.msg):
            record.msg = database_error_summary(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
            record.args = tuple(
                database_error_summary(a) if isinstance(a, BaseException) and is_database_error(a) else a
                for a in record.args
            )
        elif isinstance(record.args, dict):
            record.args = {
                k: database_error_summary(a) if isinstance(a, BaseException) and is_database_error(a) else a
                for k, a in record.args.items()
            }
        return True


def handlers_filter_database_errors(logger: logging.Logger) -> None:
    """Put DatabaseErrorFilter on logger's handlers (for handlers set up
    outside settings.LOGGING, such as a Celery worker's)."""
    for handler in logger.handlers:
        if not any(isinstance(f, DatabaseErrorFilter) for f in handler.filters):
            handler.addFilter(DatabaseErrorFilter())
