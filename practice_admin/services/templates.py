"""Custom note templates: a practice admin edits a draft version and
publishes it as the template's new active version.

A draft version (NoteTemplateVersion.is_draft) is the only version whose
sections change. The intake maps drafts onto the active version only, and
publishing freezes the draft, so a note keeps the version it was mapped
with: drafts posted before a publish stay on the old version.
"""

import json
import re

from django.db import IntegrityError, transaction
from django.utils.text import slugify
from simple_history.utils import bulk_create_with_history

from audit.services import actor_person, audit_record
from notes import services as notes_services
from notes.errors import DomainError
from notes.mapping import CONTENT_FIELDS, ENVELOPE_FIELDS, MappedNote, map_ai_output
from notes.models import NoteTemplate, NoteTemplateVersion, TemplateSection
from practice_admin.access import admin_membership

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
SECTION_KINDS = TemplateSection.Kind.values
MAX_SECTIONS = 40


def version_spec(version: NoteTemplateVersion) -> dict:
    """A version as plain data: what the editor shows and the diff compares."""
    return {
        "sections": [
            {"key": s.key, "label": s.label, "order": s.order, "required": s.required, "kind": s.kind}
            for s in version.sections.order_by("order")
        ],
        "field_map": dict(version.field_map),
        "fallback_section_key": version.fallback_section_key,
        "unplaced_policy": version.unplaced_policy,
    }


def _spec_check(
    *, sections: list[dict], field_map: dict, fallback_section_key: str, unplaced_policy: str
) -> list[dict]:
    """The sections, ordered and cleaned. Raises DomainError naming what is
    wrong, so nothing half-valid is saved."""
    if not sections:
        raise DomainError("A template needs at least one section.", field="sections")
    if len(sections) > MAX_SECTIONS:
        raise DomainError(f"A template has at most {MAX_SECTIONS} sections.", field="sections")
    cleaned, keys = [], set()
    for i, raw in enumerate(sections, start=1):
        key = str(raw.get("key", "")).strip()
        label = str(raw.get("label", "")).strip()
        kind = raw.get("kind") or TemplateSection.Kind.TEXT
        if not _KEY.match(key):
            raise DomainError(
                f"Section {i}: the key “{key}” must be lower-case letters, digits, - or _.", field="sections"
            )
        if key in keys:
            raise DomainError(f"Section {i}: the key “{key}” is used twice.", field="sections")
        if not label or len(label) > 100:
            raise DomainError(f"Section {i} ({key}): enter a label of at most 100 characters.", field="sections")
        if kind not in SECTION_KINDS:
            raise DomainError(f"Section {i} ({key}): unknown kind “{kind}”.", field="sections")
        keys.add(key)
        cleaned.append(
            {
                "key": key,
                "label": label,
                "order": int(raw.get("order") or i),
                "required": bool(raw.get("required")),
                "kind": kind,
            }
        )
    cleaned.sort(key=lambda s: s["order"])
    for field_name, key in field_map.items():
        # The content fields of intake schema v1, or an extra field a scribe sends.
        if not _FIELD.match(field_name) or field_name in ENVELOPE_FIELDS:
            raise DomainError(
                f"“{field_name}” cannot be mapped: name an AI output field ({', '.join(CONTENT_FIELDS)}, "
                "or an extra field your scribe sends).",
                field="field_map",
            )
        if key not in keys:
            raise DomainError(f"Field “{field_name}” maps to unknown section “{key}”.", field="field_map")
    if unplaced_policy not in NoteTemplateVersion.UnplacedPolicy.values:
        raise DomainError("Choose what happens to content with no place.", field="unplaced_policy")
    if fallback_section_key and fallback_section_key not in keys:
        raise DomainError(f"The fallback section “{fallback_section_key}” is not a section.", field="fallback")
    if unplaced_policy == NoteTemplateVersion.UnplacedPolicy.FALLBACK and not fallback_section_key:
        raise DomainError("Choose the section that takes unplaced content.", field="fallback")
    return cleaned


def _sections_write(version: NoteTemplateVersion, sections: list[dict]) -> None:
    bulk_create_with_history(
        [
            TemplateSection(
                template_version=version,
                key=s["key"],
                label=s["label"],
                order=i,
                required=s["required"],
                kind=s["kind"],
            )
            for i, s in enumerate(sections, start=1)
        ],
        TemplateSection,
    )


def _template_lock(template: NoteTemplate) -> NoteTemplate:
    # The template row, so two admins starting, saving or publishing a draft
    # of one template take turns.
    return NoteTemplate.objects.select_for_update(no_key=True).get(pk=template.pk)


@transaction.atomic
def template_custom_create(*, actor, name: str, key: str = "", is_psychotherapy_notes: bool = False) -> NoteTemplate:
    """A new custom template with a one-section draft version 1 (content
    with no place goes to that section); nothing uses it until published."""
    membership = admin_membership(actor)
    name = name.strip()
    key = (key.strip() or slugify(name))[:50]
    if not name:
        raise DomainError("Enter the template's name.", field="name")
    if not _KEY.match(key):
        raise DomainError("The key must be lower-case letters, digits, - or _.", field="key")
    if NoteTemplate.objects.filter(practice=membership.practice, key=key).exists():
        raise DomainError(f"The practice already has a template with the key “{key}”.", field="key")
    template = NoteTemplate(
        practice=membership.practice,
        key=key,
        name=name,
        kind=NoteTemplate.Kind.CUSTOM,
        is_psychotherapy_notes=is_psychotherapy_notes,
    )
    template.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:
        raise DomainError(f"The practice already has a template with the key “{key}”.", field="key") from None
    version = NoteTemplateVersion.objects.create(
        template=template,
        version=1,
        is_draft=True,
        fallback_section_key="note",
        unplaced_policy=NoteTemplateVersion.UnplacedPolicy.FALLBACK,
        field_map={},
        created_by=actor,
    )
    _sections_write(version, [{"key": "note", "label": "Note", "required": True, "kind": "text"}])
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="template.create",
        obj=template,
        after={"key": key, "name": name, "is_psychotherapy_notes": is_psychotherapy_notes},
    )
    return template


@transaction.atomic
def template_draft_start(*, actor, template: NoteTemplate) -> NoteTemplateVersion:
    """The template's draft version: the existing one, or a new one copied
    from the active (else newest) version."""
    admin_membership(actor, practice_id=template.practice_id)
    template = _template_lock(template)
    draft = template.versions.filter(is_draft=True).first()
    if draft is not None:
        return draft
    base = template.versions.filter(is_active=True).first() or template.versions.order_by("-version").first()
    last = template.versions.order_by("-version").first()
    draft = NoteTemplateVersion.objects.create(
        template=template,
        version=(last.version + 1) if last else 1,
        is_draft=True,
        fallback_section_key=base.fallback_section_key if base else "",
        unplaced_policy=base.unplaced_policy if base else NoteTemplateVersion.UnplacedPolicy.FLAG,
        field_map=dict(base.field_map) if base else {},
        created_by=actor,
    )
    if base is not None:
        _sections_write(draft, version_spec(base)["sections"])
    audit_record(
        practice=template.practice,
        actor=actor_person(actor),
        action="template.draft_start",
        obj=draft,
        after={"version": draft.version, "from_version": base.version if base else None},
    )
    return draft


@transaction.atomic
def template_draft_save(
    *,
    actor,
    version: NoteTemplateVersion,
    sections: list[dict],
    field_map: dict,
    fallback_section_key: str,
    unplaced_policy: str,
) -> NoteTemplateVersion:
    """Replace the draft's sections and settings. Raises DomainError if the
    version is not a draft (published versions never change) or the spec is
    invalid; nothing is saved then."""
    admin_membership(actor, practice_id=version.template.practice_id)
    _template_lock(version.template)
    version = NoteTemplateVersion.objects.get(pk=version.pk)
    if not version.is_draft:
        raise DomainError(f"Version {version.version} is published and cannot change; start a new draft.")
    cleaned = _spec_check(
        sections=sections,
        field_map=field_map,
        fallback_section_key=fallback_section_key,
        unplaced_policy=unplaced_policy,
    )
    before = version_spec(version)
    version.sections.all().delete()
    _sections_write(version, cleaned)
    version.field_map = field_map
    version.fallback_section_key = fallback_section_key
    version.unplaced_policy = unplaced_policy
    version.save(update_fields=["field_map", "fallback_section_key", "unplaced_policy"])
    audit_record(
        practice=version.template.practice,
        actor=actor_person(actor),
        action="template.draft_save",
        obj=version,
        before=before,
        after=version_spec(version),
    )
    return version


@transaction.atomic
def template_publish(*, actor, version: NoteTemplateVersion) -> NoteTemplateVersion:
    """Make the draft the template's active version. Drafts posted from now
    on map onto it; notes already drafted keep their version. Raises
    DomainError if it is not a draft or its spec is invalid."""
    admin_membership(actor, practice_id=version.template.practice_id)
    template = _template_lock(version.template)
    version = NoteTemplateVersion.objects.get(pk=version.pk)
    if not version.is_draft:
        raise DomainError(f"Version {version.version} is already published.")
    spec = version_spec(version)
    _spec_check(
        sections=spec["sections"],
        field_map=spec["field_map"],
        fallback_section_key=spec["fallback_section_key"],
        unplaced_policy=spec["unplaced_policy"],
    )
    previous = template.versions.filter(is_active=True).first()
    if previous is not None:
        previous.is_active = False
        previous.save(update_fields=["is_active"])
    version.is_draft = False
    version.is_active = True
    version.save(update_fields=["is_draft", "is_active"])
    audit_record(
        practice=template.practice,
        actor=actor_person(actor),
        action="template.publish",
        obj=version,
        before={"active_version": previous.version if previous else None},
        after={"active_version": version.version},
    )
    return version


@transaction.atomic
def template_draft_discard(*, actor, version: NoteTemplateVersion) -> None:
    """Throw the draft away (it was never used by a note)."""
    admin_membership(actor, practice_id=version.template.practice_id)
    template = _template_lock(version.template)
    version = NoteTemplateVersion.objects.get(pk=version.pk)
    if not version.is_draft:
        raise DomainError(f"Version {version.version} is published; published versions are kept.")
    spec = version_spec(version)
    number = version.version
    version.sections.all().delete()
    version.delete()
    audit_record(
        practice=template.practice,
        actor=actor_person(actor),
        action="template.draft_discard",
        obj=template,
        before={"version": number, **spec},
    )


@transaction.atomic
def template_psychotherapy_set(*, actor, template: NoteTemplate, value: bool) -> NoteTemplate:
    """Mark the template as psychotherapy (process) notes, kept here and never
    delivered to the EHR, or unmark it."""
    admin_membership(actor, practice_id=template.practice_id)
    template = _template_lock(template)
    if template.is_psychotherapy_notes == value:
        return template
    template.is_psychotherapy_notes = value
    template.save(update_fields=["is_psychotherapy_notes"])
    audit_record(
        practice=template.practice,
        actor=actor_person(actor),
        action="template.psychotherapy_set",
        obj=template,
        before={"is_psychotherapy_notes": not value},
        after={"is_psychotherapy_notes": value},
    )
    return template


def template_versions_diff(a: NoteTemplateVersion, b: NoteTemplateVersion) -> dict:
    """What changed from version a to version b: sections added, removed and
    changed (field by field), field map entries, and the unplaced settings."""
    spec_a, spec_b = version_spec(a), version_spec(b)
    sections_a = {s["key"]: s for s in spec_a["sections"]}
    sections_b = {s["key"]: s for s in spec_b["sections"]}
    changed = []
    for key in sections_a.keys() & sections_b.keys():
        diffs = {
            name: (sections_a[key][name], sections_b[key][name])
            for name in ("label", "order", "required", "kind")
            if sections_a[key][name] != sections_b[key][name]
        }
        if diffs:
            changed.append({"key": key, "changes": diffs})
    fields = sorted(spec_a["field_map"].keys() | spec_b["field_map"].keys())
    return {
        "added": [sections_b[k] for k in sections_b if k not in sections_a],
        "removed": [sections_a[k] for k in sections_a if k not in sections_b],
        "changed": sorted(changed, key=lambda c: c["key"]),
        "field_map": [
            (f, spec_a["field_map"].get(f, ""), spec_b["field_map"].get(f, ""))
            for f in fields
            if spec_a["field_map"].get(f) != spec_b["field_map"].get(f)
        ],
        "settings": [
            (name, spec_a[name], spec_b[name])
            for name in ("fallback_section_key", "unplaced_policy")
            if spec_a[name] != spec_b[name]
        ],
    }


def template_preview(*, actor, version: NoteTemplateVersion, sample: str) -> MappedNote:
    """How a sample AI output (JSON text) maps onto the version, with the
    practice's vocabulary. Writes nothing. Raises DomainError on bad JSON."""
    admin_membership(actor, practice_id=version.template.practice_id)
    try:
        payload = json.loads(sample)
    except json.JSONDecodeError as exc:
        raise DomainError(f"The sample is not valid JSON: {exc.msg} (line {exc.lineno}).", field="sample") from None
    except (RecursionError, ValueError):
        # Nested deeper than the parser's recursion limit, or a number too long
        # to convert: no AI output looks like that, so a field error, not a 500.
        message = "The sample is nested too deeply or holds a number too long to read."
        raise DomainError(message, field="sample") from None
    if not isinstance(payload, dict):
        raise DomainError("The sample must be a JSON object of AI output fields.", field="sample")
    return map_ai_output(
        payload,
        notes_services.template_spec(version),
        vocabulary=notes_services.practice_vocabulary(practice_id=version.template.practice_id),
    )
