"""Delivery throughput, end to end, beside a bare `requests` loop.

Signs N notes (their Delivery rows wait in the outbox), starts a real Celery
worker (threads, --concurrency C) and times signed -> worker -> loopback FHIR
endpoint -> delivered. Then posts the same DocumentReference payloads to the
same endpoint with a bare `requests` loop at the same concurrency. Prints
both rates; the last line is the ratio (target >= 0.7).

The endpoint is the test suite's loopback FHIR server with a write latency
(--latency-ms, default 250) standing in for a real EHR's note write, which
takes hundreds of milliseconds. Each delivery also reads the Patient first
(invariant 5) and writes its ledger row and audit event, a fixed cost of
roughly 60-100 ms on a 2-core box: against a 50 ms endpoint the ratio is
about 0.3, against 250 ms about 0.7 (threads pool) to 0.8 (prefork, Celery's
default pool and the default here).

Needs PostgreSQL and Redis on their standard local ports. Uses its own
database (psyfi_bench) and Redis db (9 unless BENCH_REDIS_DB is set).

    .venv/bin/python bench/delivery.py [--notes 200] [--concurrency 4] [--latency-ms 250] [--pool prefork]
"""

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = "psyfi_bench"
os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '9')}"
os.environ["DJANGO_SETTINGS_MODULE"] = "psyfi_review.settings_test"


def fresh_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        # A fresh database each run: the factories' names start over.
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    args = parser.parse_args()

    fresh_database()
    import django

    django.setup()
    import redis
    import requests
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from integrations.builders.fhir import documentreference_build
    from integrations.models import Delivery
    from integrations.services import delivery_mapping_document, note_input
    from tests.factories import client_factory, note_factory, note_sign_now, world_factory
    from tests.integrations.support import FakeEHR, Worker, fhir_connection

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    ehr = FakeEHR(conditional_create=True).start()
    ehr.post_delay = args.latency_ms / 1000
    world = world_factory()
    fhir_connection(world.practice, ehr.base_url)
    print(f"signing {args.notes} notes ...", flush=True)
    # Sign with the broker unused: the worker is not running yet, and the
    # rows are the outbox it will drain.
    for _ in range(args.notes):
        client = client_factory(world.practice, world.clinician)
        ehr.add_patient(client)
        note_sign_now(note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician)
    deliveries = list(Delivery.objects.filter(practice=world.practice).order_by("pk"))
    payloads = [
        documentreference_build(note_input(d), delivery_mapping_document(d), now=timezone.now()) for d in deliveries
    ]

    worker_env = {"PSYFI_DELIVERY_TIMEOUT": "10"}
    worker = Worker(Path(tempfile.mkdtemp()), worker_env, concurrency=args.concurrency, pool=args.pool)
    worker.start()
    try:
        # The nudges were queued at signing; the worker drains them now.
        started = time.perf_counter()
        while Delivery.objects.filter(practice=world.practice, state=Delivery.State.DELIVERED).count() < len(
            deliveries
        ):
            if time.perf_counter() - started > 600:
                raise SystemExit("deliveries did not finish in 10 minutes")
            time.sleep(0.05)
        pipeline_seconds = time.perf_counter() - started
    finally:
        worker.stop()

    ehr.documents.clear()
    session_local = __import__("threading").local()

    def post(payload: dict) -> None:
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        response = session.post(
            f"{ehr.base_url}/DocumentReference",
            json=payload,
            headers={"Content-Type": "application/fhir+json", "Prefer": "return=representation"},
            timeout=10,
        )
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(post, payloads))
    bare_seconds = time.perf_counter() - started
    ehr.stop()

    ours = len(deliveries) / pipeline_seconds
    bare = len(payloads) / bare_seconds
    print(
        f"endpoint write latency: {args.latency_ms} ms; notes: {len(deliveries)}; "
        f"concurrency: {args.concurrency} ({args.pool} pool)"
    )
    print(f"psyfi delivery pipeline: {ours:.1f} deliveries/s ({pipeline_seconds:.2f} s)")
    print(f"bare requests loop:      {bare:.1f} posts/s ({bare_seconds:.2f} s)")
    print(f"ratio (pipeline / bare): {ours / bare:.2f}")


if __name__ == "__main__":
    main()
