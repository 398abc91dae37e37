"""Consent revoked after a draft arrived (invariant 9): open AI notes are
blocked at once, signing is refused at the moment of signing, a group's other
participants are untouched, and a signed note stays signed and is delivered."""

import threading
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from audit.models import AuditEvent
from integrations.models import Delivery
from integrations.services import delivery_send
from notes import services
from notes.errors import SignBlocked
from notes.models import ClientConsent, Note
from tests.factories import client_factory, note_factory, note_resolve_all_flags, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection, wait_until
from tests.notes.intake_support import scribe_for

REVOKED = Note.BlockedCause.CONSENT_REVOKED


def _ready_to_sign(note: Note, clinician) -> Note:
    services.note_open(note=note, actor=clinician)
    note_resolve_all_flags(note, clinician)
    return note


def _sign(note: Note, clinician) -> Note:
    return services.note_sign(note=note, actor=clinician, step_up_at=timezone.now())


# --- 1. open notes blocked at once, with the reason shown ------------------------------------------


def test_revoking_consent_blocks_every_open_ai_note_of_the_client(world):
    client = client_factory(world.practice, world.clinician)
    fresh = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    in_review = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    signed = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    discarded = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    services.note_discard(note=discarded, reason="Wrong session", actor=world.clinician)
    someone_else = note_factory(practice=world.practice, clinician=world.clinician)

    consent = services.consent_revoke(client=client, actor=world.admin)

    for note in (fresh, in_review):
        note.refresh_from_db()
        assert note.blocked_cause == REVOKED
        assert note.blocked_reason.startswith("The client revoked consent to AI-assisted documentation on ")
        assert note.state in (Note.State.DRAFT, Note.State.IN_REVIEW)  # blocked, not discarded: nothing is lost
    for note in (signed, discarded, someone_else):
        note.refresh_from_db()
        assert note.blocked_reason == "" and note.blocked_cause == ""
    blocks = AuditEvent.objects.filter(action="note.block").order_by("note_id")
    assert [e.note_id for e in blocks] == sorted([fresh.pk, in_review.pk])
    assert all(e.actor_user == world.admin and e.after["blocked_cause"] == REVOKED for e in blocks)
    revoke = AuditEvent.objects.get(action="consent.revoke")
    assert sorted(revoke.detail["blocked_notes"]) == sorted([fresh.pk, in_review.pk])
    assert consent.revoked_at is not None


def test_a_blocked_note_shows_why_in_the_queue_and_on_the_review_page(world, login_as):
    client = client_factory(world.practice, world.clinician)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    services.consent_revoke(client=client, actor=world.admin)
    note.refresh_from_db()
    browser = login_as(world.clinician)

    queue = browser.get("/queue/").content.decode()
    assert "blocked: consent revoked" in queue
    review = browser.get(f"/notes/{note.pk}/review/").content.decode()
    assert note.blocked_reason in review


def test_the_admin_is_told_how_many_open_drafts_the_revocation_blocked(world, login_as):
    client = client_factory(world.practice, world.clinician)
    note_factory(practice=world.practice, clinician=world.clinician, client=client)
    note_factory(practice=world.practice, clinician=world.clinician, client=client)
    response = login_as(world.admin).post(f"/clients/{client.pk}/consent/", {"action": "revoke"}, follow=True)
    assert "2 open AI drafts of this client are now blocked" in response.content.decode()


def test_recording_consent_again_lifts_only_the_blocks_of_the_revocation(world):
    client = client_factory(world.practice, world.clinician)
    note = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    services.consent_revoke(client=client, actor=world.admin)

    # Never consented when its session was held (24 November): stays blocked.
    late = client_factory(world.practice, world.clinician, consent=False)
    unconsented = note_factory(practice=world.practice, clinician=world.clinician, client=late)

    services.consent_record(
        client=client, consented_on=date(2026, 12, 1), disclosure_version="2026-02", actor=world.admin
    )
    services.consent_record(
        client=late, consented_on=date(2026, 12, 1), disclosure_version="2026-02", actor=world.admin
    )

    note.refresh_from_db()
    assert note.blocked_reason == "" and note.blocked_cause == ""
    assert AuditEvent.objects.filter(action="note.unblock", note=note).count() == 1
    _sign(note, world.clinician)  # signable again
    unconsented.refresh_from_db()
    assert unconsented.blocked_cause == Note.BlockedCause.NO_CONSENT
    assert not AuditEvent.objects.filter(action="note.unblock", note=unconsented).exists()


def test_consent_dated_on_or_before_the_session_lifts_an_intake_block(world):
    # The consent form was signed in time and entered late: the session was held with consent.
    client = client_factory(world.practice, world.clinician, consent=False)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    assert note.blocked_cause == Note.BlockedCause.NO_CONSENT
    services.consent_record(
        client=client, consented_on=date(2026, 11, 24), disclosure_version="2026-02", actor=world.admin
    )
    note.refresh_from_db()
    assert note.blocked_cause == "" and note.blocked_reason == ""


# --- 2. signing refused at the moment of signing ---------------------------------------------------


def test_signing_a_revoked_clients_note_is_refused_with_the_revocation(world):
    client = client_factory(world.practice, world.clinician)
    note = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    services.consent_revoke(client=client, actor=world.admin)
    with pytest.raises(SignBlocked, match="revoked consent"):
        _sign(note, world.clinician)
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW and not Delivery.objects.filter(note=note).exists()


def test_signing_checks_consent_itself_even_when_the_note_carries_no_block(world):
    # Defence in depth: consent gone by a path that did not block the note (a
    # database fix by the operator, or an older release's intake race).
    client = client_factory(world.practice, world.clinician)
    note = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    ClientConsent.objects.filter(client=client).update(revoked_at=timezone.now())
    with pytest.raises(SignBlocked, match="The client has no active consent to AI-assisted documentation."):
        _sign(note, world.clinician)
    assert not Delivery.objects.filter(note=note).exists()


# --- races on PostgreSQL row locks -----------------------------------------------------------------


def _waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _in_thread(fn, results: dict, key: str) -> threading.Thread:
    def run():
        try:
            results[key] = fn()
        except Exception as exc:  # noqa: BLE001 - the test reads what happened
            results[key] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _hold_open(action, *, committed: threading.Event, proceed: threading.Event):
    """Run action in a transaction that stays open until proceed is set."""

    def run():
        with transaction.atomic():
            result = action()
            committed.set()  # done inside the transaction; not yet committed
            assert proceed.wait(timeout=30)
        return result

    return run


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("These tests need PostgreSQL: the races are about its row locks.")


@pytest.mark.django_db(transaction=True)
def test_a_signing_that_starts_during_a_revocation_waits_and_is_refused(world, postgres_only):
    client = client_factory(world.practice, world.clinician)
    note = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    done, proceed, results = threading.Event(), threading.Event(), {}

    revoker = _in_thread(
        _hold_open(lambda: services.consent_revoke(client=client, actor=world.admin), committed=done, proceed=proceed),
        results,
        "revoke",
    )
    assert done.wait(timeout=30)
    signer = _in_thread(lambda: _sign(note, world.clinician), results, "sign")
    assert wait_until(_waiting_for_a_lock, timeout=10, interval=0.05), "the signing did not wait for the revocation"
    proceed.set()
    revoker.join(30)
    signer.join(30)

    assert isinstance(results["revoke"], ClientConsent)
    assert isinstance(results["sign"], SignBlocked), results["sign"]
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW and note.blocked_cause == REVOKED
    assert not Delivery.objects.filter(note=note).exists()


@pytest.mark.django_db(transaction=True)
def test_a_revocation_that_starts_during_a_signing_leaves_that_note_signed_before_it(world, postgres_only):
    client = client_factory(world.practice, world.clinician)
    note = _ready_to_sign(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    other = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    done, proceed, results = threading.Event(), threading.Event(), {}

    signer = _in_thread(
        _hold_open(lambda: _sign(note, world.clinician), committed=done, proceed=proceed), results, "sign"
    )
    assert done.wait(timeout=30)
    revoker = _in_thread(lambda: services.consent_revoke(client=client, actor=world.admin), results, "revoke")
    assert wait_until(_waiting_for_a_lock, timeout=10, interval=0.05), "the revocation did not wait for the signing"
    proceed.set()
    signer.join(30)
    revoker.join(30)

    assert isinstance(results["sign"], Note), results["sign"]
    consent = results["revoke"]
    assert isinstance(consent, ClientConsent), consent
    note.refresh_from_db()
    other.refresh_from_db()
    # Signed before the revocation took effect: a legal record, left as it is.
    assert note.state == Note.State.SIGNED and note.blocked_cause == ""
    assert note.signed_at < consent.revoked_at
    assert Delivery.objects.filter(note=note).exists()
    assert other.blocked_cause == REVOKED


@pytest.mark.django_db(transaction=True)
def test_a_draft_stored_while_consent_is_revoked_ends_up_blocked(world, postgres_only):
    # The intake read the consent as active; the revocation must not slip in
    # between that read and the draft's commit and leave the note signable-looking.
    client = client_factory(world.practice, world.clinician)
    done, proceed, results = threading.Event(), threading.Event(), {}

    intake = _in_thread(
        _hold_open(
            lambda: note_factory(practice=world.practice, clinician=world.clinician, client=client),
            committed=done,
            proceed=proceed,
        ),
        results,
        "intake",
    )
    assert done.wait(timeout=30)
    revoker = _in_thread(lambda: services.consent_revoke(client=client, actor=world.admin), results, "revoke")
    assert wait_until(_waiting_for_a_lock, timeout=10, interval=0.05), "the revocation did not wait for the intake"
    proceed.set()
    intake.join(30)
    revoker.join(30)

    note = results["intake"]
    assert isinstance(note, Note), note
    assert isinstance(results["revoke"], ClientConsent), results["revoke"]
    note.refresh_from_db()
    assert note.blocked_cause == REVOKED


@pytest.mark.django_db(transaction=True)
def test_revocations_racing_signings_never_sign_after_a_revocation(world, postgres_only):
    """Start both at once, many times: each pair ends with the note refused and
    blocked, or signed before the revocation; never an error, never both."""
    outcomes = set()
    for _ in range(8):
        client = client_factory(world.practice, world.clinician)
        note = _ready_to_sign(
            note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
        )
        start, results = threading.Barrier(2), {}

        def together(fn, barrier=start):
            def run():
                barrier.wait(timeout=30)
                return fn()

            return run

        threads = [
            _in_thread(together(lambda: _sign(note, world.clinician)), results, "sign"),  # noqa: B023
            _in_thread(together(lambda: services.consent_revoke(client=client, actor=world.admin)), results, "revoke"),  # noqa: B023
        ]
        for thread in threads:
            thread.join(30)
        assert isinstance(results["revoke"], ClientConsent), results["revoke"]
        note.refresh_from_db()
        if isinstance(results["sign"], SignBlocked):
            assert note.state == Note.State.IN_REVIEW and note.blocked_cause == REVOKED
            outcomes.add("refused")
        else:
            assert isinstance(results["sign"], Note), results["sign"]
            assert note.state == Note.State.SIGNED and note.signed_at < results["revoke"].revoked_at
            outcomes.add("signed first")
    assert outcomes  # at least one pair ran to an end


# --- 3. group sessions ----------------------------------------------------------------------------


def test_revoking_one_group_participants_consent_blocks_only_their_note(world):
    scribe = scribe_for(world)
    sam = client_factory(world.practice, world.clinician, given_name="Sam", family_name="Okafor")
    body = scribe.payload(
        session={
            "start": "2026-11-24T18:00:00-05:00",
            "duration_minutes": 90,
            "type": "group",
            "participants": [
                {"client": {"id": scribe.client.pk}, "name": "Jordan", "client_reported_symptoms": "Sleeping better."},
                {"client": {"id": sam.pk}, "name": "Sam", "client_reported_symptoms": "Work stress."},
            ],
        }
    )
    del body["client"], body["client_reported_symptoms"]
    response = scribe.post(body)
    assert response.status_code == 201, response.content[:500]

    services.consent_revoke(client=sam, actor=world.admin)

    assert Note.objects.get(client=sam).blocked_cause == REVOKED
    jordan_note = Note.objects.get(client=scribe.client)
    assert jordan_note.blocked_cause == "" and jordan_note.blocked_reason == ""
    _sign(_ready_to_sign(jordan_note, world.clinician), world.clinician)


# --- 4. a signed note stays signed and is delivered as signed ----------------------------------------


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


def test_a_signed_note_is_delivered_as_signed_after_the_revocation(world, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    client = client_factory(world.practice, world.clinician)
    fake_ehr.add_patient(client)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )

    services.consent_revoke(client=client, actor=world.admin)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)

    note.refresh_from_db()
    delivery.refresh_from_db()
    assert note.state == Note.State.SIGNED and note.blocked_cause == ""
    assert delivery.state == Delivery.State.DELIVERED, delivery.last_error
    [document] = fake_ehr.documents
    assert document["docStatus"] == "final"


def test_the_revocation_and_its_time_appear_on_a_signed_notes_timeline(world, login_as):
    client = client_factory(world.practice, world.clinician)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    consent = services.consent_revoke(client=client, actor=world.admin)

    browser = login_as(world.clinician)
    page = browser.get(f"/audit/notes/{note.pk}/timeline/").content.decode()
    assert "consent.revoke" in page
    shown = timezone.localtime(consent.revoked_at, ZoneInfo(world.practice.timezone))
    assert shown.strftime("%Y-%m-%d %H:%M:%S %Z") in page  # the practice's time, zone named
    # Another client's revocation is not on this note's timeline.
    other = client_factory(world.practice, world.clinician)
    services.consent_revoke(client=other, actor=world.admin)
    page = browser.get(f"/audit/notes/{note.pk}/timeline/").content.decode()
    assert page.count("consent.revoke") == 1
