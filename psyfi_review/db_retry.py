"""Retry a transaction once when PostgreSQL aborted it for a deadlock or a
serialization failure.

Locks are taken in one order everywhere (see notes/services.py: note rows,
then the client's consent row, then section and flag rows, and the practice's
audit chain head last, since audit_record is every transaction's last write),
and only the rows that change are locked, with FOR NO KEY UPDATE so that rows
inserted meanwhile may still reference them. That leaves no deadlock we know
of; this is the safety net for one we do not, so that a clinician's click or a
delivery does not fail with a database error.
"""

import functools
import logging

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

# SQLSTATEs after which the whole transaction may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def conflict_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a deadlock or serialization failure, else None."""
    state = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)
    return state if state in RETRYABLE_SQLSTATES else None


def retry_once_on_conflict(func):
    """Run func (itself a transaction.atomic function) again once if the
    database aborted it for a deadlock or serialization failure. Inside an
    outer transaction there is nothing to retry: the outer one was aborted
    too, so the error goes to its owner."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        try:
            return func(*args, **kwargs)
        except OperationalError as exc:
            state = conflict_sqlstate(exc)
            if state is None:
                raise
            logger.warning("%s: transaction aborted (SQLSTATE %s), retrying once", func.__qualname__, state)
            return func(*args, **kwargs)

    return wrapper
