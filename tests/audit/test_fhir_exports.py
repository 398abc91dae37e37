"""Issue 6 §7 (FHIR): a Provenance per signed note (AI device authored the
draft, the clinician authored and verified the final text, the signer with
the signing time) and BALP-like AuditEvents for deliveries, validated with
fhir.resources' R4B models."""

import json

import pytest
from django.conf import settings
from django.urls import reverse
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance

from audit.fhir import provenance_for_note
from audit.models import NoteAttribution
from audit.services import actor_system, audit_record
from integrations.models import Delivery
from notes import services
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def _agents(resource: dict) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for agent in resource["agent"]:
        by_type.setdefault(agent["type"]["coding"][0]["code"], []).append(agent)
    return by_type


@pytest.fixture
def signed(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(
        note=note, section_key="plan", text=note.sections.get(key="plan").text + " Mine.", actor=world.clinician
    )
    return note_sign_now(note, world.clinician)


def test_the_provenance_of_a_signed_note_names_the_ai_the_clinician_and_the_signature(world, signed):
    resource = provenance_for_note(note=signed, attribution=NoteAttribution.objects.get(note=signed))
    Provenance.model_validate(resource)  # raises on anything R4B rejects

    device = resource["contained"][0]
    assert device["resourceType"] == "Device" and device["modelNumber"] == "scribe-llm"
    assert device["version"] == [{"value": "2.3"}]
    assert {"name": "scribe-llm", "type": "model-name"} in device["deviceName"]
    agents = _agents(resource)
    ai, clinician = agents["author"]
    assert ai["who"]["reference"] == f"#{device['id']}"
    assert ai["role"][0]["coding"][0]["code"] == "Artificial-Intelligence"
    assert clinician["who"]["display"] == world.clinician.get_full_name()
    assert agents["verifier"][0]["who"] == agents["legal"][0]["who"] == clinician["who"]
    signature = resource["signature"][0]
    assert signature["when"] == resource["recorded"] == signed.signed_at.isoformat().replace("+00:00", "Z")
    assert signature["who"] == clinician["who"]
    assert resource["target"][0]["identifier"] == {
        "system": settings.PSYFI_IDENTIFIER_SYSTEM,
        "value": f"{signed.lineage}:1",
    }
    assert resource["reason"][0]["coding"][0]["code"] == "AIAST"
    assert resource["activity"]["coding"][0]["code"] == "LA"


def test_the_provenance_uses_the_ehr_practitioner_id_when_known(world, signed):
    world.clinician.membership.ehr_practitioner_id = "prac-77"
    world.clinician.membership.save(update_fields=["ehr_practitioner_id"])
    signed.refresh_from_db()
    resource = provenance_for_note(note=signed)
    Provenance.model_validate(resource)
    assert _agents(resource)["legal"][0]["who"]["reference"] == "Practitioner/prac-77"


def test_an_amendments_provenance_points_at_the_version_it_revises(world, signed):
    amendment = services.note_amend(note=signed, reason="Typo", actor=world.clinician)
    amended = note_sign_now(amendment, world.clinician)
    resource = provenance_for_note(note=amended, previous=amended.amends)
    Provenance.model_validate(resource)
    revision = next(e for e in resource["entity"] if e["role"] == "revision")
    assert revision["what"]["identifier"]["value"] == f"{signed.lineage}:1"


def test_the_provenance_endpoint_serves_signed_notes_to_those_who_may_see_them(world, login_as, signed):
    response = login_as(world.auditor).get(reverse("audit_note_provenance", args=[signed.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    resource = Provenance.model_validate(response.json())
    assert "wrote" in resource.agent[1].role[0].text  # the clinician's share is stated
    unsigned = note_factory(practice=world.practice, clinician=world.clinician)
    clinician = login_as(world.clinician)
    assert clinician.get(reverse("audit_note_provenance", args=[unsigned.pk])).status_code == 409
    assert login_as(world.outsider).get(reverse("audit_note_provenance", args=[signed.pk])).status_code == 404


def _delivery_story(world, signed) -> Delivery:
    """What the delivery worker records: a failed try, then success."""
    delivery = Delivery.objects.get(note=signed)
    for after in ({"state": "retrying", "http_status": 503}, {"state": "delivered", "ehr_id": "doc-1001"}):
        audit_record(
            practice=world.practice,
            actor=actor_system("delivery worker"),
            action="delivery.attempt",
            obj=delivery,
            note=signed,
            client=signed.client,
            after=after,
        )
    Delivery.objects.filter(pk=delivery.pk).update(state="delivered", attempts=2, ehr_id="doc-1001")
    return delivery


def test_delivery_events_become_balp_audit_events(world, login_as, signed):
    delivery = _delivery_story(world, signed)
    response = login_as(world.auditor).get(reverse("audit_delivery_events", args=[delivery.pk]))
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)
    events = [entry["resource"] for entry in bundle["entry"]]
    for event in events:
        FhirAuditEvent.model_validate(event)
        assert event["type"]["code"] == "rest" and event["action"] == "C"
        assert event["subtype"][0]["code"] == "create"
        roles = [a["type"]["coding"][0]["code"] for a in event["agent"]]
        assert roles == ["110153", "110152", "AUT"]
        patient = next(e for e in event["entity"] if e["type"]["code"] == "1")
        assert patient["what"]["reference"] == f"Patient/{signed.client.ehr_patient_id}"
    assert [e["outcome"] for e in events] == ["0", "4", "0"]  # created, retrying, delivered
    assert "retrying after 2 attempt(s)" in events[1]["outcomeDesc"]
    assert events[2]["entity"][0]["what"] == {"reference": "DocumentReference/doc-1001"}
    assert events[0]["entity"][0]["what"] == {
        "identifier": {"system": settings.PSYFI_IDENTIFIER_SYSTEM, "value": f"{signed.lineage}:1"}
    }
    assert not any(signed.client.family_name in json.dumps(e) for e in events)  # no PHI in free text


def test_a_replacement_delivery_is_an_update(world, login_as, signed):
    amended = note_sign_now(services.note_amend(note=signed, reason="Typo", actor=world.clinician), world.clinician)
    delivery = Delivery.objects.get(note=amended)
    bundle = login_as(world.auditor).get(reverse("audit_delivery_events", args=[delivery.pk])).json()
    event = bundle["entry"][0]["resource"]
    FhirAuditEvent.model_validate(event)
    assert (event["action"], event["subtype"][0]["code"]) == ("U", "update")


def test_only_the_practices_auditors_get_delivery_audit_events(world, login_as, signed):
    delivery = Delivery.objects.get(note=signed)
    url = reverse("audit_delivery_events", args=[delivery.pk])
    assert login_as(world.clinician).get(url).status_code == 403
    assert login_as(world.auditor).get(reverse("audit_delivery_events", args=[999999])).status_code == 404
