"""The delivery worker's two writes, each as one PostgreSQL statement.

An attempt writes twice: the claim with its ledger row (committed together
before any byte leaves), and the outcome with the ledger row's completion.
Through the ORM that is five statements in two transactions, and compiling
them cost a quarter of an attempt's CPU, paid under the one GIL that a
threads-pool worker shares with every delivery in flight (bench/delivery.py,
docs/delivery.md). Here each is one prepared statement
(psyfi_review.compiled_reads.prepared_cursor) with the same conditions:
the claim moves only a claimable, due row; the outcome lands only for the
claimant (state `sending`, its attempt count).

Other databases (the demo's SQLite) take the ORM path in
integrations.services.delivery, which writes the same rows; the suite runs
both (tests/delivery/test_outbox_statements.py)."""

from datetime import datetime
from functools import cache

from django.db import connection

from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_event_appended, audit_pg_append_params, audit_pg_append_sql
from integrations.models import Delivery, DeliveryAttempt
from psyfi_review.compiled_reads import prepared_cursor

S = Delivery.State
CLAIMABLE = (S.PENDING, S.RETRYING, S.UNKNOWN)
TAKEN_OVER = " (row was taken over by the sweeper)"

_DELIVERY = Delivery._meta.db_table
_ATTEMPT = DeliveryAttempt._meta.db_table
_CHAIN_HEAD = AuditChainHead._meta.db_table

# A data-modifying CTE: the ledger row is inserted only when the claim moved
# the row, and both commit as one statement (autocommit) or with the caller's
# transaction.
_CLAIM = f"""
WITH claimed AS (
    UPDATE {_DELIVERY}
    SET state = %(sending)s, attempts = attempts + 1,
        first_attempt_at = COALESCE(first_attempt_at, %(now)s), updated_at = %(now)s
    WHERE id = %(delivery_id)s AND state = ANY(%(claimable)s)
        AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
    RETURNING id, attempts
)
INSERT INTO {_ATTEMPT} (delivery_id, number, started_at, finished_at, outcome, http_status, ehr_id, detail)
SELECT id, attempts, %(now)s, NULL, %(sending)s, NULL, '', '' FROM claimed
RETURNING id, number
"""  # noqa: S608 - table names from the models, values are parameters


def claim(*, delivery_id: int, now: datetime) -> DeliveryAttempt | None:
    """Claim the row (pending/retrying/unknown and due -> sending, one more
    attempt) and write its ledger row as `sending`, in one statement. The
    ledger row, or None when the row was not claimable."""
    params = {"delivery_id": delivery_id, "now": now, "sending": S.SENDING, "claimable": list(CLAIMABLE)}
    with prepared_cursor(connection) as cursor:
        cursor.execute(_CLAIM, params)
        row = cursor.fetchone()
    if row is None:
        return None
    attempt_id, number = row
    return DeliveryAttempt.from_db(
        connection.alias,
        ["id", "delivery_id", "number", "started_at", "finished_at", "outcome", "http_status", "ehr_id", "detail"],
        [attempt_id, delivery_id, number, now, None, DeliveryAttempt.Outcome.SENDING, None, "", ""],
    )


def _sets(columns: tuple[str, ...]) -> str:
    return ", ".join(f"{Delivery._meta.get_field(name).column} = %(d_{name})s" for name in columns)


# The ledger row's completion; `moved` names the CTE of the delivery's update.
_LEDGER_SET = """finished_at = %(a_finished_at)s, outcome = %(a_outcome)s, http_status = %(a_http_status)s,
    ehr_id = %(a_ehr_id)s,
    detail = %(a_detail)s::text || CASE WHEN EXISTS (SELECT 1 FROM {moved}) THEN '' ELSE %(taken_over)s::text END"""


@cache
def _record_sql(columns: tuple[str, ...]) -> str:
    """The outcome statement for one set of delivery columns (a handful of
    shapes: delivered, retrying, failed...), each prepared once per connection."""
    return f"""
WITH moved AS (
    UPDATE {_DELIVERY} SET {_sets(columns)}
    WHERE id = %(delivery_id)s AND state = %(sending)s AND attempts = %(attempts)s
    RETURNING id
)
UPDATE {_ATTEMPT} SET {_LEDGER_SET.format(moved="moved")}
WHERE id = %(attempt_id)s
RETURNING EXISTS (SELECT 1 FROM moved)
"""  # noqa: S608 - table and column names from the models, values are parameters


@cache
def _record_audited_sql(columns: tuple[str, ...]) -> str:
    """_record_sql's writes with the attempt's audit event appended to the
    practice's chain (audit.services.audit_pg_append_sql) when the delivery
    row moved. Nothing is written when the practice has no chain head yet."""
    chain = f"EXISTS (SELECT 1 FROM {_CHAIN_HEAD} WHERE practice_id = %(practice_id)s)"  # noqa: S608 - a model table
    ctes = f"""delivery_moved AS (
    UPDATE {_DELIVERY} SET {_sets(columns)}
    WHERE id = %(delivery_id)s AND state = %(sending)s AND attempts = %(attempts)s AND {chain}
    RETURNING id
), ledger AS (
    UPDATE {_ATTEMPT} SET {_LEDGER_SET.format(moved="delivery_moved")}
    WHERE id = %(attempt_id)s AND {chain}
    RETURNING id
),"""  # noqa: S608 - table and column names from the models, values are parameters
    return audit_pg_append_sql(
        ctes=ctes,
        when="EXISTS (SELECT 1 FROM delivery_moved)",
        select="SELECT EXISTS (SELECT 1 FROM delivery_moved), EXISTS (SELECT 1 FROM ledger), "
        "ins.id, ins.seq, ins.prev_hash, ins.hash FROM (SELECT 1) AS one LEFT JOIN ins ON true",
    )


def _record_params(delivery: Delivery, attempt: DeliveryAttempt, fields: dict) -> dict:
    params = {f"d_{name}": value for name, value in fields.items()}
    params.update(
        delivery_id=delivery.pk,
        sending=S.SENDING,
        attempts=delivery.attempts,
        attempt_id=attempt.pk,
        a_finished_at=attempt.finished_at,
        a_outcome=attempt.outcome,
        a_http_status=attempt.http_status,
        a_ehr_id=attempt.ehr_id,
        a_detail=attempt.detail,
        taken_over=TAKEN_OVER,
    )
    return params


def record(*, delivery: Delivery, attempt: DeliveryAttempt, fields: dict) -> bool:
    """Write the outcome's delivery fields if this worker still holds the
    claim, and complete the ledger row from the attempt's in-memory values
    (noting a takeover, in the row and on `attempt`), in one statement.
    Whether the delivery row moved."""
    with prepared_cursor(connection) as cursor:
        cursor.execute(_record_sql(tuple(sorted(fields))), _record_params(delivery, attempt, fields))
        row = cursor.fetchone()
    if row is None:
        raise DeliveryAttempt.DoesNotExist(f"Ledger row {attempt.pk} of delivery {delivery.pk} is gone.")
    if not row[0]:
        attempt.detail += TAKEN_OVER
    return bool(row[0])


def record_audited(*, delivery: Delivery, attempt: DeliveryAttempt, fields: dict, event: AuditEvent) -> bool | None:
    """record() and the attempt's audit event (built, not yet appended) as
    one statement, so the practice's audit chain head is locked only while
    PostgreSQL runs it and commits: no round trip, and no wait for a busy
    worker's GIL, while other deliveries queue for the same lock. Whether
    the delivery row moved (the event is appended only then, and `event`
    becomes the stored row; a takeover is noted on `attempt` as in its row); None when nothing was written because the
    practice has no audit chain yet (audit_record starts one)."""
    params = _record_params(delivery, attempt, fields)
    params.update(audit_pg_append_params(event))
    with prepared_cursor(connection) as cursor:
        cursor.execute(_record_audited_sql(tuple(sorted(fields))), params)
        moved, completed, *appended = cursor.fetchone()
    if not completed:
        return None
    if moved:
        audit_event_appended(event, appended)
    else:
        attempt.detail += TAKEN_OVER
    return moved
