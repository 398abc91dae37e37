"""Review-only rules on top of the note state machine: resolving each kind of
flag the way the review page offers, and counting active review time.

The writes go through notes.services (note_edit_section, flag_resolve), so
every edit keeps its before/after AuditEvent and the state table stays the
single source of what may happen when. Each function here is one
transaction: an edit and its flag resolution commit or fail together.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import actor_person, audit_record
from notes import services
from notes.errors import DomainError
from notes.mapping import FIELD_LABELS, _as_text
from notes.models import Flag, InterventionProposal, Note, NoteSection, TemplateSection
from notes.roles import membership_of
from notes.vocabulary import icd10_check
from psyfi_review.db_retry import retry_on_conflict

# The most active time one heartbeat can add. The page sends one every 15 s
# while it is visible and the clinician has interacted recently; a larger
# claim (a sleeping laptop, a hand-made request) is cut to this.
REVIEW_HEARTBEAT_MAX_SECONDS: int = getattr(settings, "REVIEW_HEARTBEAT_MAX_SECONDS", 30)
# What the page is told: how often to send, and after how long without a key
# press, click or scroll the time stops counting.
REVIEW_HEARTBEAT_INTERVAL_SECONDS = 15
REVIEW_IDLE_AFTER_SECONDS = 60


def _open_flag_of_kind(flag: Flag, kind: str, what: str) -> Flag:
    if flag.kind != kind:
        raise DomainError(f"This flag is not {what}.", field="flag")
    if flag.resolved_at is not None:
        raise DomainError("This flag is already resolved.", field="flag")
    return flag


def _append_block(text: str, block: str) -> str:
    return f"{text.rstrip()}\n\n{block}" if text.strip() else block


@retry_on_conflict
@transaction.atomic
def flag_place_content(*, flag: Flag, section_key: str, actor) -> NoteSection:
    """Put AI content the template had no place for into a free-text section
    the clinician chose, and resolve the flag. Code sections are refused:
    free text there would bypass the controlled vocabularies (invariant 8)."""
    _open_flag_of_kind(flag, Flag.Kind.UNPLACED_CONTENT, "unplaced content")
    section = flag.note.sections.filter(key=section_key).first()
    if section is None:
        raise DomainError("Choose a section of this note.", field="section")
    if section.kind != TemplateSection.Kind.TEXT:
        raise DomainError(f"“{section.label}” holds coded values; choose a free-text section.", field="section")
    label = FIELD_LABELS.get(flag.field, flag.field)
    block = f"{label}: {_as_text(flag.value)}" if label else _as_text(flag.value)
    section = services.note_edit_section(
        note=flag.note, section_key=section.key, text=_append_block(section.text, block), actor=actor
    )
    services.flag_resolve(flag=flag, resolution=f"Placed into “{section.label}”.", actor=actor)
    return section


@retry_on_conflict
@transaction.atomic
def flag_fix_code(*, flag: Flag, code: str, actor) -> NoteSection:
    """Replace an invalid diagnosis code with a billable ICD-10-CM code: the
    code goes into the diagnoses section's codes and text, and the flag is
    resolved. Raises DomainError (field "code") for anything not billable."""
    _open_flag_of_kind(flag, Flag.Kind.INVALID_CODE, "an invalid diagnosis code")
    check = icd10_check(code or "")
    if not check.valid:
        raise DomainError(check.message, field="code")
    note = flag.note
    sections = note.sections.filter(kind=TemplateSection.Kind.DIAGNOSIS_CODES)
    section = sections.filter(key=flag.section_key).first() or sections.first()
    if section is None:
        raise DomainError("This note's template has no diagnosis codes section.", field="code")
    codes, text = list(section.codes), section.text
    if check.code not in codes:
        codes.append(check.code)
        line = f"{check.code} {check.description}"
        text = f"{text.rstrip()}\n{line}" if text.strip() else line
    section = services.note_edit_section(note=note, section_key=section.key, text=text, codes=codes, actor=actor)
    services.flag_resolve(
        flag=flag, resolution=f"Replaced “{flag.value}” with {check.code} ({check.description}).", actor=actor
    )
    return section


@retry_on_conflict
@transaction.atomic
def flag_choose_intervention(*, flag: Flag, term: str, actor) -> NoteSection:
    """Put the vocabulary term the clinician chose for an intervention written
    otherwise ("CBT++") into the section's codes and text, and resolve the
    flag. Raises DomainError (field "term") for a term not in the practice's
    vocabulary: the codes stay controlled (invariant 8)."""
    _open_flag_of_kind(flag, Flag.Kind.UNKNOWN_INTERVENTION, "an intervention outside the vocabulary")
    note = flag.note
    chosen = services.practice_vocabulary(practice_id=note.practice_id).resolve(term or "")
    if chosen is None:
        raise DomainError(f"“{term}” is not in the practice's intervention vocabulary.", field="term")
    section = note.sections.filter(key=flag.section_key).first()
    if section is None:
        raise DomainError("This note has no interventions section.", field="term")
    codes, text = list(section.codes), section.text
    if chosen not in codes:
        codes.append(chosen)
        text = f"{text.rstrip()}, {chosen}" if text.strip() else chosen
    section = services.note_edit_section(note=note, section_key=section.key, text=text, codes=codes, actor=actor)
    services.flag_resolve(flag=flag, resolution=f"Chose “{chosen}” for “{_as_text(flag.value)}”.", actor=actor)
    return section


@retry_on_conflict
@transaction.atomic
def flag_keep_intervention_as_written(*, flag: Flag, actor) -> InterventionProposal:
    """Keep an intervention the vocabulary does not list ("EMDR-lite") as the
    scribe wrote it: in the section's text only, never among its codes, which
    stay controlled (invariant 8). The flag is resolved and the term proposed
    for the practice's vocabulary, for a practice admin to accept or decline
    (notes.vocabulary_services). One open proposal per term and practice: a
    second clinician keeping the same term adds no duplicate."""
    _open_flag_of_kind(flag, Flag.Kind.UNKNOWN_INTERVENTION, "an intervention outside the vocabulary")
    written = " ".join(_as_text(flag.value).split())
    if not written:
        raise DomainError("The scribe wrote no term to keep.", field="term")
    if len(written) > 100:
        raise DomainError("A vocabulary term is at most 100 characters; choose a listed term.", field="term")
    note = flag.note
    section = note.sections.filter(key=flag.section_key).first()
    if section is None:
        raise DomainError("This note has no interventions section.", field="term")
    if written.casefold() not in section.text.casefold():
        text = f"{section.text.rstrip()}, {written}" if section.text.strip() else written
        services.note_edit_section(note=note, section_key=section.key, text=text, actor=actor)
    services.flag_resolve(
        flag=flag,
        resolution=f"Kept “{written}” as written (in the text, not coded); proposed for the practice's vocabulary.",
        actor=actor,
    )
    proposal = (
        InterventionProposal.objects.filter(
            practice_id=note.practice_id, term__iexact=written, state=InterventionProposal.State.PROPOSED
        )
        .order_by("pk")
        .first()
    )
    if proposal is None:
        proposal = InterventionProposal(practice_id=note.practice_id, term=written, proposed_by=actor, note=note)
        proposal.full_clean()
        proposal.save()
        audit_record(
            practice=note.practice,
            actor=actor_person(actor),
            action="vocabulary.propose",
            obj=proposal,
            note=note,
            client=note.client,
            after={"term": written},
        )
    return proposal


@retry_on_conflict
@transaction.atomic
def flag_acknowledge_risk(*, flag: Flag, comment: str = "", actor) -> Flag:
    """The clinician confirms they reviewed the risk item and safety plan."""
    _open_flag_of_kind(flag, Flag.Kind.RISK, "a risk item")
    comment = (comment or "").strip()
    resolution = "Risk reviewed and acknowledged." + (f" {comment}" if comment else "")
    return services.flag_resolve(flag=flag, resolution=resolution, actor=actor)


@retry_on_conflict
@transaction.atomic
def flag_dismiss(*, flag: Flag, reason: str, actor) -> Flag:
    """Resolve a flag with a reason (e.g. drop an unplaced item or an unknown
    intervention). Risk items are acknowledged, not dismissed."""
    if flag.kind == Flag.Kind.RISK:
        raise DomainError("Acknowledge a risk item; it cannot be dismissed.", field="flag")
    if not (reason or "").strip():
        raise DomainError("Say why the flag can be dismissed.", field="reason")
    return services.flag_resolve(flag=flag, resolution=f"Dismissed: {reason.strip()}", actor=actor)


def review_shortcuts_set(*, user, enabled: bool) -> bool:
    """Store the person's choice of single-key shortcuts on their membership.
    A display preference, not a clinical record: no audit event."""
    membership = membership_of(user)
    if membership is None:
        raise DomainError("No active membership.", field="single_key_shortcuts")
    membership.single_key_shortcuts = bool(enabled)
    membership.save(update_fields=["single_key_shortcuts"])
    return membership.single_key_shortcuts


def note_review_time_add(
    *, note: Note, actor, seconds, last_beat_at: datetime | None, now: datetime | None = None
) -> int:
    """Add active review time from one heartbeat and return what was credited.

    The credit is the smallest of what the page claims, the per-heartbeat cap
    and the time since the previous heartbeat of this note in this session,
    so neither an open tab nor a burst of requests inflates the metric. Only
    notes still under review count. Raises DomainError for a bad claim and
    NotPermitted for anyone but the note's clinician.
    """
    now = now or timezone.now()
    try:
        claimed = int(seconds)
    except (TypeError, ValueError):
        raise DomainError("Seconds must be a whole number.", field="seconds") from None
    if claimed < 0 or claimed > 3600:
        raise DomainError("Seconds must be between 0 and 3600.", field="seconds")
    services._require_note_clinician(note, actor)
    if note.state not in (Note.State.DRAFT, Note.State.IN_REVIEW):
        return 0
    credit = min(claimed, REVIEW_HEARTBEAT_MAX_SECONDS)
    if last_beat_at is not None:
        credit = min(credit, max(0, int((now - last_beat_at).total_seconds())))
    if credit:
        # update(), not save(): a heartbeat must not race an autosave or move
        # updated_at, which reads as "last edited".
        Note.objects.filter(pk=note.pk).update(review_seconds=F("review_seconds") + credit)
    return credit
