"""Delivery rules. The outbox row is the truth; the Celery message only a nudge.

delivery_send claims a row by conditional update (one row or stop), checks
the invariants (1, 10, 11) and the target patient (5), builds the payload,
hands it to a transport and records the attempt and its answer in the ledger.
"""

import copy
import logging
import random
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import actor_person, actor_system, audit_record
from integrations import auth
from integrations.builders import NoteInput, SectionInput
from integrations.builders.fhir import attachment_hash, documentreference_build, provenance_build
from integrations.builders.hl7 import mdm_build, pdq_query_build
from integrations.builders.rest import rest_build, rest_patient_read
from integrations.crypto import secret_encrypt, secret_rotate
from integrations.egress import egress_check_url
from integrations.errors import (
    ConnectionInvalid,
    CredentialsUnreadable,
    DeliveryRefused,
    MappingInvalid,
    PayloadInvalid,
)
from integrations.mapping import mapping_default_document, mapping_validate, rest_patient_errors
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection, FieldMapping
from integrations.sandbox.access import sandbox_credentials_issue
from integrations.transports import fhir as fhir_transport
from integrations.transports import mllp as mllp_transport
from integrations.transports import rest as rest_transport
from integrations.transports.base import Outcome, connection_problem, failed, sent, url_check
from notes.errors import NotPermitted
from notes.models import Membership, Note, NoteTemplate, NoteTemplateVersion
from notes.vocabulary import icd10_check
from psyfi_review.db_retry import retry_once_on_conflict

logger = logging.getLogger(__name__)
S = Delivery.State


# ---------------------------------------------------------------- invariants


def delivery_check_deliverable(note: Note) -> None:
    """Invariants 1 and 10: only a signed note version, and never a
    psychotherapy (process) note, may produce or perform a delivery. A version
    superseded by a signed amendment is still a signed version: it goes to the
    EHR first, and the amendment replaces it there."""
    if note.state not in (Note.State.SIGNED, Note.State.AMENDED) or note.signed_at is None or not note.content_hash:
        raise DeliveryRefused(f"Only a signed note can be delivered; this one is {note.get_state_display().lower()}.")
    if note.template_version.template.is_psychotherapy_notes:
        raise DeliveryRefused("Psychotherapy notes stay in psyfi-review and are never delivered.")


def delivery_check_target(*, note: Note, connection: EHRConnection) -> None:
    """Invariant 11: a sandbox connection takes synthetic clients only; a
    production connection never receives one."""
    if connection.is_sandbox and not note.client.synthetic:
        raise DeliveryRefused("A sandbox connection accepts synthetic clients only; this client is real.")
    if not connection.is_sandbox and note.client.synthetic:
        raise DeliveryRefused("A production connection never receives a synthetic client.")
    if not note.client.ehr_patient_id:
        raise DeliveryRefused("The client has no EHR patient id; add it before delivering.")


# ---------------------------------------------------------------- outbox


def _active_connection(practice) -> EHRConnection | None:
    return EHRConnection.objects.filter(practice=practice, is_active=True, revoked_at__isnull=True).first()


def delivery_create_for_note(*, note: Note) -> Delivery | None:
    """Called inside note_sign's transaction. Returns None for psychotherapy
    notes, which are signed but stay here. Pins the connection and the
    template's active field mapping at signing."""
    if note.template_version.template.is_psychotherapy_notes:
        return None
    delivery_check_deliverable(note)
    mapping = FieldMapping.objects.filter(template=note.template_version.template, is_active=True).first()
    # An amendment replaces its earlier version at the EHR, so it cannot go
    # before that version is there (it would be a second current note).
    replaces = Delivery.objects.filter(note_id=note.amends_id).first() if note.amends_id else None
    waits = replaces is not None and replaces.state != S.DELIVERED
    delivery = Delivery.objects.create(
        note=note,
        practice=note.practice,
        connection=_active_connection(note.practice),
        mapping=mapping,
        idempotency_key=f"{note.lineage}:{note.version}",
        replaces=replaces,
        state=S.WAITING if waits else S.PENDING,
        last_error=delivery_waiting_reason(note) if waits else "",
    )
    audit_record(
        practice=note.practice,
        actor=actor_system("outbox"),
        action="delivery.create",
        obj=delivery,
        note=note,
        client=note.client,
        after={
            "state": delivery.state,
            "idempotency_key": delivery.idempotency_key,
            "connection": delivery.connection_id,
            "mapping_version": mapping.version if mapping else 0,
            "replaces": replaces.pk if replaces else None,
        },
    )
    if waits:
        # The earlier version may be delivered between our read and our
        # commit; its own release ran before it could see this row. Looking
        # again after commit closes that gap (the sweeper is the backstop).
        transaction.on_commit(lambda: delivery_release_waiting(delivery_id=delivery.pk))
    else:
        transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def delivery_waiting_reason(note: Note) -> str:
    return f"Waiting for version {note.amends.version} to reach the EHR; it is sent as its replacement then."


def delivery_release_waiting(
    *, replaces_id: int | None = None, delivery_id: int | None = None, now: datetime | None = None
) -> list[int]:
    """Waiting amendments whose earlier version is now delivered become
    pending and are nudged. Called after the earlier version's delivery
    commits, after an amendment's own signing commits, and by the sweeper.
    Each release is a conditional update, so callers racing each other
    release a row once. Returns the released ids."""
    now = now or timezone.now()
    waiting = Delivery.objects.filter(state=S.WAITING, replaces__state=S.DELIVERED)
    if replaces_id is not None:
        waiting = waiting.filter(replaces_id=replaces_id)
    if delivery_id is not None:
        waiting = waiting.filter(pk=delivery_id)
    released = []
    for delivery in waiting.select_related("practice", "replaces", "note__client"):
        with transaction.atomic():
            changed = Delivery.objects.filter(pk=delivery.pk, state=S.WAITING).update(
                state=S.PENDING, last_error="", updated_at=now
            )
            if not changed:
                continue
            audit_record(
                practice=delivery.practice,
                actor=actor_system("outbox"),
                action="delivery.release",
                obj=delivery,
                note=delivery.note,
                client=delivery.note.client,
                before={"state": S.WAITING},
                after={"state": S.PENDING, "replaces_ehr_id": delivery.replaces.ehr_id},
            )
        released.append(delivery.pk)
        transaction.on_commit(lambda pk=delivery.pk: _enqueue(pk))
    return released


def _enqueue(delivery_id: int, *, countdown: float | None = None) -> None:
    from integrations.tasks import delivery_send_task

    try:
        delivery_send_task.apply_async((delivery_id,), countdown=countdown)
    except Exception:  # noqa: BLE001 - a broker that is down delays delivery; the sweeper re-enqueues
        logger.warning("Could not enqueue delivery %s; the sweeper will pick it up", delivery_id)


def delivery_backoff(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; an EHR's Retry-After is a floor."""
    base = settings.PSYFI_DELIVERY_BACKOFF_BASE
    cap = settings.PSYFI_DELIVERY_BACKOFF_CAP
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


@dataclass(frozen=True)
class SendResult:
    state: str
    reschedule_in: float | None = None
    outcome: Outcome | None = None


def note_input(delivery: Delivery) -> NoteInput:
    """The plain data a builder needs, read from the database once."""
    note = delivery.note
    draft = note.draft
    try:
        membership = note.signed_by.membership
    except Membership.DoesNotExist:
        membership = None
    amends_ehr_id = amends_version = ""
    if note.amends_id:
        # A replacement only of what the EHR has: the earlier version's
        # delivery is delivered before this one is released (WAITING).
        earlier = delivery.replaces or Delivery.objects.filter(note_id=note.amends_id).first()
        if earlier is not None and earlier.state == S.DELIVERED:
            amends_ehr_id = earlier.ehr_id
            amends_version = str(uuid.uuid5(note.lineage, str(note.amends.version)))
    signer = note.signed_by
    name = signer.get_full_name() or signer.get_username()
    if membership and membership.credentials:
        name = f"{name}, {membership.credentials}"
    return NoteInput(
        lineage=note.lineage,
        version=note.version,
        sections=tuple(
            SectionInput(
                key=s.key,
                label=s.label,
                text=s.text,
                codes=tuple(s.codes or ()),
                kind=s.kind,
                code_labels=_code_labels(s),
            )
            for s in note.sections.order_by("order")
        ),
        patient_ehr_id=note.client.ehr_patient_id,
        patient_family_name=note.client.family_name,
        patient_given_name=note.client.given_name,
        patient_birth_date=note.client.date_of_birth.isoformat(),
        synthetic=note.client.synthetic,
        clinician_name=name,
        clinician_ehr_id=membership.ehr_practitioner_id if membership else "",
        # Structured parts for HL7 XCN; an account with no name at all is
        # known by its username only, so that stands as the family name.
        clinician_family_name=signer.last_name or ("" if signer.first_name else signer.get_username()),
        clinician_given_name=signer.first_name,
        clinician_credentials=membership.credentials if membership else "",
        signed_at=note.signed_at,
        session_start=draft.session_start,
        session_end=draft.session_start + timedelta(minutes=draft.session_duration_minutes),
        model_name=draft.model_name,
        model_version=draft.model_version,
        ai_source_name=draft.ai_source.name,
        identifier_system=settings.PSYFI_IDENTIFIER_SYSTEM,
        amends_ehr_id=amends_ehr_id,
        amends_version_id=amends_version,
        amendment_reason=note.amendment_reason,
    )


def _code_labels(section) -> tuple[str, ...]:
    """ICD-10-CM descriptions of a diagnosis section's codes, for the EHR
    text (builders are pure, so the lookup happens here)."""
    if section.kind != "diagnosis_codes":
        return ()
    return tuple(icd10_check(str(code)).description or "" for code in section.codes or ())


_default_mappings: dict[int, dict] = {}


def delivery_mapping_document(delivery: Delivery) -> dict:
    """The pinned mapping, or the template version's built-in default
    (template versions are immutable, so the default is cached)."""
    if delivery.mapping_id:
        return delivery.mapping.document
    version_id = delivery.note.template_version_id
    if version_id not in _default_mappings:
        sections = NoteTemplateVersion.objects.get(pk=version_id).sections.order_by("order")
        _default_mappings[version_id] = mapping_default_document(list(sections.values("key", "label", "loinc_code")))
    return copy.deepcopy(_default_mappings[version_id])


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> SendResult:
    """Claim the row (pending/retrying/unknown -> sending, one row or stop),
    send, and record the attempt. Never raises for an EHR's answer."""
    now = now or timezone.now()
    claimed = (
        Delivery.objects.filter(pk=delivery_id, state__in=[S.PENDING, S.RETRYING, S.UNKNOWN])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            state=S.SENDING,
            attempts=F("attempts") + 1,
            first_attempt_at=Coalesce(F("first_attempt_at"), Value(now)),
            updated_at=now,
        )
    )
    if claimed != 1:
        row = Delivery.objects.filter(pk=delivery_id).values("state", "next_attempt_at").first()
        if row is None:
            return SendResult("missing")
        if row["state"] in (S.RETRYING, S.UNKNOWN) and row["next_attempt_at"] and row["next_attempt_at"] > now:
            # A nudge that came early (a timer firing a little ahead, a
            # duplicate): wait for the due time rather than drop it.
            return SendResult(row["state"], reschedule_in=(row["next_attempt_at"] - now).total_seconds() + 0.01)
        return SendResult(row["state"])
    # Two narrow reads rather than one nine-table join: PostgreSQL planned
    # that join for longer than it ran. The draft's payload (the scribe's
    # whole JSON) is not needed to deliver.
    delivery = Delivery.objects.select_related("connection", "mapping", "practice").get(pk=delivery_id)
    delivery.note = (
        Note.objects.select_related("client", "draft__ai_source", "signed_by__membership", "template_version__template")
        .defer("draft__payload")
        .get(pk=delivery.note_id)
    )
    # The ledger row is committed before any byte leaves and completed with the
    # answer: a worker killed after the EHR committed, or a recording
    # transaction aborted, still leaves the row that says a request may have
    # reached the EHR (the sweeper marks it unknown and reconciliation follows).
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery, number=delivery.attempts, started_at=now, outcome=DeliveryAttempt.Outcome.SENDING
    )
    try:
        outcome = _perform(delivery)
    except (DeliveryRefused, PayloadInvalid, CredentialsUnreadable, ConnectionInvalid, MappingInvalid) as exc:
        outcome = failed(exc.message, alert="configuration")
    except Exception as exc:  # noqa: BLE001 - an unexpected error must not strand the row in "sending"
        logger.exception("Delivery %s: unexpected error", delivery_id)
        outcome = Outcome(Outcome.RETRY, reason=f"Internal error: {type(exc).__name__}")
    if outcome.kind == DeliveryAttempt.Outcome.TO_FILE:
        from integrations.manual_filing import manual_filing_open

        return manual_filing_open(delivery=delivery, attempt=attempt, outcome=outcome)
    return _record(delivery=delivery, attempt=attempt, outcome=outcome)


def _fhir_target(connection: EHRConnection, delivery: Delivery) -> fhir_transport.FhirTarget:
    timeout = settings.PSYFI_DELIVERY_TIMEOUT
    return fhir_transport.FhirTarget(
        base_url=connection.base_url,
        timeout=timeout,
        auth_headers=lambda force=False: auth.auth_headers(connection, timeout=timeout, force=force),
        request_id=f"psyfi-delivery-{delivery.pk}-{delivery.attempts}",
    )


def _perform(delivery: Delivery) -> Outcome:
    note = delivery.note
    delivery_check_deliverable(note)
    connection = delivery.connection
    if connection is None or not connection.usable:
        # Never over a revoked or disabled connection; the practice's current
        # one (if any) takes the note instead.
        current = _active_connection(delivery.practice)
        if current is not None:
            Delivery.objects.filter(pk=delivery.pk).update(connection=current)
            delivery.connection = connection = current
    if connection is None or not connection.usable:
        return failed("The practice has no active EHR connection; set one up, then reprocess.", alert="configuration")
    delivery_check_target(note=note, connection=connection)
    if connection.kind == EHRConnection.Kind.MANUAL:
        from integrations.manual_filing import filing_outcome

        return filing_outcome(connection)  # no I/O: a person files it (integrations.manual_filing)
    data = note_input(delivery)
    mapping = delivery_mapping_document(delivery)
    now = timezone.now()
    if connection.kind in (EHRConnection.Kind.FHIR, EHRConnection.Kind.SANDBOX):
        url_check(connection.base_url)
        return _perform_fhir(delivery, connection, data, mapping, now)
    if connection.kind == EHRConnection.Kind.HL7:
        url_check(connection.base_url, schemes=("mllp", "mllps"))
        authority = connection.hl7_assigning_authority
        # A row edited outside connection_create (the Django admin) is checked here too.
        _hl7_patient_check_validate(
            kind=connection.kind,
            check=connection.hl7_patient_check,
            authority=authority,
            patient_query_url=connection.patient_query_url,
        )
        message = mdm_build(data, mapping, control_id=delivery.hl7_control_id, now=now, assigning_authority=authority)
        # Invariant 5, `pdq`: ask the EHR's PDQ supplier who has this id before
        # writing. `receiver`: the MDM's PID-3 (with authority), PID-5 and
        # PID-7 are checked by the receiver, which refuses an unknown patient.
        if connection.hl7_patient_check == EHRConnection.HL7PatientCheck.PDQ and _patient_check_due(delivery, now):
            query_url = connection.patient_query_url or connection.base_url
            url_check(query_url, schemes=("mllp", "mllps"), field="patient_query_url")
            query_id = f"PDQ{uuid.uuid4().hex[:17].upper()}"  # MSH-10 is at most 20 characters
            mismatch = mllp_transport.patient_check(
                url=query_url,
                message=pdq_query_build(
                    patient_id=data.patient_ehr_id, query_id=query_id, now=now, assigning_authority=authority
                ),
                query_id=query_id,
                patient_id=data.patient_ehr_id,
                birth_date=data.patient_birth_date,
                timeout=settings.PSYFI_DELIVERY_TIMEOUT,
                assigning_authority=authority,
            )
            if mismatch is not None:
                return mismatch
            _patient_check_passed(delivery, now)
        return mllp_transport.mdm_send(
            url=connection.base_url,
            message=message,
            control_id=delivery.hl7_control_id,
            timeout=settings.PSYFI_DELIVERY_TIMEOUT,
            patient_id=data.patient_ehr_id,
        )
    url_check(connection.base_url)
    document = rest_build(data, mapping, now=now)
    # Invariant 5; a mapping without a patient block raises MappingInvalid.
    read = rest_patient_read(
        _patient_check_mapping(delivery, mapping), base_url=connection.base_url, patient_id=data.patient_ehr_id
    )
    headers = auth.auth_headers(connection, timeout=settings.PSYFI_DELIVERY_TIMEOUT)
    if _patient_check_due(delivery, now):
        mismatch = rest_transport.patient_check(
            read,
            patient_id=data.patient_ehr_id,
            birth_date=data.patient_birth_date,
            headers=headers,
            timeout=settings.PSYFI_DELIVERY_TIMEOUT,
        )
        if mismatch is not None:
            return mismatch
        _patient_check_passed(delivery, now)
    return rest_transport.document_post(
        url=connection.base_url,
        document=document,
        idempotency_key=delivery.idempotency_key,
        headers=headers,
        timeout=settings.PSYFI_DELIVERY_TIMEOUT,
    )


def _patient_check_due(delivery: Delivery, now: datetime) -> bool:
    """Invariant 5 is checked before the first write; once the EHR confirmed
    the patient for this delivery, retries do not read it again until the
    check is PSYFI_PATIENT_RECHECK_HOURS old (each read is one more request
    that a flaky EHR can fail)."""
    checked = delivery.patient_checked_at
    return checked is None or now - checked > timedelta(hours=settings.PSYFI_PATIENT_RECHECK_HOURS)


def _patient_check_passed(delivery: Delivery, now: datetime) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(patient_checked_at=now)
    delivery.patient_checked_at = now


def _patient_check_mapping(delivery: Delivery, mapping: dict) -> dict:
    """Where to read the patient says nothing about the note's content. A note
    pinned to a mapping version saved before the patient check existed takes
    the block from the template's active version, so adding one there and
    reprocessing delivers it; the note's content still follows its pin."""
    if not rest_patient_errors((mapping.get("rest") or {}).get("patient")):
        return mapping
    active = (
        FieldMapping.objects.filter(template_id=delivery.note.template_version.template_id, is_active=True)
        .values_list("document", flat=True)
        .first()
    )
    return active if isinstance(active, dict) else mapping


def _capabilities_due(connection: EHRConnection, now: datetime) -> bool:
    """Whether to read what the server declares again: never read, older than
    PSYFI_CAPABILITIES_MAX_AGE_HOURS, or marked stale after an answer that
    suggested a change. An EHR update can turn conditional create off."""
    checked = connection.metadata_checked_at
    return (
        connection.supports_conditional_create is None
        or checked is None
        or now - checked > timedelta(hours=settings.PSYFI_CAPABILITIES_MAX_AGE_HOURS)
    )


# Answers to a conditional create that suggest the server no longer honours it.
_CAPABILITY_CHANGE_STATUSES = (400, 405, 412, 422, 501)


def _perform_fhir(delivery: Delivery, connection: EHRConnection, data: NoteInput, mapping: dict, now) -> Outcome:
    target = _fhir_target(connection, delivery)
    # Conditional create counts only if the server declared it within the
    # capability period; otherwise a lost answer is reconciled, never resent.
    confirmed = True
    if _capabilities_due(connection, now):
        try:
            connection_record_metadata(connection=connection, summary=fhir_transport.metadata_read(target))
        except ConnectionInvalid:
            raise  # egress policy or a redirect: delivery_send fails it for good, with the reason
        except requests.HTTPError as exc:
            if connection.supports_conditional_create is None:
                return fhir_transport.status_outcome(exc.response, write=False, resend_safe=True)
            confirmed = False
        except Exception as exc:  # noqa: BLE001 - any other failure to read /metadata means "try later"
            if connection.supports_conditional_create is None:
                return Outcome(
                    Outcome.RETRY,
                    reason=f"Could not read the EHR's /metadata: {type(exc).__name__}",
                    alert="unreachable",
                )
            confirmed = False
    if delivery.ehr_id and delivery.provenance_state == Delivery.ProvenanceState.OWED:
        # An earlier attempt stored the note; only its Provenance is owed.
        return _provenance_deliver(
            delivery, connection, target, data, sent(delivery.ehr_id, reason="Stored at the EHR earlier"), now
        )
    if _patient_check_due(delivery, now):
        mismatch = fhir_transport.patient_check(
            target, patient_id=data.patient_ehr_id, birth_date=data.patient_birth_date
        )
        if mismatch is not None:
            return mismatch
        _patient_check_passed(delivery, now)
    resource = documentreference_build(data, mapping, now=now)
    identifier = f"{data.identifier_system}|{data.identifier_value}"
    outcome = None
    if delivery.needs_reconcile:
        outcome = _reconcile(target, data, resource, identifier)
        if outcome is None:
            Delivery.objects.filter(pk=delivery.pk).update(needs_reconcile=False)
    if outcome is None:
        conditional = bool(connection.supports_conditional_create)
        outcome = fhir_transport.resource_create(
            target,
            resource,
            if_none_exist=f"identifier={identifier}" if conditional else None,
            resend_safe=conditional and confirmed,
        )
        if conditional and outcome.http_status in _CAPABILITY_CHANGE_STATUSES:
            EHRConnection.objects.filter(pk=connection.pk).update(metadata_checked_at=None)
    if outcome.kind != Outcome.SENT:
        return outcome
    return _provenance_deliver(delivery, connection, target, data, outcome, now)


def _provenance_deliver(
    delivery: Delivery, connection: EHRConnection, target, data: NoteInput, stored: Outcome, now
) -> Outcome:
    """The note is at the EHR (stored.ehr_id). Where the EHR supports
    Provenance, the delivery is complete only when its Provenance is stored
    too; until then the outcome is a retry that carries the note's EHR id.
    One Provenance per note version: its target is the key, used for
    conditional create and, after a lost answer, for a search first."""
    if not stored.ehr_id:
        return stored
    if not connection.supports_provenance:
        _provenance_mark(delivery, Delivery.ProvenanceState.UNSUPPORTED)
        return stored
    reference = f"DocumentReference/{stored.ehr_id}"
    if delivery.provenance_state == Delivery.ProvenanceState.OWED:
        found = fhir_transport.resource_search(target, "Provenance", {"target": reference})
        if isinstance(found, Outcome):
            return _provenance_owed(delivery, stored, found)
        if found:
            _provenance_mark(delivery, Delivery.ProvenanceState.STORED, str(found[0].get("id", "")))
            return stored
    provenance = provenance_build(data, target_reference=reference, now=now)
    answer = fhir_transport.resource_create(target, provenance, if_none_exist=f"target={reference}", resend_safe=False)
    if answer.kind == Outcome.SENT:
        _provenance_mark(delivery, Delivery.ProvenanceState.STORED, answer.ehr_id)
        return stored
    return _provenance_owed(delivery, stored, answer)


def _provenance_mark(delivery: Delivery, state: str, ehr_id: str = "") -> None:
    Delivery.objects.filter(pk=delivery.pk).update(provenance_state=state, provenance_ehr_id=ehr_id)
    delivery.provenance_state, delivery.provenance_ehr_id = state, ehr_id


def _provenance_owed(delivery: Delivery, stored: Outcome, answer: Outcome) -> Outcome:
    _provenance_mark(delivery, Delivery.ProvenanceState.OWED)
    reason = f"The note is at the EHR (id {stored.ehr_id}); its Provenance is owed: {answer.reason}"
    if answer.kind == Outcome.FAILED:
        return Outcome(Outcome.FAILED, ehr_id=stored.ehr_id, reason=reason, alert=answer.alert or "configuration")
    return Outcome(Outcome.RETRY, ehr_id=stored.ehr_id, reason=reason, retry_after=answer.retry_after)


def _reconcile(target, data: NoteInput, resource: dict, identifier: str) -> Outcome | None:
    """Search the EHR for a copy from an attempt whose answer was lost.
    Returns sent (found one), an outcome (search failed / duplicates) or None
    (not there: safe to send)."""
    matches = fhir_transport.documentreference_search(target, {"identifier": identifier})
    if isinstance(matches, Outcome):
        if matches.http_status in (400, 404, 405, 501):
            # No identifier search: patient + date + type, then content hash.
            matches = fhir_transport.documentreference_search(
                target,
                {
                    "patient": data.patient_ehr_id,
                    "date": resource["date"][:10],
                    "type": f"{resource['type']['coding'][0]['system']}|{resource['type']['coding'][0]['code']}",
                },
            )
            if isinstance(matches, Outcome):
                return failed(
                    "The EHR's answer was lost and it cannot be searched; check the EHR, then reprocess.",
                    alert="configuration",
                )
            ours = resource["content"][0]["attachment"]["hash"]
            matches = [m for m in matches if _content_hash(m) == ours]
        else:
            return Outcome(
                Outcome.UNKNOWN,
                reason=f"Reconciliation search failed: {matches.reason}",
                retry_after=matches.retry_after,
            )
    if len(matches) == 1:
        return Outcome(Outcome.SENT, ehr_id=str(matches[0].get("id", "")), reason="Found at the EHR (reconciled)")
    if len(matches) > 1:
        return failed(
            f"{len(matches)} copies of this note are at the EHR; a person must remove the extra.", alert="duplicate"
        )
    return None


def _content_hash(resource: dict) -> str:
    for content in resource.get("content") or []:
        attachment = content.get("attachment") or {}
        if attachment.get("hash"):
            return attachment["hash"]
        if attachment.get("data"):
            return attachment_hash(attachment["data"])
    return ""


@retry_once_on_conflict
@transaction.atomic
def _record(*, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome) -> SendResult:
    now = timezone.now()
    n = delivery.attempts
    retrying_for = now - (delivery.first_attempt_at or now)
    budget_spent = retrying_for > timedelta(hours=settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS)
    fields: dict = {"updated_at": now, "last_error": "" if outcome.kind == Outcome.SENT else outcome.reason[:2000]}
    reschedule = None
    alert_kind = ""
    if outcome.kind == Outcome.SENT:
        fields.update(
            state=S.DELIVERED, ehr_id=outcome.ehr_id, delivered_at=now, needs_reconcile=False, next_attempt_at=None
        )
        ledger = DeliveryAttempt.Outcome.RECONCILED if "reconciled" in outcome.reason else DeliveryAttempt.Outcome.SENT
    elif outcome.kind == Outcome.FAILED or budget_spent:
        fields.update(state=S.FAILED, next_attempt_at=None)
        if outcome.kind == Outcome.UNKNOWN:
            fields["needs_reconcile"] = True
        if outcome.kind != Outcome.FAILED:
            hours = settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS
            fields["last_error"] = f"Gave up after {hours:g} hours of retrying ({n} attempts): {outcome.reason}"[:2000]
        alert_kind = Alert.Kind.DEAD_LETTER
        if outcome.kind == Outcome.FAILED and outcome.alert in Alert.Kind.values:
            alert_kind = outcome.alert
        ledger = outcome.kind
    else:
        reschedule = delivery_backoff(attempt=n, retry_after=outcome.retry_after)
        fields.update(
            state=S.UNKNOWN if outcome.kind == Outcome.UNKNOWN else S.RETRYING,
            next_attempt_at=now + timedelta(seconds=reschedule),
        )
        if outcome.kind == Outcome.UNKNOWN:
            fields["needs_reconcile"] = True
        ledger = outcome.kind
        if retrying_for > timedelta(minutes=settings.PSYFI_DELIVERY_LONG_RETRY_ALERT_MINUTES):
            alert_kind = Alert.Kind.LONG_RETRY
    if outcome.ehr_id:  # the note is at the EHR, even when something it needs (its Provenance) is owed
        fields["ehr_id"] = outcome.ehr_id
    # Only the claimant may finish the attempt; a sweeper that declared this
    # worker dead has already handed the row on.
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.SENDING, attempts=n).update(**fields)
    attempt.finished_at = now
    attempt.outcome = ledger
    attempt.http_status = outcome.http_status
    attempt.ehr_id = outcome.ehr_id
    attempt.detail = (attempt.detail + " " if attempt.detail else "") + outcome.reason[:2000]
    if not changed:
        attempt.detail += " (row was taken over by the sweeper)"
    attempt.save()
    if not changed:
        return SendResult(Delivery.objects.filter(pk=delivery.pk).values_list("state", flat=True).first() or "")
    for name, value in fields.items():
        setattr(delivery, name, value)
    audit_record(
        practice=delivery.practice,
        actor=actor_system("delivery worker"),
        action="delivery.attempt",
        obj=delivery,
        note=delivery.note,
        client=delivery.note.client,
        after={"state": delivery.state, "attempt": n, "outcome": ledger, "ehr_id": delivery.ehr_id},
        detail={"reason": outcome.reason[:500], "http_status": outcome.http_status},
    )
    if delivery.state == S.DELIVERED:
        # An amendment waiting for this version goes next (after commit, so
        # it reads this row as delivered).
        transaction.on_commit(lambda: delivery_release_waiting(replaces_id=delivery.pk))
    if alert_kind == Alert.Kind.LONG_RETRY:
        since = delivery.first_attempt_at or now
        alert_raise(
            practice=delivery.practice,
            kind=alert_kind,
            delivery=delivery,
            connection=delivery.connection,
            reason=f"Retrying since {since:%Y-%m-%d %H:%M} UTC ({n} attempts); it will keep trying until "
            f"{since + timedelta(hours=settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS):%Y-%m-%d %H:%M} UTC. "
            f"Last answer: {outcome.reason}",
        )
    elif alert_kind:
        alert_raise(
            practice=delivery.practice,
            kind=alert_kind,
            delivery=delivery,
            connection=delivery.connection,
            reason=fields.get("last_error") or outcome.reason,
        )
    elif outcome.alert == "unreachable" and n >= settings.PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS:
        alert_raise(
            practice=delivery.practice,
            kind=Alert.Kind.UNREACHABLE,
            connection=delivery.connection,
            reason=f"The EHR has not answered for {n} attempts: {outcome.reason}",
        )
    return SendResult(delivery.state, reschedule_in=reschedule, outcome=outcome)


def alert_raise(*, practice, kind: str, reason: str, delivery=None, connection=None) -> Alert:
    """One open alert per (kind, delivery or connection): a flapping EHR
    raises one alert, not one per attempt."""
    existing = Alert.objects.filter(
        practice=practice, kind=kind, delivery=delivery, connection=connection, resolved_at__isnull=True
    ).first()
    if existing:
        return existing
    return Alert.objects.create(practice=practice, kind=kind, delivery=delivery, connection=connection, reason=reason)


@transaction.atomic
def delivery_reprocess(*, delivery: Delivery, actor) -> Delivery:
    """A person puts a failed delivery back to pending (its ledger stays; a
    lost answer is still reconciled before any resend)."""
    membership = Membership.objects.filter(user=actor, practice=delivery.practice, is_active=True).first()
    if membership is None or membership.role != Membership.Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin can reprocess a delivery.")
    # A person changed something: a fresh retry budget, and the patient is checked again.
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.FAILED).update(
        state=S.PENDING,
        attempts=0,
        next_attempt_at=None,
        first_attempt_at=None,
        patient_checked_at=None,
        updated_at=timezone.now(),
    )
    if not changed:
        raise DeliveryRefused("Only a failed delivery can be reprocessed.")
    Alert.objects.filter(delivery=delivery, resolved_at__isnull=True).update(resolved_at=timezone.now())
    delivery.refresh_from_db()
    audit_record(
        practice=delivery.practice,
        actor=actor_person(actor),
        action="delivery.reprocess",
        obj=delivery,
        note=delivery.note,
        client=delivery.note.client,
        before={"state": S.FAILED},
        after={"state": S.PENDING},
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def delivery_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue what a lost broker message or a dead worker left behind.
    A row stuck in "sending" may have reached the EHR: it becomes unknown and
    is reconciled before any resend. Duplicate nudges are harmless: only one
    claim succeeds."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PSYFI_DELIVERY_SWEEP_SECONDS)
    stale = now - timedelta(seconds=settings.PSYFI_DELIVERY_STALE_SECONDS)
    stuck = list(Delivery.objects.filter(state=S.SENDING, updated_at__lt=stale).values_list("pk", flat=True))
    for pk in stuck:
        Delivery.objects.filter(pk=pk, state=S.SENDING, updated_at__lt=stale).update(
            state=S.UNKNOWN,
            needs_reconcile=True,
            next_attempt_at=None,
            updated_at=now,
            last_error="The worker stopped mid-send; reconciling before any resend.",
        )
        # Its ledger row says a request may have reached the EHR; nobody will complete it now.
        DeliveryAttempt.objects.filter(delivery_id=pk, outcome=DeliveryAttempt.Outcome.SENDING).update(
            outcome=DeliveryAttempt.Outcome.UNKNOWN,
            finished_at=now,
            detail="The worker stopped before the EHR's answer was recorded.",
        )
    due = Delivery.objects.filter(
        Q(state=S.PENDING, updated_at__lt=now - grace)
        | Q(state__in=[S.RETRYING, S.UNKNOWN], next_attempt_at__lt=now - grace)
        | Q(state__in=[S.RETRYING, S.UNKNOWN], next_attempt_at__isnull=True)
    ).values_list("pk", flat=True)
    ids = list(due)
    for pk in ids:
        _enqueue(pk)
    # Notes filed by hand are never re-enqueued; one waiting too long raises its alert.
    from integrations.manual_filing import manual_filing_alert_overdue

    manual_filing_alert_overdue(now=now)
    # Backstop for a release nudge that never ran (a worker killed between
    # commit and on_commit): amendments whose earlier version is delivered.
    return len(ids) + len(delivery_release_waiting(now=now))


# ---------------------------------------------------------------- connections


@transaction.atomic
def connection_create(
    *,
    practice,
    name: str,
    kind: str,
    base_url: str,
    is_sandbox: bool,
    auth_kind: str = EHRConnection.Auth.NONE,
    client_id: str = "",
    token_url: str = "",
    username: str = "",
    secrets: dict | None = None,
    patient_query_url: str = "",
    hl7_patient_check: str = EHRConnection.HL7PatientCheck.PDQ,
    hl7_assigning_authority: str = "",
    actor=None,
) -> EHRConnection:
    """Raises ConnectionInvalid for a URL off loopback without TLS, or a
    sandbox-kind connection not marked sandbox, with credentials of the
    admin's own, or while the built-in sandbox is off. A sandbox-kind
    connection gets a bearer token issued here. `patient_query_url` (HL7
    only) is the IHE PDQ supplier; blank means base_url answers it.
    `hl7_patient_check` and `hl7_assigning_authority` (HL7 only; see
    _hl7_patient_check_validate) say how invariant 5 is kept."""
    if kind not in EHRConnection.Kind.values:
        raise ConnectionInvalid(f"Unknown connection kind {kind!r}.", field="kind")
    if kind == EHRConnection.Kind.MANUAL:
        from integrations.manual_filing import manual_connection_check

        manual_connection_check(
            base_url=base_url,
            patient_query_url=patient_query_url,
            auth_kind=auth_kind,
            client_id=client_id,
            token_url=token_url,
            username=username,
            secrets=secrets,
        )
    elif kind == EHRConnection.Kind.HL7:
        url_check(base_url, schemes=("mllp", "mllps"))
        if patient_query_url:
            url_check(patient_query_url, schemes=("mllp", "mllps"), field="patient_query_url")
    else:
        url_check(base_url)
        if patient_query_url:
            raise ConnectionInvalid("Only HL7 connections use a patient query address.", field="patient_query_url")
    _hl7_patient_check_validate(
        kind=kind, check=hl7_patient_check, authority=hl7_assigning_authority, patient_query_url=patient_query_url
    )
    if kind == EHRConnection.Kind.SANDBOX and not is_sandbox:
        raise ConnectionInvalid("The built-in sandbox is a sandbox connection.", field="is_sandbox")
    if kind == EHRConnection.Kind.SANDBOX:
        if not settings.SANDBOX_EHR_ENABLED:
            raise ConnectionInvalid("The built-in sandbox is off on this server (SANDBOX_EHR_ENABLED).", field="kind")
        # The sandbox answers only to the token it issues here (integrations.sandbox.access).
        auth_kind, secrets = sandbox_credentials_issue(auth_kind=auth_kind, secrets_given=secrets)
    if auth_kind in (EHRConnection.Auth.SMART, EHRConnection.Auth.CLIENT_SECRET) and token_url:
        url_check(token_url)
    # The egress policy, here as a form error; every connect checks again.
    for url, field in ((base_url, "base_url"), (patient_query_url, "patient_query_url"), (token_url, "token_url")):
        if url:
            egress_check_url(url, field=field)
    EHRConnection.objects.filter(practice=practice, is_active=True).update(is_active=False)
    connection = EHRConnection(
        practice=practice,
        name=name,
        kind=kind,
        base_url=base_url,
        patient_query_url=patient_query_url,
        hl7_patient_check=hl7_patient_check,
        hl7_assigning_authority=hl7_assigning_authority,
        is_sandbox=is_sandbox,
        auth=auth_kind,
        client_id=client_id,
        token_url=token_url,
        username=username,
        credentials_encrypted=secret_encrypt(secrets) if secrets else "",
    )
    connection.full_clean()
    connection.save()
    audit_record(
        practice=practice,
        actor=actor_person(actor) if actor else actor_system("setup"),
        action="connection.create",
        obj=connection,
        after={
            "kind": kind,
            "base_url": base_url,
            "patient_query_url": patient_query_url,
            "hl7_patient_check": hl7_patient_check,
            "hl7_assigning_authority": hl7_assigning_authority,
            "is_sandbox": is_sandbox,
            "auth": auth_kind,
        },
    )
    return connection


# HD-1 (namespace id) is at most 20 characters in HL7 v2.5; an OID goes in HD-2.
_HL7_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")
_HL7_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*)){1,60}$")


def _hl7_patient_check_validate(*, kind: str, check: str, authority: str, patient_query_url: str) -> None:
    """Raises ConnectionInvalid: an unknown check, either setting on a
    connection that is not HL7, an authority that is neither a namespace id
    nor an OID, `receiver` without an authority (the receiver can only match
    the id inside its domain) or with a patient query address (it asks
    nothing)."""
    if check not in EHRConnection.HL7PatientCheck.values:
        raise ConnectionInvalid(f"Unknown patient check {check!r}.", field="hl7_patient_check")
    if kind != EHRConnection.Kind.HL7:
        if check != EHRConnection.HL7PatientCheck.PDQ:
            raise ConnectionInvalid("Only HL7 connections choose a patient check.", field="hl7_patient_check")
        if authority:
            raise ConnectionInvalid("Only HL7 connections use an assigning authority.", field="hl7_assigning_authority")
        return
    if authority and not (_HL7_NAMESPACE.match(authority) or (len(authority) <= 100 and _HL7_OID.match(authority))):
        raise ConnectionInvalid(
            "The assigning authority is a namespace id (letters, digits, '.', '-', '_'; at most 20) or an OID "
            "(e.g. 2.16.840.1.113883.3.72.5.9.1).",
            field="hl7_assigning_authority",
        )
    if check == EHRConnection.HL7PatientCheck.RECEIVER:
        if not authority:
            raise ConnectionInvalid(
                "The receiver patient check needs the assigning authority of the EHR's patient ids (PID-3.4).",
                field="hl7_assigning_authority",
            )
        if patient_query_url:
            raise ConnectionInvalid(
                "The receiver patient check sends no patient query; leave the patient query address blank.",
                field="patient_query_url",
            )


@transaction.atomic
def connection_revoke(*, connection: EHRConnection, actor) -> EHRConnection:
    """The disable switch: nothing more is sent over this connection."""
    connection.is_active = False
    connection.revoked_at = timezone.now()
    connection.save(update_fields=["is_active", "revoked_at"])
    auth.token_cache_clear()
    audit_record(practice=connection.practice, actor=actor_person(actor), action="connection.revoke", obj=connection)
    return connection


def connection_record_metadata(*, connection: EHRConnection, summary: dict) -> EHRConnection:
    connection.supports_conditional_create = summary["conditional_create"]
    connection.supports_provenance = summary["provenance"]
    connection.metadata_summary = summary
    connection.metadata_checked_at = timezone.now()
    connection.save(
        update_fields=["supports_conditional_create", "supports_provenance", "metadata_summary", "metadata_checked_at"]
    )
    return connection


def connection_test(*, connection: EHRConnection, actor=None) -> dict:
    """ "Test connection": read /metadata and record what the server declares.
    Returns the summary, or {"error": ...} when it cannot be read. Either way
    the attempt is in the audit log, attributed to the admin who asked."""
    summary = _connection_metadata(connection)
    audit_record(
        practice=connection.practice,
        actor=actor_person(actor) if actor else actor_system("setup"),
        action="connection.test",
        obj=connection,
        after=summary,
    )
    return summary


def _connection_metadata(connection: EHRConnection) -> dict:
    if connection.kind not in (EHRConnection.Kind.FHIR, EHRConnection.Kind.SANDBOX):
        return {"error": "Only FHIR connections publish /metadata."}
    try:
        url_check(connection.base_url)
    except ConnectionInvalid as exc:
        return {"error": exc.message}
    timeout = settings.PSYFI_DELIVERY_TIMEOUT
    target = fhir_transport.FhirTarget(
        base_url=connection.base_url,
        timeout=timeout,
        auth_headers=lambda force=False: auth.auth_headers(connection, timeout=timeout, force=force),
    )
    try:
        summary = fhir_transport.metadata_read(target)
    except Exception as exc:  # noqa: BLE001 - shown to the admin, not raised
        # Four plain answers (not reachable, refused by the egress policy, TLS
        # failed, HTTP n), never the exception's class or text: those would
        # let an admin tell closed, filtered and non-HTTP ports apart, and
        # the error goes into the append-only audit log.
        return {"error": f"Could not read /metadata: {connection_problem(exc)}"}
    connection_record_metadata(connection=connection, summary=summary)
    return summary


def credentials_reencrypt() -> int:
    """Re-encrypt every stored secret under the newest key (key rotation)."""
    from integrations.models import SigningKey

    count = 0
    for connection in EHRConnection.objects.exclude(credentials_encrypted=""):
        EHRConnection.objects.filter(pk=connection.pk).update(
            credentials_encrypted=secret_rotate(connection.credentials_encrypted)
        )
        count += 1
    for key in SigningKey.objects.all():
        SigningKey.objects.filter(pk=key.pk).update(private_key_encrypted=secret_rotate(key.private_key_encrypted))
        count += 1
    return count


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
