"""EHR connections: create (the URL, egress and patient-check rules), revoke,
read what the server declares (/metadata), re-encrypt credentials."""

import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import actor_person, actor_system, audit_record
from integrations import auth
from integrations.crypto import secret_encrypt, secret_rotate
from integrations.egress import egress_check_url
from integrations.errors import (
    ConnectionInvalid,
)
from integrations.models import EHRConnection
from integrations.sandbox.access import sandbox_credentials_issue
from integrations.transports import fhir as fhir_transport
from integrations.transports.base import connection_problem, url_check


def _active_connection(practice) -> EHRConnection | None:
    return EHRConnection.objects.filter(practice=practice, is_active=True, revoked_at__isnull=True).first()


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
