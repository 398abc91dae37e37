"""Issue 14 §4: custom templates edited as a draft version, previewed with a
sample draft, published as the new active version (notes already drafted
keep theirs), compared version to version, marked as psychotherapy notes."""

import json

import pytest

from audit.models import AuditEvent
from notes.errors import DomainError
from notes.models import NoteTemplate, NoteTemplateVersion
from practice_admin.services import templates as svc
from tests.factories import note_factory

pytestmark = pytest.mark.django_db


def _sections_post(rows, **settings):
    data = {
        "sections-TOTAL_FORMS": str(len(rows)),
        "sections-INITIAL_FORMS": "0",
        "sections-MIN_NUM_FORMS": "0",
        "sections-MAX_NUM_FORMS": "40",
        "field_map": settings.get("field_map", ""),
        "fallback_section_key": settings.get("fallback", ""),
        "unplaced_policy": settings.get("policy", "flag"),
    }
    for i, row in enumerate(rows):
        for name, value in row.items():
            if value is True:
                value = "on"
            if value is not False:
                data[f"sections-{i}-{name}"] = value
    return data


def test_an_admin_creates_a_custom_template_with_a_draft_version(world, login_as):
    response = login_as(world.admin).post(
        "/practice/templates/", {"name": "Intake assessment", "key": "", "is_psychotherapy_notes": ""}
    )
    template = NoteTemplate.objects.get(practice=world.practice, key="intake-assessment")
    assert response.status_code == 302
    assert template.kind == NoteTemplate.Kind.CUSTOM
    version = template.versions.get()
    assert (version.version, version.is_draft, version.is_active) == (1, True, False)
    assert AuditEvent.objects.get(action="template.create").actor_user == world.admin


def test_saving_the_draft_replaces_its_sections_and_audits_before_and_after(world, login_as):
    template = svc.template_custom_create(actor=world.admin, name="Intake")
    admin = login_as(world.admin)
    rows = [
        {"key": "history", "label": "History", "order": "1", "kind": "text", "required": True},
        {"key": "plan", "label": "Plan", "order": "2", "kind": "text", "required": False},
    ]
    response = admin.post(
        f"/practice/templates/{template.pk}/",
        _sections_post(rows, field_map="client_reported_symptoms = history\nnext_steps = plan", fallback="history"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    draft = template.versions.get(is_draft=True)
    assert [(s.key, s.label, s.order, s.required) for s in draft.sections.all()] == [
        ("history", "History", 1, True),
        ("plan", "Plan", 2, False),
    ]
    assert draft.field_map == {"client_reported_symptoms": "history", "next_steps": "plan"}
    event = AuditEvent.objects.get(action="template.draft_save")
    assert event.actor_user == world.admin
    assert [s["key"] for s in event.before["sections"]] == ["note"]
    assert [s["key"] for s in event.after["sections"]] == ["history", "plan"]


def test_a_field_mapped_to_a_missing_section_is_refused_and_nothing_changes(world, login_as):
    template = svc.template_custom_create(actor=world.admin, name="Intake")
    rows = [{"key": "history", "label": "History", "order": "1", "kind": "text"}]
    response = login_as(world.admin).post(
        f"/practice/templates/{template.pk}/", _sections_post(rows, field_map="next_steps = plan")
    )
    assert response.status_code == 400
    assert "Field “next_steps” maps to unknown section “plan”." in response.content.decode()
    assert [s.key for s in template.versions.get().sections.all()] == ["note"]


def test_publishing_makes_the_draft_active_and_posted_drafts_keep_their_version(world, login_as):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    v1 = soap.versions.get(is_active=True)
    earlier = note_factory(practice=world.practice, clinician=world.clinician)
    assert earlier.template_version == v1
    draft = svc.template_draft_start(actor=world.admin, template=soap)
    spec = svc.version_spec(draft)
    sections = spec["sections"] + [{"key": "homework", "label": "Homework", "kind": "text", "required": False}]
    svc.template_draft_save(
        actor=world.admin,
        version=draft,
        sections=sections,
        field_map=spec["field_map"],
        fallback_section_key="",
        unplaced_policy="flag",
    )
    response = login_as(world.admin).post(f"/practice/templates/{soap.pk}/v{draft.version}/publish/")
    assert response.status_code == 302
    draft.refresh_from_db()
    v1.refresh_from_db()
    assert (draft.is_active, draft.is_draft, v1.is_active) == (True, False, False)
    earlier.refresh_from_db()
    assert earlier.template_version == v1  # the posted draft keeps the version it was mapped with
    later = note_factory(practice=world.practice, clinician=world.clinician)
    assert later.template_version == draft
    assert "homework" in set(later.sections.values_list("key", flat=True))
    event = AuditEvent.objects.get(action="template.publish")
    assert (event.actor_user, event.before, event.after) == (
        world.admin,
        {"active_version": 1},
        {"active_version": 2},
    )


def test_a_published_version_cannot_be_edited(world):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    active = soap.versions.get(is_active=True)
    with pytest.raises(DomainError, match="is published and cannot change"):
        svc.template_draft_save(
            actor=world.admin,
            version=active,
            sections=[{"key": "x", "label": "X"}],
            field_map={},
            fallback_section_key="",
            unplaced_policy="flag",
        )


def test_the_diff_shows_added_and_changed_sections(world, login_as):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    draft = svc.template_draft_start(actor=world.admin, template=soap)
    spec = svc.version_spec(draft)
    sections = [dict(s) for s in spec["sections"]]
    sections[0]["label"] = "Client's report"
    sections.append({"key": "homework", "label": "Homework", "kind": "text", "required": False, "order": 99})
    svc.template_draft_save(
        actor=world.admin,
        version=draft,
        sections=sections,
        field_map=spec["field_map"],
        fallback_section_key="homework",
        unplaced_policy="fallback",
    )
    page = login_as(world.admin).get(f"/practice/templates/{soap.pk}/diff/", {"a": 1, "b": 2}).content.decode()
    assert "+ homework “Homework”" in page
    assert "subjective: label Subjective → Client&#x27;s report" in page
    assert "unplaced_policy: flag → fallback" in page


def test_the_diff_of_a_template_without_versions_is_a_404_not_a_500(world, login_as):
    bare = NoteTemplate.objects.create(practice=world.practice, key="bare", name="Bare", kind=NoteTemplate.Kind.CUSTOM)
    assert not bare.versions.exists()
    response = login_as(world.admin).get(f"/practice/templates/{bare.pk}/diff/")
    assert response.status_code == 404


def test_the_preview_maps_a_sample_draft_onto_the_draft_and_saves_nothing(world, login_as):
    template = svc.template_custom_create(actor=world.admin, name="Intake")
    draft = template.versions.get()
    svc.template_draft_save(
        actor=world.admin,
        version=draft,
        sections=[
            {"key": "history", "label": "History", "kind": "text", "required": True},
            {"key": "other", "label": "Everything else", "kind": "text"},
        ],
        field_map={"client_reported_symptoms": "history"},
        fallback_section_key="other",
        unplaced_policy="fallback",
    )
    sample = {"client_reported_symptoms": "Sleeps better.", "next_steps": "Weekly sessions."}
    before = AuditEvent.objects.count()
    admin = login_as(world.admin)
    response = admin.post(f"/practice/templates/{template.pk}/v1/preview/", {"sample": json.dumps(sample)})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Sleeps better." in page and "Weekly sessions." in page
    assert AuditEvent.objects.count() == before
    bad = admin.post(f"/practice/templates/{template.pk}/v1/preview/", {"sample": "{not json"})
    assert bad.status_code == 400 and "The sample is not valid JSON" in bad.content.decode()


def test_a_preview_sample_nested_too_deeply_or_with_an_endless_number_is_a_field_error(world, login_as):
    template = svc.template_custom_create(actor=world.admin, name="Intake")
    admin = login_as(world.admin)
    for sample in ("[" * 100_000, '{"a": ' + "1" * 10_000 + "}"):
        response = admin.post(f"/practice/templates/{template.pk}/v1/preview/", {"sample": sample})
        assert response.status_code == 400
        assert "The sample is nested too deeply or holds a number too long to read." in response.content.decode()


def test_marking_as_psychotherapy_notes_is_audited(world, login_as):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    response = login_as(world.admin).post(
        f"/practice/templates/{soap.pk}/psychotherapy/", {"is_psychotherapy_notes": "on"}
    )
    assert response.status_code == 302
    soap.refresh_from_db()
    assert soap.is_psychotherapy_notes
    event = AuditEvent.objects.get(action="template.psychotherapy_set")
    assert event.actor_user == world.admin and event.after == {"is_psychotherapy_notes": True}


def test_the_template_page_links_the_mapping_editor(world, login_as):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    page = login_as(world.admin).get(f"/practice/templates/{soap.pk}/").content.decode()
    assert f'href="/integrations/templates/{soap.pk}/mapping/import/"' in page
    assert 'href="/integrations/mappings/"' in page


def test_another_practices_template_is_unreachable(world, login_as):
    theirs = NoteTemplate.objects.get(practice=world.other_practice, key="soap")
    admin = login_as(world.admin)
    assert admin.get(f"/practice/templates/{theirs.pk}/").status_code == 404
    assert admin.post(f"/practice/templates/{theirs.pk}/draft/").status_code == 404
    assert admin.post(f"/practice/templates/{theirs.pk}/v1/publish/").status_code == 404
    assert admin.get(f"/practice/templates/{theirs.pk}/v1/preview/").status_code == 404
    assert not NoteTemplateVersion.objects.filter(template=theirs, is_draft=True).exists()


def test_discarding_a_draft_leaves_the_active_version_and_is_audited(world, login_as):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    draft = svc.template_draft_start(actor=world.admin, template=soap)
    response = login_as(world.admin).post(f"/practice/templates/{soap.pk}/v{draft.version}/discard/")
    assert response.status_code == 302
    assert list(soap.versions.values_list("version", "is_active", "is_draft")) == [(1, True, False)]
    assert AuditEvent.objects.get(action="template.draft_discard").actor_user == world.admin
    with pytest.raises(DomainError, match="published versions are kept"):
        svc.template_draft_discard(actor=world.admin, version=soap.versions.get())
