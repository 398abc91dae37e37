"""Field mappings: save a new version (validated against the template),
export and import."""

from django.db import transaction
from django.db.models import Max

from audit.services import actor_person, actor_system, audit_record
from integrations.errors import (
    MappingInvalid,
)
from integrations.mapping import mapping_validate
from integrations.models import FieldMapping
from notes.models import NoteTemplate

# ---------------------------------------------------------------- mappings


@transaction.atomic
def mapping_save(*, template: NoteTemplate, document, actor=None, activate: bool = True) -> FieldMapping:
    """Store a new version of a template's mapping (import or edit). Raises
    MappingInvalid with field errors; nothing is written then."""
    version = template.versions.filter(is_active=True).first()
    keys = list(version.sections.values_list("key", flat=True)) if version else []
    errors = mapping_validate(document, section_keys=keys)
    if errors:
        raise MappingInvalid("The mapping does not fit the template.", errors=errors)
    # Lock the template row so two saves cannot take the same version number.
    NoteTemplate.objects.select_for_update().get(pk=template.pk)
    last = FieldMapping.objects.filter(template=template).aggregate(m=Max("version"))["m"] or 0
    if activate:
        FieldMapping.objects.filter(template=template, is_active=True).update(is_active=False)
    mapping = FieldMapping.objects.create(
        practice=template.practice,
        template=template,
        version=last + 1,
        document=document,
        is_active=activate,
        created_by=actor,
    )
    audit_record(
        practice=template.practice,
        actor=actor_person(actor) if actor else actor_system("setup"),
        action="mapping.save",
        obj=mapping,
        after={"version": mapping.version, "active": activate},
    )
    return mapping


def mapping_export(mapping: FieldMapping) -> dict:
    return {"template": mapping.template.key, "version": mapping.version, "document": mapping.document}


def mapping_import(*, template: NoteTemplate, data, actor=None) -> FieldMapping:
    """Import an exported mapping (or a bare document) as the next version."""
    if isinstance(data, dict) and "document" in data:
        if data.get("template") not in (None, template.key):
            raise MappingInvalid(
                f"This mapping was exported for template '{data.get('template')}'.", errors={"template": ["Mismatch."]}
            )
        data = data["document"]
    return mapping_save(template=template, document=data, actor=actor)
