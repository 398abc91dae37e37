"""Issue 14 §3: consent recorded with date, method, disclosure text version
and who recorded it; revoked; a minor's consent names the guardian; the
disclosure text is kept as versions starting from the plain default."""

from datetime import date

import pytest

from audit.models import AuditEvent
from notes.models import DEFAULT_DISCLOSURE_TEXT, ClientConsent, DisclosureText, Note
from notes.services import practice_create
from tests.factories import client_factory, note_factory

pytestmark = pytest.mark.django_db


def _v1(practice) -> DisclosureText:
    return DisclosureText.objects.get(practice=practice, version=1)


def test_a_new_practice_starts_from_the_plain_default_disclosure():
    practice = practice_create(name="New Practice", slug="new-practice")
    assert list(DisclosureText.objects.filter(practice=practice).values_list("version", "text")) == [
        (1, "AI tools may assist with clinical documentation, which is reviewed and approved by your clinician.")
    ]
    assert _v1(practice).text == DEFAULT_DISCLOSURE_TEXT


def test_editing_the_disclosure_adds_a_version_and_keeps_the_old_one(world, login_as):
    admin = login_as(world.admin)
    response = admin.post(
        "/practice/consent-disclosure/", {"text": "AI tools help draft notes; your clinician checks them."}
    )
    assert response.status_code == 302
    versions = list(DisclosureText.objects.filter(practice=world.practice).order_by("version"))
    assert [(v.version, v.created_by) for v in versions] == [(1, None), (2, world.admin)]
    assert versions[0].text == DEFAULT_DISCLOSURE_TEXT
    event = AuditEvent.objects.get(action="consent.disclosure_version_add")
    assert event.actor_user == world.admin and event.after["version"] == 2
    assert "AI tools help draft notes" in admin.get("/practice/consent-disclosure/").content.decode()


def test_saving_the_same_text_again_is_refused(world, login_as):
    response = login_as(world.admin).post("/practice/consent-disclosure/", {"text": DEFAULT_DISCLOSURE_TEXT})
    assert response.status_code == 400
    assert "This is the text of version 1 already." in response.content.decode()
    assert DisclosureText.objects.filter(practice=world.practice).count() == 1


def test_recording_consent_keeps_date_method_version_and_recorder_and_unblocks_notes(world, login_as):
    client = client_factory(world.practice, world.clinician, consent=False)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    assert note.blocked_cause == Note.BlockedCause.NO_CONSENT
    response = login_as(world.admin).post(
        f"/practice/clients/{client.pk}/consent/",
        {"consented_on": "2026-01-05", "method": "written", "disclosure": _v1(world.practice).pk},
    )
    assert response.status_code == 302
    consent = ClientConsent.objects.get(client=client)
    assert (consent.consented_on, consent.method, consent.disclosure_version, consent.recorded_by) == (
        date(2026, 1, 5),
        "written",
        "v1",
        world.admin,
    )
    note.refresh_from_db()
    assert note.blocked_cause == ""
    event = AuditEvent.objects.get(action="consent.record", client=client)
    assert event.actor_user == world.admin and event.after["method"] == "written"


def test_a_minors_consent_requires_and_records_the_guardian(world, login_as):
    child = client_factory(world.practice, world.clinician, consent=False, date_of_birth=date(2014, 6, 1))
    admin = login_as(world.admin)
    assert "This client is under 18" in admin.get(f"/practice/clients/{child.pk}/").content.decode()
    form = {"consented_on": "2026-01-05", "method": "written", "disclosure": _v1(world.practice).pk}
    refused = admin.post(f"/practice/clients/{child.pk}/consent/", form)
    assert refused.status_code == 400
    assert "This client was a minor on the consent date" in refused.content.decode()
    assert not ClientConsent.objects.filter(client=child).exists()
    recorded = admin.post(
        f"/practice/clients/{child.pk}/consent/",
        {**form, "guardian_name": "Maria Silva", "guardian_relationship": "mother"},
    )
    assert recorded.status_code == 302
    consent = ClientConsent.objects.get(client=child)
    assert (consent.guardian_name, consent.guardian_relationship) == ("Maria Silva", "mother")
    assert "Maria Silva (mother)" in admin.get(f"/practice/clients/{child.pk}/").content.decode()


def test_an_adult_needs_no_guardian(world):
    from practice_admin.services.clients import admin_consent_record

    adult = client_factory(world.practice, world.clinician, consent=False, date_of_birth=date(2008, 1, 5))
    consent = admin_consent_record(
        actor=world.admin, client=adult, consented_on=date(2026, 1, 5), disclosure=_v1(world.practice), method="verbal"
    )
    assert consent.guardian_name == ""


def test_a_disclosure_of_another_practice_is_refused(world):
    from notes.errors import DomainError
    from practice_admin.services.clients import admin_consent_record

    client = client_factory(world.practice, world.clinician, consent=False)
    with pytest.raises(DomainError, match="Choose a disclosure text of this practice."):
        admin_consent_record(
            actor=world.admin,
            client=client,
            consented_on=date(2026, 1, 5),
            disclosure=_v1(world.other_practice),
            method="written",
        )


def test_revoking_blocks_open_notes_and_shows_in_the_record(world, login_as):
    client = client_factory(world.practice, world.clinician)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    admin = login_as(world.admin)
    response = admin.post(f"/practice/clients/{client.pk}/consent/revoke/")
    assert response.status_code == 302
    note.refresh_from_db()
    assert note.blocked_cause == Note.BlockedCause.CONSENT_REVOKED
    consent = ClientConsent.objects.get(client=client)
    assert consent.revoked_by == world.admin and consent.revoked_at is not None
    assert AuditEvent.objects.get(action="consent.revoke", client=client).actor_user == world.admin
    page = admin.get(f"/practice/clients/{client.pk}/").content.decode()
    assert "No active consent" in page and "Record consent" in page


def test_a_consent_date_in_the_future_is_refused(world, login_as):
    client = client_factory(world.practice, world.clinician, consent=False)
    response = login_as(world.admin).post(
        f"/practice/clients/{client.pk}/consent/",
        {"consented_on": "2999-01-05", "method": "written", "disclosure": _v1(world.practice).pk},
    )
    assert response.status_code == 400
    assert "The consent date is in the future." in response.content.decode()
    assert not ClientConsent.objects.filter(client=client).exists()


def test_the_clinicians_consent_form_also_takes_the_guardian_and_offers_the_current_version(world, login_as):
    DisclosureText.objects.create(practice=world.practice, version=2, text="Newer wording.")
    child = client_factory(world.practice, world.clinician, consent=False, date_of_birth=date(2015, 2, 2))
    clinician = login_as(world.clinician)
    assert 'name="disclosure_version" value="v2"' in clinician.get(f"/clients/{child.pk}/").content.decode()
    clinician.post(
        f"/clients/{child.pk}/consent/",
        {
            "consented_on": "2026-01-05",
            "disclosure_version": "v2",
            "guardian_name": "Sam Lee",
            "guardian_relationship": "father",
        },
    )
    consent = ClientConsent.objects.get(client=child)
    assert (consent.guardian_name, consent.disclosure_version, consent.recorded_by) == (
        "Sam Lee",
        "v2",
        world.clinician,
    )
