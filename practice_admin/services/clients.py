"""Clients and their consent, as a practice admin manages them. Creating a
client and recording or revoking consent go through notes.services (which
block and unblock the client's open notes); this module adds the admin's
checks and the edit of a client's identity."""

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import actor_person, audit_record
from notes import services as notes_services
from notes.errors import DomainError
from notes.models import Client, ClientConsent, DisclosureText, Membership
from practice_admin.access import admin_membership

CLIENT_FIELDS = ("given_name", "family_name", "date_of_birth", "ehr_patient_id", "synthetic", "clinician")


def _clinician_check(*, practice_id: int, clinician) -> None:
    membership = getattr(clinician, "membership", None)
    if (
        membership is None
        or membership.practice_id != practice_id
        or membership.role != Membership.Role.CLINICIAN
        or not membership.is_active
    ):
        raise DomainError("The primary clinician must be an active clinician of this practice.", field="clinician")


def _date_of_birth_check(date_of_birth: date) -> None:
    if date_of_birth > timezone.localdate():
        raise DomainError("The date of birth is in the future.", field="date_of_birth")


def _ehr_id_taken(*, practice_id: int, ehr_patient_id: str, exclude_pk: int | None = None) -> bool:
    if not ehr_patient_id:
        return False
    clients = Client.objects.filter(practice_id=practice_id, ehr_patient_id=ehr_patient_id)
    if exclude_pk is not None:
        clients = clients.exclude(pk=exclude_pk)
    return clients.exists()


def _taken_error(ehr_patient_id: str) -> DomainError:
    return DomainError(
        f"Another client of this practice has EHR patient id “{ehr_patient_id}”.", field="ehr_patient_id"
    )


@transaction.atomic
def client_add(
    *,
    actor,
    clinician,
    given_name: str,
    family_name: str,
    date_of_birth: date,
    ehr_patient_id: str = "",
    synthetic: bool = False,
) -> Client:
    """A new client of the admin's practice (audited as client.create).
    Raises NotPermitted, or DomainError naming the field at fault."""
    membership = admin_membership(actor)
    _clinician_check(practice_id=membership.practice_id, clinician=clinician)
    _date_of_birth_check(date_of_birth)
    ehr_patient_id = ehr_patient_id.strip()
    if _ehr_id_taken(practice_id=membership.practice_id, ehr_patient_id=ehr_patient_id):
        raise _taken_error(ehr_patient_id)
    try:
        with transaction.atomic():
            return notes_services.client_create(
                practice=membership.practice,
                clinician=clinician,
                given_name=given_name.strip(),
                family_name=family_name.strip(),
                date_of_birth=date_of_birth,
                ehr_patient_id=ehr_patient_id,
                synthetic=synthetic,
                actor=actor,
            )
    except IntegrityError:  # added a moment ago by someone else (client_unique_ehr_patient_id_per_practice)
        raise _taken_error(ehr_patient_id) from None


@transaction.atomic
def client_update(*, actor, client: Client, **changes) -> Client:
    """Change a client's name, date of birth, EHR patient id, synthetic flag
    or primary clinician. The audit event keeps each changed field's value
    before and after. Raises NotPermitted or DomainError."""
    admin_membership(actor, practice_id=client.practice_id)
    unknown = set(changes) - set(CLIENT_FIELDS)
    if unknown:
        raise DomainError(f"These client fields cannot be changed here: {', '.join(sorted(unknown))}.")
    client = Client.objects.select_for_update(no_key=True).get(pk=client.pk)
    if "clinician" in changes:
        _clinician_check(practice_id=client.practice_id, clinician=changes["clinician"])
    if "date_of_birth" in changes:
        _date_of_birth_check(changes["date_of_birth"])
    if "ehr_patient_id" in changes:
        changes["ehr_patient_id"] = changes["ehr_patient_id"].strip()
        if _ehr_id_taken(
            practice_id=client.practice_id, ehr_patient_id=changes["ehr_patient_id"], exclude_pk=client.pk
        ):
            raise _taken_error(changes["ehr_patient_id"])
    before, after = {}, {}
    for name, value in changes.items():
        if isinstance(value, str) and name != "ehr_patient_id":
            value = value.strip()
        old = getattr(client, name)
        if old != value:
            before[name] = old.pk if name == "clinician" else old
            after[name] = value.pk if name == "clinician" else value
            setattr(client, name, value)
    if not after:
        return client
    client.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            client.save(update_fields=list(after))
    except IntegrityError:
        raise _taken_error(client.ehr_patient_id) from None
    audit_record(
        practice=client.practice,
        actor=actor_person(actor),
        action="client.update",
        obj=client,
        client=client,
        before=before,
        after=after,
    )
    return client


def admin_consent_record(
    *,
    actor,
    client: Client,
    consented_on: date,
    disclosure: DisclosureText,
    method: str,
    guardian_name: str = "",
    guardian_relationship: str = "",
) -> ClientConsent:
    """Record consent against one of the practice's disclosure text versions
    (notes.services.consent_record lifts the consent blocks of open notes).
    Raises NotPermitted or DomainError."""
    admin_membership(actor, practice_id=client.practice_id)
    if disclosure.practice_id != client.practice_id:
        raise DomainError("Choose a disclosure text of this practice.", field="disclosure")
    if consented_on > timezone.localdate():
        raise DomainError("The consent date is in the future.", field="consented_on")
    if consented_on < client.date_of_birth:
        raise DomainError("The consent date is before the client's date of birth.", field="consented_on")
    if method not in ClientConsent.Method.values:
        raise DomainError("Choose how the client consented.", field="method")
    return notes_services.consent_record(
        client=client,
        consented_on=consented_on,
        disclosure_version=f"v{disclosure.version}",
        actor=actor,
        method=method,
        guardian_name=guardian_name,
        guardian_relationship=guardian_relationship,
    )


def admin_consent_revoke(*, actor, client: Client) -> ClientConsent:
    """Revoke the client's active consent; their open AI notes are blocked in
    the same transaction (notes.services.consent_revoke)."""
    admin_membership(actor, practice_id=client.practice_id)
    return notes_services.consent_revoke(client=client, actor=actor)
