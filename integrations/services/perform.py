"""One delivery attempt over the connection's protocol: the plain note data
for the builders, then a perform function per connection kind (PERFORMERS),
each checking the target patient (invariant 5) and handing bytes to its
transport. The transports return facts; what they mean is decided by
integrations.outcomes, the same for every protocol."""

import copy
import uuid
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.utils import timezone

from integrations import auth
from integrations.builders import NoteInput, SectionInput
from integrations.builders.fhir import attachment_hash, documentreference_build, provenance_build
from integrations.builders.hl7 import mdm_build, pdq_query_build
from integrations.builders.rest import rest_build, rest_patient_read
from integrations.errors import (
    ConnectionInvalid,
)
from integrations.mapping import mapping_default_document, rest_patient_errors
from integrations.models import Delivery, EHRConnection, FieldMapping
from integrations.outcomes import (
    Outcome,
    failed,
    fhir_create_outcome,
    fhir_patient_check,
    fhir_resources,
    mdm_ack_outcome,
    pdq_check,
    rest_id_from,
    rest_patient_check,
    sent,
    status_outcome,
)
from integrations.services.connections import (
    _active_connection,
    _hl7_patient_check_validate,
    connection_record_metadata,
)
from integrations.services.invariants import delivery_check_deliverable, delivery_check_target
from integrations.transports import fhir as fhir_transport
from integrations.transports import mllp as mllp_transport
from integrations.transports import rest as rest_transport
from integrations.transports.base import reply_of, url_check
from notes.models import Membership, NoteSection, NoteTemplateVersion
from notes.vocabulary import icd10_check
from psyfi_review.compiled_reads import CompiledRead

S = Delivery.State


def _cosigner_input(note) -> dict:
    """NoteInput's co-signer fields: the supervisor of a co-signed note, as
    the signer is named (stored name parts, credentials)."""
    if note.cosigned_by_id is None:
        return {}
    user = note.cosigned_by
    membership = Membership.objects.filter(user=user).first()
    credentials = membership.credentials if membership else ""
    name = user.get_full_name() or user.get_username()
    return {
        "cosigner_name": f"{name}, {credentials}" if credentials else name,
        "cosigner_ehr_id": membership.ehr_practitioner_id if membership else "",
        "cosigner_family_name": user.last_name or ("" if user.first_name else user.get_username()),
        "cosigner_given_name": user.first_name,
        "cosigner_credentials": credentials,
        "cosigned_at": note.cosigned_at,
    }


# Every attempt reads them; compiled once per connection (psyfi_review.compiled_reads).
_NOTE_SECTIONS = CompiledRead(lambda note_id: NoteSection.objects.filter(note_id=note_id).order_by("order"))


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
    cosigner = _cosigner_input(note)
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
            for s in _NOTE_SECTIONS.all(note.pk)
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
        **cosigner,
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


def _fhir_target(connection: EHRConnection, delivery: Delivery) -> fhir_transport.FhirTarget:
    timeout = settings.PSYFI_DELIVERY_TIMEOUT
    return fhir_transport.FhirTarget(
        base_url=connection.base_url,
        timeout=timeout,
        auth_headers=lambda force=False: auth.auth_headers(connection, timeout=timeout, force=force),
        request_id=f"psyfi-delivery-{delivery.pk}-{delivery.attempts}",
    )


def _perform(delivery: Delivery) -> Outcome:
    """Invariants, then the connection kind's perform function (PERFORMERS)."""
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
    perform = PERFORMERS.get(connection.kind)
    if perform is None:
        return failed(f"Unknown connection kind {connection.kind!r}.", alert="configuration")
    return perform(delivery, connection)


def _perform_manual(delivery: Delivery, connection: EHRConnection) -> Outcome:
    from integrations.manual_filing import filing_outcome

    return filing_outcome(connection)  # no I/O: a person files it (integrations.manual_filing)


def _perform_fhir(delivery: Delivery, connection: EHRConnection) -> Outcome:
    url_check(connection.base_url)
    return _fhir_send(delivery, connection, note_input(delivery), delivery_mapping_document(delivery), timezone.now())


def _perform_hl7(delivery: Delivery, connection: EHRConnection) -> Outcome:
    data = note_input(delivery)
    mapping = delivery_mapping_document(delivery)
    now = timezone.now()
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
        query = pdq_query_build(
            patient_id=data.patient_ehr_id, query_id=query_id, now=now, assigning_authority=authority
        )
        mismatch = pdq_check(
            mllp_transport.exchange(query_url, query, settings.PSYFI_DELIVERY_TIMEOUT),
            query_id=query_id,
            patient_id=data.patient_ehr_id,
            birth_date=data.patient_birth_date,
            assigning_authority=authority,
        )
        if mismatch is not None:
            return mismatch
        _patient_check_passed(delivery, now)
    reply = mllp_transport.exchange(connection.base_url, message, settings.PSYFI_DELIVERY_TIMEOUT)
    return mdm_ack_outcome(reply, control_id=delivery.hl7_control_id, patient_id=data.patient_ehr_id)


def _perform_rest(delivery: Delivery, connection: EHRConnection) -> Outcome:
    data = note_input(delivery)
    mapping = delivery_mapping_document(delivery)
    now = timezone.now()
    url_check(connection.base_url)
    document = rest_build(data, mapping, now=now)
    # Invariant 5; a mapping without a patient block raises MappingInvalid.
    read = rest_patient_read(
        _patient_check_mapping(delivery, mapping), base_url=connection.base_url, patient_id=data.patient_ehr_id
    )
    headers = auth.auth_headers(connection, timeout=settings.PSYFI_DELIVERY_TIMEOUT)
    if _patient_check_due(delivery, now):
        mismatch = rest_patient_check(
            rest_transport.patient_read(read, headers=headers, timeout=settings.PSYFI_DELIVERY_TIMEOUT),
            read,
            patient_id=data.patient_ehr_id,
            birth_date=data.patient_birth_date,
        )
        if mismatch is not None:
            return mismatch
        _patient_check_passed(delivery, now)
    reply = rest_transport.document_post(
        url=connection.base_url,
        document=document,
        idempotency_key=delivery.idempotency_key,
        headers=headers,
        timeout=settings.PSYFI_DELIVERY_TIMEOUT,
    )
    # The API takes an Idempotency-Key, so a resend after a lost answer is safe.
    return status_outcome(reply, write=True, resend_safe=True, ehr_id=rest_id_from(reply))


def _patient_check_due(delivery: Delivery, now: datetime) -> bool:
    """Invariant 5 is checked before the first write; once the EHR confirmed
    the patient for this delivery, retries do not read it again until the
    check is PSYFI_PATIENT_RECHECK_HOURS old (each read is one more request
    that a flaky EHR can fail)."""
    checked = delivery.patient_checked_at
    return checked is None or now - checked > timedelta(hours=settings.PSYFI_PATIENT_RECHECK_HOURS)


def _patient_check_passed(delivery: Delivery, now: datetime) -> None:
    # Written by _record with the attempt's outcome: one UPDATE fewer per
    # delivery. Lost only if the sweeper took the row over, and then the
    # next attempt simply checks again.
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


def _fhir_send(delivery: Delivery, connection: EHRConnection, data: NoteInput, mapping: dict, now) -> Outcome:
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
                return status_outcome(reply_of(exc.response), write=False, resend_safe=True, what="the /metadata read")
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
        mismatch = fhir_patient_check(
            fhir_transport.patient_read(target, data.patient_ehr_id),
            patient_id=data.patient_ehr_id,
            birth_date=data.patient_birth_date,
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
        reply = fhir_transport.resource_create(
            target, resource, if_none_exist=f"identifier={identifier}" if conditional else None
        )
        outcome = fhir_create_outcome(reply, "DocumentReference", resend_safe=conditional and confirmed)
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
        found = fhir_resources(fhir_transport.resource_search(target, "Provenance", {"target": reference}))
        if isinstance(found, Outcome):
            return _provenance_owed(delivery, stored, found)
        if found:
            _provenance_mark(delivery, Delivery.ProvenanceState.STORED, str(found[0].get("id", "")))
            return stored
    provenance = provenance_build(data, target_reference=reference, now=now)
    reply = fhir_transport.resource_create(target, provenance, if_none_exist=f"target={reference}")
    answer = fhir_create_outcome(reply, "Provenance", resend_safe=False)
    if answer.kind == Outcome.SENT:
        _provenance_mark(delivery, Delivery.ProvenanceState.STORED, answer.ehr_id)
        return stored
    return _provenance_owed(delivery, stored, answer)


def _provenance_mark(delivery: Delivery, state: str, ehr_id: str = "") -> None:
    """Owed and stored are written at once (they decide what the next attempt
    sends); "not supported" only with the attempt's outcome (_record), as it
    is worked out again by any attempt."""
    if (delivery.provenance_state, delivery.provenance_ehr_id) == (state, ehr_id):
        return
    if state != Delivery.ProvenanceState.UNSUPPORTED:
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
    matches = fhir_resources(fhir_transport.resource_search(target, "DocumentReference", {"identifier": identifier}))
    if isinstance(matches, Outcome):
        if matches.http_status in (400, 404, 405, 501):
            # No identifier search: patient + date + type, then content hash.
            matches = fhir_resources(
                fhir_transport.resource_search(
                    target,
                    "DocumentReference",
                    {
                        "patient": data.patient_ehr_id,
                        "date": resource["date"][:10],
                        "type": f"{resource['type']['coding'][0]['system']}|{resource['type']['coding'][0]['code']}",
                    },
                )
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
        return sent(str(matches[0].get("id", "")), reason="Found at the EHR after a lost answer", reconciled=True)
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


# How each kind of connection performs an attempt. A new protocol is a new
# entry here, with its transport returning facts (integrations.outcomes).
PERFORMERS = {
    EHRConnection.Kind.FHIR: _perform_fhir,
    EHRConnection.Kind.SANDBOX: _perform_fhir,
    EHRConnection.Kind.HL7: _perform_hl7,
    EHRConnection.Kind.REST: _perform_rest,
    EHRConnection.Kind.MANUAL: _perform_manual,
}
