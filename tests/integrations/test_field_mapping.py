"""Versioned field mapping documents: validation against the template,
import/export, diff, and the version a note is pinned to."""

import pytest

from integrations.errors import MappingInvalid
from integrations.mapping import mapping_default_document, mapping_diff
from integrations.models import FieldMapping
from integrations.services import mapping_export, mapping_import, mapping_save
from notes.models import NoteTemplate


@pytest.fixture
def template(world):
    return NoteTemplate.objects.get(practice=world.practice, key="soap")


@pytest.fixture
def document(template):
    sections = template.versions.get(is_active=True).sections.values("key", "label", "loinc_code")
    return mapping_default_document(list(sections))


def test_saving_makes_a_new_active_version(template, document):
    v1 = mapping_save(template=template, document=document)
    document["fhir"]["type"] = document["fhir"]["type"][:1]
    v2 = mapping_save(template=template, document=document)
    assert (v1.version, v2.version) == (1, 2)
    v1.refresh_from_db()
    assert not v1.is_active and v2.is_active


def test_a_section_the_template_does_not_have_is_refused_with_its_path(template, document):
    document["fhir"]["sections"]["homework"] = {"title": "Homework", "loinc": ""}
    with pytest.raises(MappingInvalid) as exc:
        mapping_save(template=template, document=document)
    assert "fhir.sections.homework" in exc.value.errors
    assert not FieldMapping.objects.exists()


@pytest.mark.parametrize(
    ("path", "value", "error_key"),
    [
        (("fhir", "category"), "imaging", "fhir.category"),
        (("fhir", "type"), [], "fhir.type"),
        (("fhir", "unmapped"), "nowhere", "fhir.unmapped"),
        (("hl7", "document_type"), "XX", "hl7.document_type"),
        (("rest", "unmapped"), "not a path!", "rest.unmapped"),
    ],
)
def test_bad_values_are_refused_with_field_errors(template, document, path, value, error_key):
    document[path[0]][path[1]] = value
    with pytest.raises(MappingInvalid) as exc:
        mapping_save(template=template, document=document)
    assert error_key in exc.value.errors


def test_a_bad_loinc_code_is_refused(template, document):
    document["fhir"]["type"][0]["code"] = "not-loinc"
    with pytest.raises(MappingInvalid) as exc:
        mapping_save(template=template, document=document)
    assert "fhir.type.0" in exc.value.errors


def test_export_then_import_round_trips_as_the_next_version(template, document):
    v1 = mapping_save(template=template, document=document)
    exported = mapping_export(v1)
    v2 = mapping_import(template=template, data=exported)
    assert v2.version == 2 and v2.document == v1.document


def test_importing_another_templates_export_is_refused(world, template, document):
    exported = mapping_export(mapping_save(template=template, document=document))
    dap = NoteTemplate.objects.get(practice=world.practice, key="dap")
    with pytest.raises(MappingInvalid, match="exported for template 'soap'"):
        mapping_import(template=dap, data=exported)


def test_importing_something_that_is_not_a_mapping_is_refused(template):
    with pytest.raises(MappingInvalid):
        mapping_import(template=template, data=["not", "a", "mapping"])


def test_the_diff_between_versions_shows_what_changed(template, document):
    v1 = mapping_save(template=template, document=document)
    changed = {**document, "hl7": {**document["hl7"], "document_type": "CN"}}
    v2 = mapping_save(template=template, document=changed)
    diff = mapping_diff(v1.document, v2.document, old_label="v1", new_label="v2")
    assert '-    "document_type": "PN",' in diff
    assert '+    "document_type": "CN",' in diff
    assert diff.startswith("--- v1\n+++ v2")


def test_a_pinned_mapping_changes_what_the_ehr_receives(world, sign_for, template, document):
    import base64

    from django.utils import timezone

    from integrations.builders.fhir import documentreference_build
    from integrations.models import Delivery
    from integrations.services import delivery_mapping_document, note_input

    document["fhir"]["sections"]["subjective"]["title"] = "Client report"
    document["fhir"]["type"] = [
        {"system": "http://loinc.org", "code": "11510-5", "display": "Psychology Progress note"}
    ]
    mapping_save(template=template, document=document)
    delivery = Delivery.objects.get(note=sign_for(world))
    resource = documentreference_build(note_input(delivery), delivery_mapping_document(delivery), now=timezone.now())
    assert [c["code"] for c in resource["type"]["coding"]] == ["11510-5"]
    assert base64.b64decode(resource["content"][0]["attachment"]["data"]).decode().startswith("Client report\n")
