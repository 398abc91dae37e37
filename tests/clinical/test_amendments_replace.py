"""Issue #12, point 3: an amendment always arrives at the EHR as the
replacement of the version before it, whatever the order of events.

Delivered to a real FHIR server on loopback (FakeEHR); the HL7 and REST
builders' output for the same amendment is checked as well. Nudges that run
after a commit are run with django_capture_on_commit_callbacks; one test
runs the whole chain through a real Celery worker."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from hl7apy.parser import parse_message

from integrations.builders.hl7 import SENDING_APP, mdm_build
from integrations.builders.rest import rest_build
from integrations.models import Alert, Delivery, DeliveryAttempt
from integrations.services import (
    delivery_mapping_document,
    delivery_reprocess,
    delivery_send,
    delivery_sweep,
    note_input,
)
from notes import services
from notes.errors import IllegalTransition
from notes.models import Note
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, Worker, fhir_connection, wait_until

W = Delivery.State


@pytest.fixture
def ehr():
    server = FakeEHR().start()
    yield server
    server.stop()


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("celery")
    yield client
    client.delete("celery")


@pytest.fixture
def worker(tmp_path, broker):
    process = Worker(tmp_path).start()
    yield process
    process.stop()


def _queued_ids(broker) -> list[int]:
    """The delivery ids of the delivery_send messages waiting on the real broker."""
    ids = []
    for raw in broker.lrange("celery", 0, -1):
        envelope = json.loads(raw)
        if envelope["headers"]["task"] == "integrations.delivery_send":
            ids.append(json.loads(base64.b64decode(envelope["body"]))[0][0])
    return ids


def _signed_original(world, ehr):
    fhir_connection(world.practice, ehr.base_url)
    client = client_factory(world.practice, world.clinician)
    ehr.add_patient(client)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    return note, Delivery.objects.get(note=note)


def _amend_and_sign(note, actor, *, plan="Homework: sleep diary for two weeks, not one.") -> Note:
    amendment = services.note_amend(note=note, reason="Homework was for two weeks", actor=actor)
    services.note_edit_section(note=amendment, section_key="plan", text=plan, actor=actor)
    return services.note_sign(note=amendment, actor=actor, step_up_at=timezone.now() - timedelta(seconds=1))


def _send(delivery, capture):
    """Send as the worker does, running what it defers to after its commit."""
    with capture(execute=True):
        result = delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return result


def _document(ehr, note: Note) -> dict:
    found = [d for d in ehr.documents if d["identifier"][0]["value"] == f"{note.lineage}:{note.version}"]
    assert len(found) == 1, [d["identifier"] for d in ehr.documents]
    return found[0]


def _current(ehr) -> list[dict]:
    """What the EHR shows as current: every document no other one replaces."""
    replaced = {
        rel["target"]["reference"].removeprefix("DocumentReference/")
        for d in ehr.documents
        for rel in d.get("relatesTo", [])
        if rel["code"] == "replaces"
    }
    return [d for d in ehr.documents if d["id"] not in replaced]


def _assert_replaces(ehr, amendment: Note, original: Note) -> None:
    new, old = _document(ehr, amendment), _document(ehr, original)
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}]
    assert new["docStatus"] == "amended" and old["docStatus"] == "final"
    assert _current(ehr) == [new]  # one current note at the EHR, the amendment


def test_an_amendment_signed_before_its_original_is_delivered_waits_then_replaces_it(
    world, ehr, broker, django_capture_on_commit_callbacks
):
    original, first = _signed_original(world, ehr)
    amendment = _amend_and_sign(original, world.clinician)
    second = Delivery.objects.get(note=amendment)
    assert (second.state, second.replaces_id, second.attempts) == (W.WAITING, first.pk, 0)
    assert "Waiting for version 1 to reach the EHR" in second.last_error
    # However often it is nudged, it does not go first.
    assert _send(second, django_capture_on_commit_callbacks).state == W.WAITING
    assert ehr.posts == 0 and second.attempts == 0
    # The original (now superseded here) still goes, and its delivery nudges the amendment.
    original.refresh_from_db()
    assert original.state == Note.State.AMENDED
    broker.delete("celery")
    assert _send(first, django_capture_on_commit_callbacks).state == W.DELIVERED
    second.refresh_from_db()
    assert second.state == W.PENDING and second.last_error == ""
    assert _queued_ids(broker) == [second.pk]
    assert _send(second, django_capture_on_commit_callbacks).state == W.DELIVERED
    _assert_replaces(ehr, amendment, original)


def test_an_amendment_signed_while_its_original_is_being_sent_waits_for_the_answer(
    world, ehr, django_capture_on_commit_callbacks
):
    original, first = _signed_original(world, ehr)
    Delivery.objects.filter(pk=first.pk).update(state=W.SENDING)  # a worker has claimed it
    second = Delivery.objects.get(note=_amend_and_sign(original, world.clinician))
    assert second.state == W.WAITING
    Delivery.objects.filter(pk=first.pk).update(state=W.PENDING)
    _send(first, django_capture_on_commit_callbacks)
    second.refresh_from_db()
    assert second.state == W.PENDING


def test_an_amendment_of_a_delivered_note_goes_at_once_as_its_replacement(
    world, ehr, django_capture_on_commit_callbacks
):
    original, first = _signed_original(world, ehr)
    _send(first, django_capture_on_commit_callbacks)
    amendment = _amend_and_sign(original, world.clinician)
    second = Delivery.objects.get(note=amendment)
    assert (second.state, second.replaces_id) == (W.PENDING, first.pk)
    assert _send(second, django_capture_on_commit_callbacks).state == W.DELIVERED
    _assert_replaces(ehr, amendment, original)


def test_an_original_that_failed_keeps_its_amendment_waiting_without_attempts_or_alerts_until_reprocessed(
    world, ehr, django_capture_on_commit_callbacks
):
    original, first = _signed_original(world, ehr)
    ehr.reject_with = (422, "Practitioner not active")
    assert _send(first, django_capture_on_commit_callbacks).state == W.FAILED
    amendment = _amend_and_sign(original, world.clinician)
    second = Delivery.objects.get(note=amendment)
    for _ in range(3):
        _send(second, django_capture_on_commit_callbacks)
        delivery_sweep(now=timezone.now() + timedelta(hours=1))
    second.refresh_from_db()
    assert second.state == W.WAITING and "Waiting for version 1" in second.last_error
    assert second.attempts == 0 and not DeliveryAttempt.objects.filter(delivery=second).exists()
    assert not Alert.objects.filter(delivery=second).exists()
    assert ehr.posts == 1  # the original's refused attempt only
    # A person fixes the cause and reprocesses the original: it goes first.
    ehr.reject_with = None
    with django_capture_on_commit_callbacks(execute=True):
        delivery_reprocess(delivery=first, actor=world.admin)
    assert _send(first, django_capture_on_commit_callbacks).state == W.DELIVERED
    second.refresh_from_db()
    assert second.state == W.PENDING
    assert _send(second, django_capture_on_commit_callbacks).state == W.DELIVERED
    _assert_replaces(ehr, amendment, original)


def test_a_discarded_amendment_frees_the_lineage_for_a_new_one(world, ehr, django_capture_on_commit_callbacks):
    original, first = _signed_original(world, ehr)
    _send(first, django_capture_on_commit_callbacks)
    discarded = services.note_amend(note=original, reason="Wrong client opened", actor=world.clinician)
    with pytest.raises(IllegalTransition, match="already open"):
        services.note_amend(note=original, reason="Second try while one is open", actor=world.clinician)
    services.note_discard(note=discarded, reason="Started by mistake", actor=world.clinician)
    amendment = _amend_and_sign(original, world.clinician)
    assert amendment.amends_id == original.pk and amendment.version == 3  # version 2 stays the discarded one
    discarded.refresh_from_db()
    assert discarded.state == Note.State.DISCARDED and discarded.version == 2
    assert not Delivery.objects.filter(note=discarded).exists()
    second = Delivery.objects.get(note=amendment)
    assert _send(second, django_capture_on_commit_callbacks).state == W.DELIVERED
    _assert_replaces(ehr, amendment, original)


def test_an_amendment_signed_as_its_original_is_delivered_is_released_after_its_own_commit(
    world, ehr, django_capture_on_commit_callbacks
):
    original, first = _signed_original(world, ehr)
    with django_capture_on_commit_callbacks() as after_signing:
        amendment = _amend_and_sign(original, world.clinician)
    second = Delivery.objects.get(note=amendment)
    assert second.state == W.WAITING
    # The original is delivered before the signing "commits": its own release
    # ran too early to see the amendment (its callbacks are not run here).
    delivery_send(delivery_id=first.pk)
    second.refresh_from_db()
    assert second.state == W.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        for callback in after_signing:
            callback()
    second.refresh_from_db()
    assert second.state == W.PENDING


def test_the_sweeper_releases_an_amendment_whose_nudge_was_lost(world, ehr, broker, django_capture_on_commit_callbacks):
    original, first = _signed_original(world, ehr)
    second = Delivery.objects.get(note=_amend_and_sign(original, world.clinician))
    delivery_send(delivery_id=first.pk)  # delivered; its after-commit nudge never runs
    second.refresh_from_db()
    assert second.state == W.WAITING
    broker.delete("celery")
    with django_capture_on_commit_callbacks(execute=True):
        delivery_sweep(now=timezone.now())
    second.refresh_from_db()
    assert second.state == W.PENDING and second.pk in _queued_ids(broker)


def test_the_hl7_and_rest_builders_send_an_amendment_as_a_replacement(world, ehr, django_capture_on_commit_callbacks):
    original, first = _signed_original(world, ehr)
    _send(first, django_capture_on_commit_callbacks)
    amendment = _amend_and_sign(original, world.clinician)
    second = Delivery.objects.get(note=amendment)
    data, mapping = note_input(second), delivery_mapping_document(second)
    now = timezone.now()
    message = parse_message(mdm_build(data, mapping, control_id=second.hl7_control_id, now=now).replace("\n", "\r"))
    assert message.msh.msh_9.to_er7() == "MDM^T10^MDM_T02" and message.evn.evn_1.to_er7() == "T10"
    original_uid = note_input(first).version_uuid
    assert message.txa.txa_12.to_er7() == f"{data.version_uuid}^{SENDING_APP}"
    assert message.txa.txa_13.to_er7() == f"{original_uid}^{SENDING_APP}"
    document = rest_build(data, mapping, now=now)
    assert document["id"] == f"{amendment.lineage}:{amendment.version}"
    assert document["replaces"] == first.ehr_id != ""
    # The original itself is a plain new document in every format.
    plain = note_input(first)
    assert "MDM^T02" in mdm_build(plain, mapping, control_id=first.hl7_control_id, now=now)
    assert "replaces" not in rest_build(plain, mapping, now=now)


def test_the_dashboard_shows_an_amendment_waiting_and_why(world, ehr, login_as):
    original, _ = _signed_original(world, ehr)
    amendment = _amend_and_sign(original, world.clinician)
    html = login_as(world.admin).get("/integrations/deliveries/").content.decode()
    assert '<td data-state="waiting">1</td>' in html
    assert "Waiting for version 1 to reach the EHR" in html
    assert f"{amendment.lineage}:2" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_a_reprocessed_original_and_then_its_waiting_amendment(world, worker):
    ehr = FakeEHR().start()
    try:
        ehr.reject_with = (422, "Practitioner not active")
        original, first = _signed_original(world, ehr)
        assert wait_until(lambda: Delivery.objects.get(pk=first.pk).state == W.FAILED, timeout=60)
        amendment = _amend_and_sign(original, world.clinician)
        second = Delivery.objects.get(note=amendment)
        assert second.state == W.WAITING
        ehr.reject_with = None
        delivery_reprocess(delivery=first, actor=world.admin)
        # No sweeper here: the original's delivery nudges the amendment.
        assert wait_until(lambda: Delivery.objects.get(pk=second.pk).state == W.DELIVERED, timeout=60), list(
            Delivery.objects.values_list("pk", "state", "last_error")
        )
        _assert_replaces(ehr, amendment, original)
        assert Delivery.objects.get(pk=second.pk).attempts == 1
    finally:
        ehr.stop()
