"""The draft intake: from a validated scribe payload to notes awaiting review.

draft_intake resolves who and what the payload names (all inside the API
key's practice), picks the template version, and hands each draft to
notes.services.drafts_ingest, which stores it verbatim and maps it. It adds
what only the intake knows: idempotency across retries and concurrent
duplicates, and group sessions split into one draft per consenting client.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404

from integrations.models import Delivery
from notes.errors import DomainError
from notes.models import (
    AISource,
    Client,
    ClientConsent,
    Draft,
    Flag,
    Membership,
    Note,
    NoteTemplate,
    NoteTemplateVersion,
)
from notes.services import (
    NO_CONSENT_REASON,
    DraftIn,
    drafts_ingest,
    practice_vocabulary_sql,
    vocabulary_from_json,
)

DEFAULT_TEMPLATE_KEY = "soap"


class UnknownReference(DomainError):
    """The payload names a client, clinician or template this practice does not have."""


class NoConsentingParticipant(DomainError):
    status_code = 409


class IdempotencyKeyReused(DomainError):
    status_code = 422
    field = "idempotency_key"


@dataclass
class IntakeResult:
    notes: list[Note]
    replayed: bool
    skipped: list[dict] = field(default_factory=list)  # group participants without consent


@dataclass
class _Unit:
    """One draft to store: a client and the payload kept for them."""

    client: Client
    payload: dict
    idempotency_key: str
    other_names: list[str]


# The two look-ups below run on every draft. They are raw SQL because the
# ORM's query compilation cost more than the queries themselves (about 3 ms of
# a draft's 12; see bench/intake.py); the SQL is plain enough for PostgreSQL
# and SQLite alike, and table names come from the models.


def _client_resolve(*, practice_id: int, ref: dict, field_name: str, template_key: str) -> Client:
    """The client, with has_consent and the id of the practice's active version
    of the template (one query). Another practice's client is "unknown" too:
    we do not confirm it exists."""
    client_t, consent_t = Client._meta.db_table, ClientConsent._meta.db_table
    version_t, template_t = NoteTemplateVersion._meta.db_table, NoteTemplate._meta.db_table
    by, value = ("c.id", ref["id"]) if "id" in ref else ("c.ehr_patient_id", ref["ehr_patient_id"])
    sql = f"""
        SELECT c.*,
            EXISTS(SELECT 1 FROM {consent_t} cc WHERE cc.client_id = c.id AND cc.revoked_at IS NULL) AS has_consent,
            (SELECT v.id FROM {version_t} v JOIN {template_t} t ON t.id = v.template_id
              WHERE t.practice_id = c.practice_id AND t.key = %s AND v.is_active) AS active_template_version_id
        FROM {client_t} c
        WHERE c.practice_id = %s AND {by} = %s"""  # noqa: S608 - only table names are formatted in
    client = next(iter(Client.objects.raw(sql, [template_key, practice_id, value])), None)
    if client is None:
        raise UnknownReference("Unknown client: no such client in this practice.", field=field_name)
    client.has_consent = bool(client.has_consent)
    return client


def _clinician_resolve(*, practice_id: int, ref: dict) -> tuple:
    """The clinician, and the practice's intervention vocabulary."""
    user_model = get_user_model()
    user_t, membership_t = user_model._meta.db_table, Membership._meta.db_table
    by, value = ("u.id", ref["id"]) if "id" in ref else ("m.ehr_practitioner_id", ref["ehr_practitioner_id"])
    # The practice's intervention vocabulary rides along (one round trip less per draft).
    sql = f"""
        SELECT u.*, {practice_vocabulary_sql()} AS vocabulary_json
        FROM {user_t} u JOIN {membership_t} m ON m.user_id = u.id
        WHERE m.practice_id = %s AND m.role = %s AND m.is_active AND u.is_active AND {by} = %s"""  # noqa: S608
    params = [practice_id, practice_id, Membership.Role.CLINICIAN, value]
    user = next(iter(user_model.objects.raw(sql, params)), None)
    if user is None:
        raise UnknownReference(
            "Unknown clinician: no active clinician with this id in the practice.", field="clinician"
        )
    return user, vocabulary_from_json(user.vocabulary_json)


# Template versions and their sections never change once created (editing a
# template adds a version), so each process keeps the ones it has loaded.
# Which version is active is still read on every draft (_client_resolve).
_TEMPLATE_VERSIONS: dict[int, NoteTemplateVersion] = {}
_TEMPLATE_VERSIONS_MAX = 500


def _template_version_get(*, version_id: int | None, key: str) -> NoteTemplateVersion:
    if version_id is None:
        raise UnknownReference(
            f"Unknown template “{key}”: the practice has no active template by that key.", field="template"
        )
    version = _TEMPLATE_VERSIONS.get(version_id)
    if version is None:
        version = NoteTemplateVersion.objects.select_related("template").prefetch_related("sections").get(pk=version_id)
        if len(_TEMPLATE_VERSIONS) >= _TEMPLATE_VERSIONS_MAX:
            _TEMPLATE_VERSIONS.clear()
        _TEMPLATE_VERSIONS[version_id] = version
    return version


def _has_consent(client: Client) -> bool:
    return client.has_consent


def _names_of(client: Client, scribe_name: str = "") -> set[str]:
    return {n for n in (client.full_name, client.given_name, client.family_name, scribe_name) if n and n.strip()}


def _group_units(
    payload: dict, data: dict, *, practice_id: int, key: str, template_key: str
) -> tuple[list[_Unit], list[dict]]:
    """One unit per consenting participant. A participant's stored payload has
    the session-wide fields, then their own content over them; the other
    participants appear only as client references, never with their content
    or names."""
    raw_participants = payload["session"]["participants"]
    clients: list[Client] = []
    for i, p in enumerate(data["session"]["participants"]):
        client = _client_resolve(
            practice_id=practice_id,
            ref=p["client"],
            field_name=f"session.participants.{i}.client",
            template_key=template_key,
        )
        if any(c.pk == client.pk for c in clients):
            raise DomainError("This client is listed twice.", field=f"session.participants.{i}.client")
        clients.append(client)
    shared = {k: v for k, v in payload.items() if k != "session"}
    session = {k: v for k, v in payload["session"].items() if k != "participants"}
    units, skipped = [], []
    for i, client in enumerate(clients):
        if not _has_consent(client):
            skipped.append({"client": client.pk, "reason": NO_CONSENT_REASON})
            continue
        own = {k: v for k, v in raw_participants[i].items() if k not in ("client", "name")}
        unit_payload = {
            **copy.deepcopy(shared),
            **copy.deepcopy(own),
            "session": {**session, "participants": [raw_participants[j]["client"] for j in range(len(clients))]},
            "client": raw_participants[i]["client"],
        }
        own_names = _names_of(client)
        others = set()
        for j, other in enumerate(clients):
            if j != i:
                others |= _names_of(other, data["session"]["participants"][j].get("name", ""))
        # A name the client shares with another member (two Jordans) is not a disclosure.
        own_lower = {o.lower() for o in own_names}
        other_names = sorted({n.lower(): n for n in sorted(others) if n.lower() not in own_lower}.values())
        units.append(
            _Unit(
                client=client,
                payload=unit_payload,
                idempotency_key=f"{key}/{client.pk}" if key else "",
                other_names=other_names,
            )
        )
    if not units:
        raise NoConsentingParticipant(
            "No participant has active consent to AI-assisted documentation; nothing was stored.",
            field="session.participants",
        )
    return units, skipped


def _replay(*, ai_source: AISource, units: list[_Unit]) -> list[Note] | None:
    """The notes stored for these idempotency keys, or None when there are none.
    A key already used for a different payload is refused (422), since
    returning someone else's draft would be worse than an error."""
    keys = [u.idempotency_key for u in units]
    drafts = {d.idempotency_key: d for d in Draft.objects.filter(ai_source=ai_source, idempotency_key__in=keys)}
    if not drafts:
        return None
    for unit in units:
        stored = drafts.get(unit.idempotency_key)
        if stored is not None and stored.payload != unit.payload:
            raise IdempotencyKeyReused(
                "This idempotency key was already used for a different draft. Use a new key for a new draft."
            )
    notes = (
        Note.objects.filter(draft__in=drafts.values(), version=1).select_related("client", "draft").order_by("draft_id")
    )
    return list(notes)


def draft_intake(
    *,
    ai_source: AISource,
    data: dict,
    payload: dict,
    idempotency_key: str = "",
    audit_detail: dict | None = None,
    on_stored: Callable[[], None] | None = None,
) -> IntakeResult:
    """Store the scribe's draft(s) and map them to notes.

    data is the validated payload (notes.intake_serializers), payload the raw
    JSON object as received. Raises UnknownReference (400) for a client,
    clinician or template outside the key's practice, NoConsentingParticipant
    (409) for a group with no consenting member, IdempotencyKeyReused (422).
    A repeated key returns the first result (replayed=True) and stores nothing.
    audit_detail goes into each note.draft audit event (the API names the key
    used there); on_stored runs once the drafts are stored.
    """
    practice_id = ai_source.practice_id
    key = idempotency_key or data.get("draft_id", "")
    clinician, vocabulary = _clinician_resolve(practice_id=practice_id, ref=data["clinician"])
    template_key = data.get("template") or DEFAULT_TEMPLATE_KEY
    skipped: list[dict] = []
    if data["session"]["type"] == Draft.SessionType.GROUP:
        units, skipped = _group_units(payload, data, practice_id=practice_id, key=key, template_key=template_key)
    else:
        client = _client_resolve(
            practice_id=practice_id, ref=data["client"], field_name="client", template_key=template_key
        )
        units = [_Unit(client=client, payload=payload, idempotency_key=key, other_names=[])]
    template_version = _template_version_get(version_id=units[0].client.active_template_version_id, key=template_key)

    # No read-before-write for the idempotency key: the unique constraint
    # refuses a repeat at the first insert, and the common case (a new draft)
    # saves a query.
    model = data["model"]
    session = data["session"]

    def store() -> list[Note]:
        notes = drafts_ingest(
            ai_source=ai_source,
            drafts=[
                DraftIn(
                    client=unit.client,
                    payload=unit.payload,
                    idempotency_key=unit.idempotency_key,
                    other_participant_names=tuple(unit.other_names),
                    has_consent=unit.client.has_consent,
                )
                for unit in units
            ],
            clinician=clinician,
            template_version=template_version,
            session_start=session["start"],
            session_duration_minutes=session["duration_minutes"],
            session_type=session["type"],
            model_name=model["name"],
            model_version=model.get("version", ""),
            external_id=data.get("draft_id", ""),
            cpt_code=data.get("cpt_code", ""),
            cpt_add_on_codes=data.get("cpt_add_on_codes", []),
            vocabulary=vocabulary,
            audit_detail=audit_detail,
        )
        if on_stored is not None:
            on_stored()
        return notes

    try:
        if len(units) == 1:
            notes = store()  # drafts_ingest is a transaction of its own
        else:
            with transaction.atomic():  # on_stored's write, too, with the group's drafts
                notes = store()
    except IntegrityError:
        # A repeat, or a concurrent duplicate that committed first: the
        # unique constraint on (ai_source, idempotency_key) made us wait for
        # it and then refused our insert. Read its result instead.
        notes = _replay(ai_source=ai_source, units=units) if key else None
        if notes is None:
            raise
        return IntakeResult(notes=notes, replayed=True, skipped=skipped)
    return IntakeResult(notes=notes, replayed=False, skipped=skipped)


# --- reads ---------------------------------------------------------------------------------------


def draft_get_for_source(*, ai_source: AISource, draft_id: int) -> Draft:
    """A draft posted by this AI source; anything else is 404."""
    draft = Draft.objects.filter(ai_source=ai_source, pk=draft_id).first()
    if draft is None:
        raise Http404("No such draft.")
    return draft


def note_intake_state(note: Note) -> str:
    """A note's state as the scribe sees it: draft, in_review, signed,
    delivered, discarded or blocked."""
    if note.state == Note.State.DISCARDED:
        return "discarded"
    if note.is_signed:
        delivered = Delivery.objects.filter(note=note, state=Delivery.State.DELIVERED).exists()
        return "delivered" if delivered else "signed"
    if note.blocked_reason:
        return "blocked"
    return note.state


def draft_state(draft: Draft) -> tuple[str, Note | None]:
    """The state of the draft's note lineage: its latest signed version if an
    amendment is still open, else its latest version."""
    notes = list(draft.notes.order_by("-version"))
    if not notes:
        return "draft", None
    latest = notes[0]
    if not latest.is_signed and latest.state != Note.State.DISCARDED and latest.version > 1:
        signed = next((n for n in notes if n.is_signed), None)
        if signed is not None:
            return note_intake_state(signed), latest
    return note_intake_state(latest), latest


def note_flag_summaries(notes: list[Note]) -> dict[int, dict]:
    """Open flags per note, by kind: {note id: {"open", "by_kind"}}. Notes
    fresh from drafts_ingest carry their flags; others take one query."""
    if all(hasattr(note, "new_flags") for note in notes):
        summaries = {}
        for note in notes:
            by_kind: dict[str, int] = {}
            for flag in note.new_flags:
                by_kind[flag.kind] = by_kind.get(flag.kind, 0) + 1
            summaries[note.pk] = {"open": len(note.new_flags), "by_kind": dict(sorted(by_kind.items()))}
        return summaries
    rows = (
        Flag.objects.filter(note__in=notes, resolved_at__isnull=True)
        .values("note_id", "kind")
        .annotate(n=Count("pk"))
        .order_by("note_id", "kind")
    )
    summaries = {note.pk: {"open": 0, "by_kind": {}} for note in notes}
    for row in rows:
        summary = summaries[row["note_id"]]
        summary["by_kind"][row["kind"]] = row["n"]
        summary["open"] += row["n"]
    return summaries
