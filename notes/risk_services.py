"""Rescanning a section for risk language when a clinician changes it
(issue #12, point 2): an edit or a placement that adds "plans to overdose"
raises a risk flag before signing, and the note becomes high-risk.

Called by notes.services.note_edit_section inside its transaction, with the
note row already locked; every placement (notes.review_services) goes through
that function too.
"""

from audit.services import actor_person, audit_record
from notes.models import Flag, Note, NoteSection
from notes.risk_language import RiskSource, risk_current_message, risk_findings


def note_section_risk_rescan(*, note: Note, section: NoteSection, actor) -> Flag | None:
    """Raise one risk flag for the section's current-risk statements that no
    risk flag of this note names yet, and mark the note high-risk.

    Dedupe is by section and matched statement, against open and acknowledged
    flags alike, so an autosave never repeats a flag for a statement already
    raised (and an acknowledged one is not re-raised on the next keystroke).
    Flags of content awaiting placement (no section) count for every
    section: placing that content must not raise its statement twice.
    Removing risk language never unmarks the note: that is the clinician's
    call, recorded by acknowledging the flag.
    """
    current, _ = risk_findings([RiskSource(text=section.text, section_key=section.key)])
    if not current:
        return None
    known = set()
    for value in note.flags.filter(kind=Flag.Kind.RISK, section_key__in=[section.key, ""]).values_list(
        "value", flat=True
    ):
        if isinstance(value, dict):
            known.update(value.get("statements", []))
    new = tuple(s for s in current[0].statements if s not in known)
    if not new:
        return None
    finding = type(current[0])(source=current[0].source, statements=new)
    flag = Flag.objects.create(
        note=note,
        kind=Flag.Kind.RISK,
        section_key=section.key,
        value={"statements": list(new)},
        message=risk_current_message(finding, where=f"in “{section.label}”"),
    )
    if not note.high_risk:
        note.high_risk = True
        note.save(update_fields=["high_risk", "updated_at"])
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="flag.raise",
        obj=flag,
        note=note,
        client=note.client,
        after={"kind": flag.kind, "section": section.key, "statements": list(new)},
        detail={"high_risk": True},
    )
    return flag
