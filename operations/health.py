"""Liveness and readiness, for a load balancer, an orchestrator or compose.

`/healthz` says only that the process answers. `/readyz` says whether this
process can do its work: the database answers, the broker answers, and
every migration of this code is applied (a web process started before
`migrate` ran would fail on the first new column). Both are
unauthenticated, so they answer with check names and "ok"/"failed" only:
no exception text (a broker URL carries its password), nothing of a note.
"""

import logging

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

logger = logging.getLogger(__name__)

# Once every migration is applied it stays so for this code; loading the
# migration graph on every probe would cost each probe a fraction of a second.
_migrations_applied = False


def database_check() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def broker_check() -> None:
    """Opens a connection to the Celery broker (Redis, RabbitMQ, or the demo's
    filesystem transport) and a channel on it; raises if either fails."""
    from psyfi_review.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        conn.default_channel  # noqa: B018 - opening the channel is the check (Redis: a PING)


def migrations_check() -> None:
    global _migrations_applied
    if _migrations_applied:
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if unapplied:
        raise RuntimeError(f"{len(unapplied)} migrations not applied")
    _migrations_applied = True


READINESS_CHECKS = {"database": database_check, "broker": broker_check, "migrations": migrations_check}


def readiness() -> dict[str, str]:
    """Each check's name and "ok" or "failed". A check after a failed
    database check still runs: the answer should name everything that is down."""
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            # The class only: a message can carry a URL with its password.
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return results


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    checks = readiness()
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
