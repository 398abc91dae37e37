"""Clinicians and the delivery worker share rows (a client's notes, the
practice's audit chain head). Run both at once on PostgreSQL: no deadlock,
no error, every signed note delivered once. And a transaction PostgreSQL does
abort for a deadlock runs again instead of failing."""

import logging
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from audit.services import audit_phi_access
from integrations.models import Delivery
from integrations.services import delivery_send
from notes import services
from notes.models import Note
from psyfi_review.db_retry import retry_on_conflict
from tests.factories import client_factory, member_factory, note_factory
from tests.integrations.support import FakeEHR, fhir_connection

NOTES_PER_CLINICIAN = 24


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


def _deadlocks_so_far() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _thread(work, errors: list) -> threading.Thread:
    def run():
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)
        finally:
            connections.close_all()  # the backend exits and reports its statistics

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_clinicians_and_the_delivery_worker_never_deadlock(world, fake_ehr, caplog):
    if connection.vendor != "postgresql":
        pytest.fail("This test is about PostgreSQL's row locks; CI runs it on PostgreSQL.")
    caplog.set_level(logging.WARNING, logger="psyfi_review.db_retry")
    fhir_connection(world.practice, fake_ehr.base_url)
    viewer = member_factory(world.practice, "auditor").user
    # Few clients, many notes each: every actor touches the same client rows.
    clients = [client_factory(world.practice, world.clinician) for _ in range(2)]
    for client in clients:
        fake_ehr.add_patient(client)
    work = {
        clinician: [
            note_factory(practice=world.practice, clinician=clinician, client=clients[i % len(clients)])
            for i in range(NOTES_PER_CLINICIAN)
        ]
        for clinician in (world.clinician, world.colleague)
    }
    deadlocks_before = _deadlocks_so_far()
    errors: list = []
    signing_done = threading.Event()
    operations = {"clinician": 0, "delivery": 0, "view": 0}
    count = threading.Lock()

    def tally(kind: str) -> None:
        with count:
            operations[kind] += 1

    def review(clinician, notes) -> None:
        for note in notes:
            services.note_open(note=note, actor=clinician)
            services.note_edit_section(
                note=note, section_key="subjective", text=f"Edited by the clinician {note.pk}.", actor=clinician
            )
            for flag in note.flags.filter(resolved_at__isnull=True):
                services.flag_resolve(flag=flag, resolution="Reviewed", actor=clinician)
            services.note_sign(note=note, actor=clinician, step_up_at=timezone.now())
            tally("clinician")

    def deliver() -> None:
        while True:
            due = list(
                Delivery.objects.filter(state__in=[Delivery.State.PENDING, Delivery.State.RETRYING]).values_list(
                    "pk", flat=True
                )[:5]
            )
            if not due and signing_done.is_set():
                return
            for pk in due:
                delivery_send(delivery_id=pk)
                tally("delivery")
            if not due:
                time.sleep(0.01)

    def view() -> None:
        # Another person's reads are audited too (PHI access log): more
        # chain-head writers that refer to the same client rows.
        while not signing_done.is_set():
            for client in clients:
                audit_phi_access(user=viewer, client=client)
                tally("view")

    reviewers = [_thread(lambda c=c, n=n: review(c, n), errors) for c, n in work.items()]
    others = [_thread(deliver, errors), _thread(deliver, errors), _thread(view, errors)]
    for thread in reviewers:
        thread.join(180)
    signing_done.set()
    for thread in others:
        thread.join(180)

    assert errors == []
    retried = [r for r in caplog.records if r.name == "psyfi_review.db_retry"]
    assert retried == [], [r.getMessage() for r in retried]
    time.sleep(1.0)  # exited backends report their statistics
    assert _deadlocks_so_far() == deadlocks_before
    assert operations["clinician"] == 2 * NOTES_PER_CLINICIAN
    assert sum(operations.values()) >= 200  # a few hundred state changes, besides the edits and flags
    assert Note.objects.filter(state=Note.State.SIGNED).count() == 2 * NOTES_PER_CLINICIAN
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.DELIVERED}
    assert sorted(fake_ehr.copies().values()) == [1] * (2 * NOTES_PER_CLINICIAN)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_aborted_for_a_deadlock_runs_again(world, caplog):
    """Two transactions lock two notes in opposite orders: PostgreSQL aborts
    one; retry_on_conflict runs it again, and both end well."""
    if connection.vendor != "postgresql":
        pytest.fail("This test is about PostgreSQL's deadlock detection; CI runs it on PostgreSQL.")
    caplog.set_level(logging.WARNING, logger="psyfi_review.db_retry")
    first, second = (note_factory(practice=world.practice, clinician=world.clinician) for _ in range(2))
    both_hold_one = threading.Barrier(2)
    runs = {"a": 0, "b": 0}

    def lock_in_order(name: str, one: Note, other: Note):
        @retry_on_conflict
        @transaction.atomic
        def locked():
            runs[name] += 1
            Note.objects.select_for_update().get(pk=one.pk)
            if runs[name] == 1:
                both_hold_one.wait(timeout=30)
            Note.objects.select_for_update().get(pk=other.pk)
            Note.objects.filter(pk=one.pk).update(review_seconds=runs[name])

        return locked

    errors: list = []
    threads = [
        _thread(lock_in_order("a", first, second), errors),
        _thread(lock_in_order("b", second, first), errors),
    ]
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sorted(runs.values()) == [1, 2]  # the deadlock's victim ran again
    assert [r.getMessage() for r in caplog.records if r.name == "psyfi_review.db_retry"] == [
        f"{'test_a_transaction_aborted_for_a_deadlock_runs_again.<locals>.lock_in_order.<locals>.locked'}"
        ": transaction aborted (SQLSTATE 40P01), running it again"
    ]
