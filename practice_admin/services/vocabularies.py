"""The practice's intervention vocabulary as an admin edits it: add a term,
change its synonyms, retire or bring back a term, delete a term no note has
used, and import terms from CSV (all rows or none).

Each change is kept in the term's history (simple_history, with the admin as
history user) and is an audit event. A term in use by a note is only ever
retired: the notes that coded it keep a term that still exists."""

import csv
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from audit.services import actor_person, audit_record
from notes.errors import DomainError
from notes.models import InterventionTerm, NoteSection, TemplateSection
from notes.vocabulary import _norm
from practice_admin.access import admin_membership
from practice_admin.services.csv_rows import numbered_rows

MAX_SYNONYMS = 30
MAX_IMPORT_ROWS = 2000
MAX_IMPORT_BYTES = 1024 * 1024


def synonyms_parse(raw: str) -> list[str]:
    """Synonyms as typed: separated by commas, semicolons or new lines; a
    repeat (up to case and spacing) is kept once."""
    seen, out = set(), []
    for part in raw.replace(";", ",").replace("\n", ",").split(","):
        name = " ".join(part.split())
        if name and _norm(name) not in seen:
            seen.add(_norm(name))
            out.append(name)
    return out


def term_in_use(term: InterventionTerm) -> bool:
    """Coded in any note of the practice (the clinician's codes or the AI's)."""
    return NoteSection.objects.filter(
        Q(codes__contains=[term.term]) | Q(ai_codes__contains=[term.term]),
        note__practice_id=term.practice_id,
        kind=TemplateSection.Kind.INTERVENTIONS,
    ).exists()


def _names_check(*, practice_id: int, term: str, synonyms: list[str], exclude_pk: int | None = None) -> None:
    """A name resolves to one term only: neither the term nor a synonym may
    be another term or another term's synonym. Raises DomainError."""
    if not term or len(term) > 100:
        raise DomainError("Enter a term of at most 100 characters.", field="term")
    if len(synonyms) > MAX_SYNONYMS:
        raise DomainError(f"A term has at most {MAX_SYNONYMS} synonyms.", field="synonyms")
    for name in synonyms:
        if len(name) > 100:
            raise DomainError(f"The synonym “{name[:40]}…” is longer than 100 characters.", field="synonyms")
    others = InterventionTerm.objects.filter(practice_id=practice_id)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    taken = {}
    for other in others:
        for name in [other.term, *(other.synonyms or [])]:
            taken[_norm(name)] = other.term
    for name in [term, *synonyms]:
        owner = taken.get(_norm(name))
        if owner is None:
            continue
        if _norm(owner) == _norm(name):
            raise DomainError(f"“{name}” is already a term.", field="term" if name == term else "synonyms")
        raise DomainError(f"“{name}” is already a synonym of “{owner}”.", field="term" if name == term else "synonyms")


def _history_user(term: InterventionTerm, actor) -> None:
    term._history_user = actor  # simple_history: who made this change


@transaction.atomic
def term_add(*, actor, term: str, synonyms: list[str]) -> InterventionTerm:
    membership = admin_membership(actor)
    term = " ".join(term.split())
    _names_check(practice_id=membership.practice_id, term=term, synonyms=synonyms)
    row = InterventionTerm(practice=membership.practice, term=term, synonyms=synonyms)
    row.full_clean(validate_constraints=False)
    _history_user(row, actor)
    row.save()
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="vocabulary.term_add",
        obj=row,
        after={"term": term, "synonyms": synonyms},
    )
    return row


def _lock(term: InterventionTerm) -> InterventionTerm:
    return InterventionTerm.objects.select_for_update(no_key=True).get(pk=term.pk)


@transaction.atomic
def term_synonyms_set(*, actor, term: InterventionTerm, synonyms: list[str]) -> InterventionTerm:
    admin_membership(actor, practice_id=term.practice_id)
    term = _lock(term)
    _names_check(practice_id=term.practice_id, term=term.term, synonyms=synonyms, exclude_pk=term.pk)
    before = list(term.synonyms or [])
    if before == synonyms:
        return term
    term.synonyms = synonyms
    _history_user(term, actor)
    term.save(update_fields=["synonyms"])
    audit_record(
        practice=term.practice,
        actor=actor_person(actor),
        action="vocabulary.term_edit",
        obj=term,
        before={"synonyms": before},
        after={"synonyms": synonyms},
    )
    return term


@transaction.atomic
def term_active_set(*, actor, term: InterventionTerm, active: bool) -> InterventionTerm:
    """Retire a term (later drafts no longer code it; notes that did keep
    it) or bring it back."""
    admin_membership(actor, practice_id=term.practice_id)
    term = _lock(term)
    if term.is_active == active:
        return term
    term.is_active = active
    _history_user(term, actor)
    term.save(update_fields=["is_active"])
    audit_record(
        practice=term.practice,
        actor=actor_person(actor),
        action="vocabulary.term_reactivate" if active else "vocabulary.term_retire",
        obj=term,
        after={"term": term.term, "is_active": active},
    )
    return term


@transaction.atomic
def term_delete(*, actor, term: InterventionTerm) -> None:
    """Delete a term no note has coded. Raises DomainError for a term in use:
    retire it instead."""
    admin_membership(actor, practice_id=term.practice_id)
    term = _lock(term)
    if term_in_use(term):
        raise DomainError(f"“{term.term}” is coded in notes, so it cannot be deleted; retire it instead.", field="term")
    snapshot = {"term": term.term, "synonyms": term.synonyms, "is_active": term.is_active}
    _history_user(term, actor)
    audit_record(
        practice=term.practice,
        actor=actor_person(actor),
        action="vocabulary.term_delete",
        obj=term,
        before=snapshot,
    )
    term.delete()


@dataclass
class VocabularyImportResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line N: why"


class VocabularyImportRejected(DomainError):
    def __init__(self, message: str, *, errors: list[str]):
        super().__init__(message, field="file")
        self.errors = errors


@transaction.atomic
def vocabulary_import(*, actor, data: bytes | str) -> VocabularyImportResult:
    """Terms from a CSV with a header "term,synonyms" (synonyms separated by
    ";"). A new term is added; an existing one (same name up to case) gets the
    file's synonyms. Every row is checked first; one bad row rejects the file
    (VocabularyImportRejected lists each row's error) and nothing changes."""
    membership = admin_membership(actor)
    if len(data) > MAX_IMPORT_BYTES:
        raise VocabularyImportRejected("The file is too large.", errors=["The file is larger than 1 MB."])
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise VocabularyImportRejected(
                "The file is not UTF-8 text.", errors=["Save the file as CSV (UTF-8)."]
            ) from None
    try:
        numbered = numbered_rows(data)
    except csv.Error as exc:
        raise VocabularyImportRejected("The file is not valid CSV.", errors=[str(exc)]) from None
    table = [cells for _, cells in numbered]
    header = [h.strip().lower() for h in table[0]] if table else []
    if "term" not in header:
        raise VocabularyImportRejected(
            "The file has no “term” column.", errors=["The first line must name the columns: term,synonyms."]
        )
    if len(table) - 1 > MAX_IMPORT_ROWS:
        raise VocabularyImportRejected(
            "The file has too many rows.", errors=[f"Import at most {MAX_IMPORT_ROWS} terms at a time."]
        )
    t_col, s_col = header.index("term"), header.index("synonyms") if "synonyms" in header else None
    existing = {
        _norm(t.term): t
        for t in InterventionTerm.objects.filter(practice=membership.practice).select_for_update(no_key=True)
    }
    # Names as they will be after the import, to catch clashes inside the file too.
    owners: dict[str, str] = {}
    for t in existing.values():
        for name in [t.term, *(t.synonyms or [])]:
            owners[_norm(name)] = t.term
    plan, result, seen = [], VocabularyImportResult(), {}
    for line, cells in numbered[1:]:
        term = " ".join((cells[t_col] if t_col < len(cells) else "").split())
        synonyms = synonyms_parse(cells[s_col]) if s_col is not None and s_col < len(cells) else []
        if not term:
            result.errors.append(f"line {line}: the term is empty.")
            continue
        if len(term) > 100 or any(len(s) > 100 for s in synonyms):
            result.errors.append(f"line {line}: a name is longer than 100 characters.")
            continue
        if _norm(term) in seen:
            result.errors.append(f"line {line}: “{term}” is also on line {seen[_norm(term)]}.")
            continue
        seen[_norm(term)] = line
        target = existing.get(_norm(term))
        canonical = target.term if target else term
        if target is None and _norm(term) in owners:
            result.errors.append(f"line {line}: “{term}” is already a synonym of “{owners[_norm(term)]}”.")
            continue
        if target is not None:  # its old synonyms make way for the file's
            for name in target.synonyms or []:
                if owners.get(_norm(name)) == target.term:
                    owners.pop(_norm(name))
        clash = next((s for s in synonyms if owners.get(_norm(s), canonical) != canonical), None)
        if clash:
            result.errors.append(f"line {line}: “{clash}” already belongs to “{owners[_norm(clash)]}”.")
            continue
        for name in [canonical, *synonyms]:
            owners[_norm(name)] = canonical
        plan.append((target, term, synonyms))
    if result.errors:
        raise VocabularyImportRejected(
            "Nothing was imported: correct these lines and upload again.", errors=result.errors
        )
    for target, term, synonyms in plan:
        if target is None:
            row = InterventionTerm(practice=membership.practice, term=term, synonyms=synonyms)
            _history_user(row, actor)
            row.save()
            result.added.append(term)
        elif list(target.synonyms or []) != synonyms:
            target.synonyms = synonyms
            _history_user(target, actor)
            target.save(update_fields=["synonyms"])
            result.updated.append(target.term)
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="vocabulary.import",
        detail={"added": result.added, "updated": result.updated},
    )
    return result
