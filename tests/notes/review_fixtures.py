"""Many drafts fast, for the queue's query-count test and bench/review.py.

draft_ingest writes an audit event per draft; 500 of those take seconds, so
this copies one properly ingested note with bulk_create instead.
"""

from datetime import timedelta

from notes.models import Draft, Flag, Note, NoteSection


def notes_bulk_clone(*, prototype: Note, clients: list, count: int, step: timedelta = timedelta(minutes=7)) -> list:
    """count copies of prototype (draft, note, sections, flags), spread over
    clients and sessions step apart. Returns the new notes."""
    draft = prototype.draft
    sections = list(prototype.sections.all())
    flags = list(prototype.flags.all())
    drafts = Draft.objects.bulk_create(
        Draft(
            practice_id=draft.practice_id,
            ai_source_id=draft.ai_source_id,
            client=clients[i % len(clients)],
            clinician_id=draft.clinician_id,
            payload=draft.payload,
            model_name=draft.model_name,
            model_version=draft.model_version,
            session_start=draft.session_start - step * (i + 1),
            session_duration_minutes=draft.session_duration_minutes,
            session_type=draft.session_type,
        )
        for i in range(count)
    )
    notes = Note.objects.bulk_create(
        Note(
            practice_id=prototype.practice_id,
            draft=d,
            client=d.client,
            clinician_id=prototype.clinician_id,
            template_version_id=prototype.template_version_id,
            high_risk=(i % 5 == 0),
        )
        for i, d in enumerate(drafts)
    )
    NoteSection.objects.bulk_create(
        NoteSection(
            note=n,
            key=s.key,
            label=s.label,
            order=s.order,
            kind=s.kind,
            required=s.required,
            text=s.text,
            ai_text=s.ai_text,
            codes=s.codes,
            ai_codes=s.ai_codes,
            origin=s.origin,
        )
        for n in notes
        for s in sections
    )
    Flag.objects.bulk_create(
        Flag(note=n, kind=f.kind, section_key=f.section_key, field=f.field, value=f.value, message=f.message)
        for n in notes
        for f in flags
    )
    return notes
