"""Run a transaction again when PostgreSQL aborted it for a deadlock or a
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
import random
import time

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

# SQLSTATEs after which the whole transaction may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure

# Runs after the first. Each waits a jittered pause first: the victim's locks
# are released at the abort, and a retry that starts at once can take a lock
# back before the surviving transaction (woken by the abort) gets it, which is
# the same deadlock again. The pause lets the survivor finish first.
CONFLICT_RETRIES = 2
CONFLICT_PAUSE_SECONDS = (0.02, 0.08)


def conflict_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a deadlock or serialization failure, else None."""
    state = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)
    return state if state in RETRYABLE_SQLSTATES else None


def retry_on_conflict(func):
    """Run func (itself a transaction.atomic function) again, up to
    CONFLICT_RETRIES times after a jittered pause, if the database aborted it
    for a deadlock or serialization failure. Inside an outer transaction there
    is nothing to retry: the outer one was aborted too, so the error goes to
    its owner."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        for retry in range(CONFLICT_RETRIES + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                state = conflict_sqlstate(exc)
                if state is None or retry == CONFLICT_RETRIES:
                    raise
                logger.warning("%s: transaction aborted (SQLSTATE %s), running it again", func.__qualname__, state)
                time.sleep(random.uniform(*CONFLICT_PAUSE_SECONDS) * (retry + 1))

    return wrapper
