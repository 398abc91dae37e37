"""Supervisor co-signature (issue 15, point 5): a pre-licensed clinician's
signed note waits in awaiting_cosign, is delivered only once co-signed, and
the EHR attestation names both."""

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from audit.models import AuditEvent
from integrations.builders.fhir import documentreference_build
from integrations.builders.hl7 import mdm_build
from integrations.builders.rest import rest_build
from integrations.mapping import mapping_default_document
from integrations.models import Delivery
from integrations.services.perform import note_input
from notes import services
from notes.cosign_services import membership_supervision_set, note_cosign, note_cosign_return
from notes.errors import DomainError, IllegalTransition, NotPermitted, SignBlocked, StepUpRequired
from notes.models import Membership, Note
from tests.factories import member_factory, note_factory, note_sign_now, practice_factory

pytestmark = pytest.mark.django_db


def backup_code(user) -> str:
    """A backup code: the login just used the current TOTP, which django-otp refuses twice."""
    return StaticToken.objects.get(device__user=user).token


def fresh_step_up():
    return timezone.now() - timedelta(seconds=1)


def supervise(world, *, supervisor=None):
    """The world's clinician becomes pre-licensed, supervised by the colleague."""
    membership_supervision_set(
        membership=world.clinician.membership,
        pre_licensed=True,
        supervisor=supervisor or world.colleague,
        actor=world.admin,
    )
    world.clinician.membership.refresh_from_db()


def awaiting(world) -> Note:
    note = note_factory(practice=world.practice, clinician=world.clinician)
    return note_sign_now(note, world.clinician)


def test_a_pre_licensed_clinicians_signed_note_waits_for_cosignature_with_no_delivery(world):
    supervise(world)
    note = awaiting(world)
    note.refresh_from_db()
    assert note.state == Note.State.AWAITING_COSIGN
    assert note.signed_by == world.clinician and note.content_hash
    assert not Delivery.objects.filter(note=note).exists()
    event = AuditEvent.objects.filter(note=note, action="note.sign").get()
    assert event.after["state"] == "awaiting_cosign"
    assert event.detail["awaiting_cosign_by"] == world.colleague.pk


def test_a_licensed_clinicians_note_is_signed_and_queued_for_delivery_as_before(world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    assert note.state == Note.State.SIGNED
    assert Delivery.objects.filter(note=note).count() == 1


def test_a_pre_licensed_clinician_without_a_supervisor_gets_a_clear_refusal(world, login_as):
    Membership.objects.filter(user=world.clinician).update(pre_licensed=True, supervisor=None)
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(SignBlocked, match="no supervisor is on record"):
        note_sign_now(note, world.clinician)
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW and note.signed_at is None

    client = login_as(world.clinician)
    response = client.post(f"/notes/{note.pk}/sign/", {"otp_token": backup_code(world.clinician)})
    assert response.status_code == 409
    assert "no supervisor is on record" in response.content.decode()
    assert Note.objects.get(pk=note.pk).state == Note.State.IN_REVIEW


def test_the_supervisor_cosigns_with_step_up_and_only_then_the_delivery_is_written(world):
    supervise(world)
    note = awaiting(world)
    with pytest.raises(StepUpRequired):
        note_cosign(note=note, actor=world.colleague, step_up_at=None)
    assert not Delivery.objects.filter(note=note).exists()

    note = note_cosign(note=note, actor=world.colleague, step_up_at=fresh_step_up())
    note.refresh_from_db()
    assert note.state == Note.State.SIGNED
    assert note.cosigned_by == world.colleague and note.cosigned_at is not None
    assert Delivery.objects.filter(note=note).count() == 1
    event = AuditEvent.objects.get(note=note, action="note.cosign")
    assert event.actor_user == world.colleague
    assert event.before == {"state": "awaiting_cosign"} and event.after["state"] == "signed"
    with pytest.raises(IllegalTransition):
        note_cosign(note=note, actor=world.colleague, step_up_at=fresh_step_up())
    assert Delivery.objects.filter(note=note).count() == 1
    # Signed twice, drawn for QA once: the draw of its first signature stands.
    from quality.models import QADraw

    assert QADraw.objects.filter(note=note).count() == 1


def test_only_the_clinicians_supervisor_may_cosign_or_return(world):
    supervise(world)
    note = awaiting(world)
    third = member_factory(world.practice).user
    for actor in (third, world.clinician, world.admin, world.outsider):
        with pytest.raises(NotPermitted):
            note_cosign(note=note, actor=actor, step_up_at=fresh_step_up())
        with pytest.raises(NotPermitted):
            note_cosign_return(note=note, comment="Fix it", actor=actor)
    assert Note.objects.get(pk=note.pk).state == Note.State.AWAITING_COSIGN


def test_another_clinician_gets_a_404_for_the_cosign_page(world, login_as):
    supervise(world)
    note = awaiting(world)
    third = member_factory(world.practice).user
    assert login_as(third).get(f"/cosign/{note.pk}/").status_code == 404
    assert login_as(world.colleague).get(f"/cosign/{note.pk}/").status_code == 200


def test_an_awaiting_note_cannot_be_edited_by_anyone(world):
    supervise(world)
    note = awaiting(world)
    with pytest.raises(IllegalTransition, match="awaiting co-signature"):
        services.note_edit_section(note=note, section_key="plan", text="changed", actor=world.clinician)
    with pytest.raises(IllegalTransition):
        services.note_discard(note=note, reason="no", actor=world.clinician)


def test_returning_withdraws_the_signature_and_the_clinician_edits_and_signs_again(world):
    supervise(world)
    note = awaiting(world)
    signed_hash = note.content_hash
    with pytest.raises(DomainError, match="Say what"):
        note_cosign_return(note=note, comment="  ", actor=world.colleague)

    note = note_cosign_return(note=note, comment="Add the client's response to the exposure.", actor=world.colleague)
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW
    assert note.signed_at is None and note.signed_by is None and note.content_hash == ""
    assert note.cosign_returned_comment == "Add the client's response to the exposure."
    event = AuditEvent.objects.get(note=note, action="note.cosign_return")
    assert event.before["content_hash"] == signed_hash and event.after["comment"].startswith("Add the")
    assert not Delivery.objects.filter(note=note).exists()

    services.note_edit_section(
        note=note, section_key="plan", text="Client engaged with the exposure; continue.", actor=world.clinician
    )
    note = services.note_sign(note=note, actor=world.clinician, step_up_at=fresh_step_up())
    note.refresh_from_db()
    assert note.state == Note.State.AWAITING_COSIGN and note.content_hash != signed_hash
    assert note.cosign_returned_comment == ""
    note_cosign(note=note, actor=world.colleague, step_up_at=fresh_step_up())
    assert Delivery.objects.filter(note=note).count() == 1


def test_a_pre_licensed_amendment_supersedes_the_earlier_version_only_when_cosigned(world):
    original = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    supervise(world)
    amendment = services.note_amend(note=original, reason="Wrong date", actor=world.clinician)
    amendment = services.note_sign(note=amendment, actor=world.clinician, step_up_at=fresh_step_up())
    original.refresh_from_db()
    assert amendment.state == Note.State.AWAITING_COSIGN and original.state == Note.State.SIGNED
    assert not Delivery.objects.filter(note=amendment).exists()
    note_cosign(note=amendment, actor=world.colleague, step_up_at=fresh_step_up())
    original.refresh_from_db()
    assert original.state == Note.State.AMENDED
    assert Delivery.objects.filter(note=amendment).count() == 1


@pytest.mark.parametrize(
    "who, message",
    [
        ("self", "cannot supervise themself"),
        ("pre_licensed", "fully licensed"),
        ("admin", "must be a clinician"),
        ("outsider", "member of this practice"),
    ],
)
def test_the_supervisor_must_be_a_licensed_clinician_of_the_same_practice(world, who, message):
    pre = member_factory(world.practice)
    membership_supervision_set(membership=pre, pre_licensed=True, supervisor=world.colleague, actor=world.admin)
    supervisor = {"self": world.clinician, "pre_licensed": pre.user, "admin": world.admin, "outsider": world.outsider}
    with pytest.raises(DomainError, match=message) as exc:
        membership_supervision_set(
            membership=world.clinician.membership, pre_licensed=True, supervisor=supervisor[who], actor=world.admin
        )
    assert exc.value.field == "supervisor"
    assert Membership.objects.get(user=world.clinician).pre_licensed is False


def test_only_a_practice_admin_sets_supervision_and_it_is_audited(world):
    with pytest.raises(NotPermitted):
        membership_supervision_set(
            membership=world.clinician.membership, pre_licensed=True, supervisor=world.colleague, actor=world.colleague
        )
    other_admin = member_factory(world.other_practice, Membership.Role.PRACTICE_ADMIN).user
    with pytest.raises(NotPermitted):
        membership_supervision_set(
            membership=world.clinician.membership, pre_licensed=True, supervisor=world.colleague, actor=other_admin
        )
    supervise(world)
    event = AuditEvent.objects.get(action="membership.supervision")
    assert event.actor_user == world.admin
    assert event.after == {"pre_licensed": True, "supervisor": world.colleague.pk}


def test_the_supervisor_queue_lists_only_their_supervisees_waiting_notes(world, login_as):
    supervise(world)
    waiting = awaiting(world)
    note_factory(practice=world.practice, clinician=world.clinician)  # not signed yet
    page = login_as(world.colleague).get("/cosign/")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"/cosign/{waiting.pk}/" in body and 'id="cosign-count">1<' in body
    other_supervisor = member_factory(world.practice).user
    assert 'id="cosign-count">0<' in login_as(other_supervisor).get("/cosign/").content.decode()


def test_the_cosign_form_uses_the_otp_step_up_and_a_wrong_code_is_refused(world, login_as):
    supervise(world)
    note = awaiting(world)
    client = login_as(world.colleague)
    response = client.post(f"/cosign/{note.pk}/sign/", {"otp_token": "000000"})
    assert response.status_code == 400
    assert Note.objects.get(pk=note.pk).state == Note.State.AWAITING_COSIGN
    response = client.post(f"/cosign/{note.pk}/sign/", {"otp_token": backup_code(world.colleague)})
    assert response.status_code == 302
    assert Note.objects.get(pk=note.pk).state == Note.State.SIGNED


def test_the_ehr_attestation_names_the_signer_and_the_cosigner(world):
    Membership.objects.filter(user=world.colleague).update(credentials="PsyD", ehr_practitioner_id="SUP-9")
    Membership.objects.filter(user=world.clinician).update(credentials="LMSW", ehr_practitioner_id="PRE-3")
    world.colleague.first_name, world.colleague.last_name = "Dana", "Supervisor"
    world.colleague.save()
    supervise(world)
    note = note_cosign(note=awaiting(world), actor=world.colleague, step_up_at=fresh_step_up())
    delivery = Delivery.objects.select_related("note").get(note=note)
    data = note_input(delivery)
    mapping = mapping_default_document([{"key": s.key, "label": s.label} for s in note.sections.all()])

    resource = documentreference_build(data, mapping, now=timezone.now())
    assert resource["author"][0]["reference"] == "Practitioner/PRE-3"
    assert resource["authenticator"] == {"display": "Dana Supervisor, PsyD", "reference": "Practitioner/SUP-9"}
    text = base64.b64decode(resource["content"][0]["attachment"]["data"]).decode()
    assert "signed by Alex " in text and "co-signed by supervisor Dana Supervisor, PsyD" in text

    message = parse_message(
        mdm_build(data, mapping, control_id="C1", now=timezone.now()),
        validation_level=VALIDATION_LEVEL.STRICT,
        find_groups=True,
    )
    txa = message.txa
    assert txa.txa_9.value.split("^")[0] == "PRE-3"
    assert txa.txa_10.value.split("^")[:3] == ["SUP-9", "Supervisor", "Dana"]
    authenticators = [rep.value for rep in txa.txa_22]
    assert [a.split("^")[0] for a in authenticators] == ["PRE-3", "SUP-9"]

    document = rest_build(data, mapping, now=timezone.now())
    assert document["cosigner"]["name"] == "Dana Supervisor, PsyD"
    assert "co-signed by supervisor Dana Supervisor" in json.dumps(document)


def test_a_licensed_signers_attestation_is_unchanged(world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    data = note_input(Delivery.objects.get(note=note))
    mapping = mapping_default_document([{"key": s.key, "label": s.label} for s in note.sections.all()])
    resource = documentreference_build(data, mapping, now=timezone.now())
    assert resource["authenticator"] == resource["author"][0]
    assert "co-signed" not in mdm_build(data, mapping, control_id="C1", now=timezone.now())


def test_cross_practice_supervisor_cannot_be_set_even_by_direct_membership_edit(world):
    """A supervisor record pointing elsewhere (set around the service) does not let a note be signed."""
    other = practice_factory()
    stranger = member_factory(other).user
    Membership.objects.filter(user=world.clinician).update(pre_licensed=True, supervisor=stranger)
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(SignBlocked, match="cannot co-sign"):
        note_sign_now(note, world.clinician)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_an_awaiting_note_is_never_delivered_and_a_cosigned_one_once(world, worker_factory):
    from integrations.services import delivery_sweep
    from tests.factories import client_factory
    from tests.integrations.support import FakeEHR, fhir_connection, wait_until

    ehr = FakeEHR(conditional_create=True).start()
    try:
        fhir_connection(world.practice, ehr.base_url)
        supervise(world)
        client = client_factory(world.practice, world.clinician)
        ehr.add_patient(client)
        waiting = note_sign_now(
            note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
        )
        # A licensed colleague's note signed beside it shows the worker delivers meanwhile.
        third = member_factory(world.practice).user
        control_client = client_factory(world.practice, third)
        ehr.add_patient(control_client)
        control = note_sign_now(note_factory(practice=world.practice, clinician=third, client=control_client), third)
        worker_factory()
        assert wait_until(
            lambda: Delivery.objects.filter(note=control, state=Delivery.State.DELIVERED).exists(), timeout=90
        )
        delivery_sweep()  # the sweeper re-enqueues whatever is owed; nothing is owed for the waiting note
        assert wait_until(lambda: ehr.posts >= 1, timeout=5)
        assert not Delivery.objects.filter(note=waiting).exists()
        assert [d["identifier"][0]["value"] for d in ehr.documents] == [f"{control.lineage}:1"]

        note_cosign(note=waiting, actor=world.colleague, step_up_at=fresh_step_up())
        assert wait_until(
            lambda: Delivery.objects.filter(note=waiting, state=Delivery.State.DELIVERED).exists(), timeout=90
        )
        delivery_sweep()
        copies = ehr.copies()
        assert copies[("urn:psyfi-review:demo:note-id", f"{waiting.lineage}:1")] == 1
        assert len(ehr.documents) == 2
        stored = next(d for d in ehr.documents if d["identifier"][0]["value"] == f"{waiting.lineage}:1")
        assert stored["authenticator"]["display"].startswith(world.colleague.first_name)
    finally:
        ehr.stop()


def test_a_new_supervisor_sees_the_notes_already_waiting_and_licensing_waits_for_them(world):
    supervise(world)
    note = awaiting(world)
    newcomer = member_factory(world.practice).user
    supervise(world, supervisor=newcomer)
    with pytest.raises(NotPermitted):
        note_cosign(note=note, actor=world.colleague, step_up_at=fresh_step_up())
    with pytest.raises(DomainError, match="1 note of this clinician still awaits co-signature"):
        membership_supervision_set(
            membership=world.clinician.membership, pre_licensed=False, supervisor=None, actor=world.admin
        )
    assert note_cosign(note=note, actor=newcomer, step_up_at=fresh_step_up()).state == Note.State.SIGNED
    membership_supervision_set(
        membership=world.clinician.membership, pre_licensed=False, supervisor=None, actor=world.admin
    )
    assert Membership.objects.get(user=world.clinician).supervisor is None


def test_a_note_whose_client_revoked_consent_after_signing_cannot_be_cosigned(world):
    # Co-signing makes the note final and deliverable: without the client's
    # consent it is refused with the reason, and nothing is delivered.
    supervise(world)
    note = awaiting(world)
    services.consent_revoke(client=note.client, actor=world.admin)
    with pytest.raises(SignBlocked, match="no active consent"):
        note_cosign(note=note, actor=world.colleague, step_up_at=fresh_step_up())
    note.refresh_from_db()
    assert note.state == Note.State.AWAITING_COSIGN and note.cosigned_by is None
    assert not Delivery.objects.filter(note=note).exists()
    returned = note_cosign_return(note=note, comment="Consent was revoked; discard.", actor=world.colleague)
    assert returned.state == Note.State.IN_REVIEW
