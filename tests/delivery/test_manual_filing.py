"""Issue 13, point 8: a manual filing channel for EHRs with no write API.

A `manual` connection sends nothing: the signed note waits in
`awaiting_filing` (never retried, never swept) until its clinician or a
practice admin confirms "filed in EHR"; the filing page shows the sections in
the template's order with copy buttons and a PDF; an unfiled note raises one
alert after MANUAL_FILING_ALERT_HOURS."""

import io
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.urls import reverse
from pypdf import PdfReader

from audit.models import AuditEvent
from integrations.builders import NoteInput, SectionInput
from integrations.builders.pdf import filing_pdf_build, filing_sections
from integrations.errors import ConnectionInvalid, DeliveryRefused
from integrations.manual_filing import manual_filing_alert_overdue, manual_filing_confirm
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection
from integrations.services import connection_create, delivery_send, delivery_sweep
from notes import services as note_services
from notes.errors import NotPermitted
from notes.models import Membership, Note, NoteTemplate
from tests.factories import client_factory, member_factory, note_factory, note_sign_now

ROOT = Path(__file__).resolve().parents[2]
S = Delivery.State


def manual_connection(practice, *, sandbox: bool = True) -> EHRConnection:
    return connection_create(practice=practice, name="SimplePractice", kind="manual", base_url="", is_sandbox=sandbox)


def signed_note(world, **client_kwargs) -> Note:
    client = client_factory(world.practice, world.clinician, **client_kwargs)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    return note_sign_now(note, world.clinician)


def awaiting(world) -> Delivery:
    """A signed note over a manual connection, moved on by the worker."""
    manual_connection(world.practice)
    note = signed_note(world)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def filing_url(delivery) -> str:
    return reverse("integrations:filing", args=[delivery.pk])


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


# ---------------------------------------------------------------- the channel


def test_a_signed_note_over_a_manual_connection_awaits_filing_without_sending(world):
    delivery = awaiting(world)
    assert delivery.state == S.AWAITING_FILING
    assert delivery.ehr_id == "" and delivery.delivered_at is None and delivery.next_attempt_at is None
    (row,) = DeliveryAttempt.objects.filter(delivery=delivery)
    assert row.outcome == DeliveryAttempt.Outcome.TO_FILE and row.finished_at is not None
    event = AuditEvent.objects.get(action="delivery.attempt", object_id=str(delivery.pk))
    assert event.after["state"] == S.AWAITING_FILING


def test_a_note_awaiting_filing_is_neither_retried_by_the_worker_nor_swept(world):
    delivery = awaiting(world)
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("celery")
    result = delivery_send(delivery_id=delivery.pk)
    assert result.state == S.AWAITING_FILING and result.reschedule_in is None
    much_later = delivery.created_at + timedelta(days=30)
    delivery_sweep(now=much_later)
    assert broker.llen("celery") == 0
    delivery.refresh_from_db()
    assert delivery.state == S.AWAITING_FILING and delivery.attempts == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_a_manual_connection_keeps_the_sandbox_rule(world):
    manual_connection(world.practice, sandbox=False)
    delivery = Delivery.objects.get(note=signed_note(world, synthetic=True))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == S.FAILED and "synthetic" in delivery.last_error


# ---------------------------------------------------------------- the filing page


def test_the_clinician_gets_the_sections_in_template_order_with_copy_buttons(world, login_as):
    delivery = awaiting(world)
    page = login_as(world.clinician).get(filing_url(delivery))
    assert page.status_code == 200
    html = page.content.decode()
    labels = list(delivery.note.sections.order_by("order").values_list("label", flat=True))
    positions = [html.index(f"<h2>{label}</h2>") for label in labels]
    assert positions == sorted(positions)
    assert html.count('data-copy-target="filing-') == len(labels) + 1  # and the attestation
    assert "js/filing.js" in html and "<script>" not in html  # static file, no inline script (CSP)
    for section in delivery.note.sections.all():
        assert section.text.split("\n")[0][:40] in html.replace("&quot;", '"').replace("&#x27;", "'")
    assert reverse("integrations:filing_pdf", args=[delivery.pk]) in html


def test_the_pdf_carries_the_client_and_every_section(world, login_as):
    delivery = awaiting(world)
    response = login_as(world.clinician).get(reverse("integrations:filing_pdf", args=[delivery.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content)
    client = delivery.note.client
    assert f"{client.given_name} {client.family_name}" in text and client.ehr_patient_id in text
    labels = list(delivery.note.sections.order_by("order").values_list("label", flat=True))
    positions = [text.index(label) for label in labels]
    assert positions == sorted(positions)
    assert "Drafted with AI assistance" in text


def test_viewing_the_filing_page_and_the_pdf_is_in_the_phi_access_log(world, login_as):
    delivery = awaiting(world)
    browser = login_as(world.clinician)
    views = AuditEvent.objects.filter(action="phi.view", note_id=delivery.note_id, actor_user=world.clinician)
    before = views.count()
    browser.get(filing_url(delivery))
    browser.get(reverse("integrations:filing_pdf", args=[delivery.pk]))
    assert views.count() == before + 2


def test_the_note_page_links_to_filing_while_the_note_awaits_it(world, login_as):
    delivery = awaiting(world)
    browser = login_as(world.clinician)
    note_page = reverse("note_detail", args=[delivery.note_id])
    assert filing_url(delivery) in browser.get(note_page).content.decode()
    manual_filing_confirm(delivery=delivery, actor=world.clinician)
    assert filing_url(delivery) not in browser.get(note_page).content.decode()


def test_an_unsigned_note_is_never_shown_for_filing(world, login_as):
    manual_connection(world.practice)
    note = note_factory(practice=world.practice, clinician=world.clinician)
    secret = note.sections.order_by("order").first().text[:30]
    # Whatever put it there (admin, a bug), a row for an unsigned note:
    delivery = Delivery.objects.create(
        note=note, practice=world.practice, idempotency_key="x:1", state=S.AWAITING_FILING
    )
    browser = login_as(world.clinician)
    page = browser.get(filing_url(delivery))
    assert page.status_code == 409 and "Only a signed note" in page.content.decode()
    assert secret not in page.content.decode() and "data-copy-target" not in page.content.decode()
    assert browser.get(reverse("integrations:filing_pdf", args=[delivery.pk])).status_code == 409
    with pytest.raises(DeliveryRefused):
        manual_filing_confirm(delivery=delivery, actor=world.clinician)
    delivery.refresh_from_db()
    assert delivery.state == S.AWAITING_FILING and delivery.filed_by is None


def test_a_psychotherapy_note_is_never_offered_for_filing(world, login_as):
    manual_connection(world.practice)
    NoteTemplate.objects.filter(practice=world.practice, key="soap").update(is_psychotherapy_notes=True)
    note = signed_note(world)
    assert not Delivery.objects.filter(note=note).exists()
    delivery = Delivery.objects.create(
        note=note, practice=world.practice, idempotency_key="x:1", state=S.AWAITING_FILING
    )
    browser = login_as(world.clinician)
    page = browser.get(filing_url(delivery))
    assert page.status_code == 409 and "Psychotherapy notes" in page.content.decode()
    assert "data-copy-target" not in page.content.decode()
    assert browser.get(reverse("integrations:filing_pdf", args=[delivery.pk])).status_code == 409
    assert browser.post(filing_url(delivery), {"ehr_reference": ""}).status_code == 409
    assert Delivery.objects.get(pk=delivery.pk).state == S.AWAITING_FILING


# ---------------------------------------------------------------- confirming


def test_confirming_records_who_when_and_the_ehr_reference(world, login_as):
    delivery = awaiting(world)
    response = login_as(world.clinician).post(filing_url(delivery), {"ehr_reference": "SP-NOTE-8812"})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == S.DELIVERED
    assert delivery.filed_by == world.clinician and delivery.delivered_at is not None
    assert delivery.ehr_id == "SP-NOTE-8812"
    row = DeliveryAttempt.objects.get(delivery=delivery, outcome=DeliveryAttempt.Outcome.FILED)
    assert row.ehr_id == "SP-NOTE-8812" and row.number == 2
    event = AuditEvent.objects.get(action="delivery.filed", object_id=str(delivery.pk))
    assert event.actor_user == world.clinician
    assert event.before == {"state": S.AWAITING_FILING}
    assert event.after["state"] == S.DELIVERED and event.after["ehr_id"] == "SP-NOTE-8812"


def test_a_practice_admin_may_confirm_without_seeing_the_note(world, login_as):
    delivery = awaiting(world)
    browser = login_as(world.admin)
    page = browser.get(filing_url(delivery))
    assert page.status_code == 200
    for section in delivery.note.sections.all():
        assert section.text[:30] not in page.content.decode()
    assert browser.get(reverse("integrations:filing_pdf", args=[delivery.pk])).status_code == 404
    assert browser.post(filing_url(delivery), {"ehr_reference": ""}).status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == S.DELIVERED and delivery.filed_by == world.admin and delivery.ehr_id == ""


def test_a_second_confirmation_is_refused_and_changes_nothing(world, login_as):
    delivery = awaiting(world)
    manual_filing_confirm(delivery=delivery, actor=world.clinician, ehr_reference="first")
    with pytest.raises(DeliveryRefused, match="Already confirmed"):
        manual_filing_confirm(delivery=delivery, actor=world.admin, ehr_reference="second")
    response = login_as(world.admin).post(filing_url(delivery), {"ehr_reference": "third"})
    assert response.status_code == 409 and "Already confirmed" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.filed_by == world.clinician and delivery.ehr_id == "first"
    assert DeliveryAttempt.objects.filter(delivery=delivery, outcome="filed").count() == 1
    assert AuditEvent.objects.filter(action="delivery.filed", object_id=str(delivery.pk)).count() == 1


def test_an_amendment_waits_for_its_earlier_version_to_be_filed_then_is_offered(
    world, login_as, django_capture_on_commit_callbacks
):
    delivery = awaiting(world)
    amendment = note_services.note_amend(note=delivery.note, reason="Wrong homework", actor=world.clinician)
    amendment = note_sign_now(amendment, world.clinician)
    later = Delivery.objects.get(note=amendment)
    assert later.state == S.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        manual_filing_confirm(delivery=delivery, actor=world.clinician, ehr_reference="SP-1")
    later.refresh_from_db()
    assert later.state == S.PENDING
    delivery_send(delivery_id=later.pk)
    later.refresh_from_db()
    assert later.state == S.AWAITING_FILING
    html = login_as(world.clinician).get(filing_url(later)).content.decode()
    assert "<h2>Amendment</h2>" in html and "Wrong homework" in html


def test_an_ehr_reference_longer_than_the_field_is_a_form_error(world, login_as):
    delivery = awaiting(world)
    response = login_as(world.clinician).post(filing_url(delivery), {"ehr_reference": "x" * 201})
    assert response.status_code == 400
    assert Delivery.objects.get(pk=delivery.pk).state == S.AWAITING_FILING


def test_another_practice_or_a_colleague_gets_a_404(world, login_as):
    delivery = awaiting(world)
    other_admin = member_factory(world.other_practice, Membership.Role.PRACTICE_ADMIN).user
    for user in (world.outsider, other_admin, world.colleague):
        browser = login_as(user)
        assert browser.get(filing_url(delivery)).status_code == 404
        assert browser.post(filing_url(delivery), {"ehr_reference": "x"}).status_code == 404
        assert browser.get(reverse("integrations:filing_pdf", args=[delivery.pk])).status_code == 404
    with pytest.raises(NotPermitted):
        manual_filing_confirm(delivery=delivery, actor=world.outsider)
    with pytest.raises(NotPermitted):
        manual_filing_confirm(delivery=delivery, actor=world.colleague)
    with pytest.raises(NotPermitted):
        manual_filing_confirm(delivery=delivery, actor=other_admin)
    assert Delivery.objects.get(pk=delivery.pk).state == S.AWAITING_FILING


def test_a_delivery_sent_over_an_api_has_no_filing_page(world, login_as):
    note = signed_note(world)
    delivery = Delivery.objects.get(note=note)
    Delivery.objects.filter(pk=delivery.pk).update(state=S.DELIVERED, ehr_id="DR1")
    assert login_as(world.clinician).get(filing_url(delivery)).status_code == 404
    with pytest.raises(DeliveryRefused, match="not awaiting filing"):
        manual_filing_confirm(delivery=delivery, actor=world.clinician)


# ---------------------------------------------------------------- ageing and the alert


def test_an_unfiled_note_raises_one_alert_after_the_configured_age(world, settings):
    settings.MANUAL_FILING_ALERT_HOURS = 6
    delivery = awaiting(world)
    alerts = Alert.objects.filter(delivery=delivery, kind=Alert.Kind.UNFILED)
    delivery_sweep(now=delivery.created_at + timedelta(hours=5, minutes=59))
    assert not alerts.exists()
    delivery_sweep(now=delivery.created_at + timedelta(hours=6, minutes=1))
    assert alerts.count() == 1 and "6 hours" in alerts.get().reason
    delivery_sweep(now=delivery.created_at + timedelta(hours=30))
    assert manual_filing_alert_overdue(now=delivery.created_at + timedelta(hours=40)) == 0
    assert alerts.count() == 1  # once per delivery
    manual_filing_confirm(delivery=delivery, actor=world.clinician)
    assert alerts.get().resolved_at is not None


def test_the_alert_age_defaults_to_48_hours(world):
    assert django_settings.MANUAL_FILING_ALERT_HOURS == 48
    delivery = awaiting(world)
    assert manual_filing_alert_overdue(now=delivery.created_at + timedelta(hours=47)) == 0
    assert manual_filing_alert_overdue(now=delivery.created_at + timedelta(hours=49)) == 1


def test_a_filed_note_raises_no_alert(world):
    delivery = awaiting(world)
    manual_filing_confirm(delivery=delivery, actor=world.clinician)
    assert manual_filing_alert_overdue(now=delivery.created_at + timedelta(days=10)) == 0


def test_the_dashboard_shows_unfiled_notes_and_their_age(world, login_as, settings):
    delivery = awaiting(world)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=delivery.created_at - timedelta(hours=50))
    html = login_as(world.admin).get(reverse("integrations:dashboard")).content.decode()
    assert 'id="awaiting-filing"' in html and f'data-delivery="{delivery.pk}" class="overdue"' in html
    assert "50 h, overdue" in html and filing_url(delivery) in html


def test_a_malformed_alert_age_stops_start_up_with_its_name():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSYFI_TEST")}
    for value in ("soon", "0", "-3"):
        env["MANUAL_FILING_ALERT_HOURS"] = value
        result = subprocess.run(
            [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode != 0 and "MANUAL_FILING_ALERT_HOURS" in result.stderr


# ---------------------------------------------------------------- the connection


def test_a_manual_connection_needs_no_address_or_credentials(world, login_as):
    browser = login_as(world.admin)
    form = {"name": "TherapyNotes", "kind": "manual", "base_url": "", "auth_kind": "none", "is_sandbox": "on"}
    assert browser.post(reverse("integrations:connections"), form).status_code == 302
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert connection.kind == "manual" and connection.base_url == "" and connection.credentials_encrypted == ""
    refused = browser.post(reverse("integrations:connections"), {**form, "base_url": "https://ehr.example.org"})
    assert refused.status_code == 400 and "sends nothing" in refused.content.decode()
    fhir = browser.post(reverse("integrations:connections"), {**form, "kind": "fhir"})
    assert fhir.status_code == 400 and "Enter the EHR" in fhir.content.decode()


def test_a_manual_connection_refuses_credentials(world):
    with pytest.raises(ConnectionInvalid) as refused:
        connection_create(
            practice=world.practice,
            name="x",
            kind="manual",
            base_url="",
            is_sandbox=True,
            auth_kind="bearer",
            secrets={"token": "t"},
        )
    assert refused.value.field in ("secret", "auth_kind")
    assert not EHRConnection.objects.filter(practice=world.practice).exists()


# ---------------------------------------------------------------- the builder (pure)


def _note_input(**overrides) -> NoteInput:
    import uuid

    fields = dict(
        lineage=uuid.UUID("6f1c1d8e-5a0b-4c53-9a43-3c2f1f3c9b11"),
        version=2,
        sections=(
            SectionInput(key="subjective", label="Subjective", text="Client reports “better” sleep — Nguyễn."),
            SectionInput(key="objective", label="Objective", text="Alert, oriented x3."),
            SectionInput(
                key="diagnosis",
                label="Diagnosis",
                text="",
                codes=("F33.1",),
                kind="diagnosis_codes",
                code_labels=("Major depressive disorder, recurrent, moderate",),
            ),
        ),
        patient_ehr_id="PAT00042",
        patient_family_name="Łukasiewicz",
        patient_given_name="Zoë",
        patient_birth_date="1990-04-12",
        synthetic=True,
        clinician_name="Sam Rivera, PsyD",
        clinician_ehr_id="",
        signed_at=datetime(2026, 11, 24, 16, 0, tzinfo=UTC),
        session_start=datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
        session_end=datetime(2026, 11, 24, 15, 50, tzinfo=UTC),
        model_name="scribe-llm",
        model_version="2.3",
        ai_source_name="Demo Scribe",
        identifier_system="urn:psyfi:test",
    )
    fields.update(overrides)
    return NoteInput(**fields)


def test_the_pdf_builder_is_pure_and_keeps_the_text_as_signed():
    note = _note_input()
    mapping = {"fhir": {"sections": {"objective": {"title": "Mental status"}}}}
    now = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    body = filing_pdf_build(note, mapping, now=now)
    assert body == filing_pdf_build(note, mapping, now=now)
    text = pdf_text(body)
    assert "Zoë Łukasiewicz" in text and "PAT00042" in text
    assert "“better” sleep — Nguyễn." in text
    assert text.index("Subjective") < text.index("Mental status") < text.index("F33.1 Major depressive")
    titles = [s.title for s in filing_sections(note, mapping)]
    assert titles == ["Subjective", "Mental status", "Diagnosis", "Attestation"]


def test_an_amendment_says_what_it_amends():
    note = _note_input(amends_version_id="v1-uuid", amendment_reason="Corrected the dose.")
    sections = filing_sections(note, {})
    assert [s.key for s in sections][-2:] == ["amendment", "attestation"]
    assert "Corrected the dose." in sections[-2].body


def test_characters_the_font_lacks_are_not_written_to_the_log(caplog):
    note = _note_input(patient_given_name="Mei 美")
    with caplog.at_level(logging.DEBUG):
        filing_pdf_build(note, {}, now=datetime(2026, 11, 24, 17, 0, tzinfo=UTC))
    assert not [r for r in caplog.records if "美" in r.getMessage()]
