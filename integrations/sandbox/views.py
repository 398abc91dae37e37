"""The built-in sandbox EHR: a small FHIR R4 endpoint inside the project.
It validates what it receives with fhir.resources (R4B), stores it in
SandboxResource, supports conditional create (If-None-Exist) and search by
identifier, and injects the faults set in SandboxFaults: 503 with
Retry-After, 429, slow answers, the connection dropped after the write
committed, Patient.birthDate renamed, and DocumentReference.date renamed
`indexed` in the profile it serves (StructureDefinition) and required on
writes (EHR schema changes).

Every request carries the credentials of a sandbox connection (401
otherwise), and sees only the data of that connection's practice."""

import functools
import json
import random
import socket
import time
import uuid

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from integrations.models import SandboxFaults, SandboxResource
from integrations.sandbox.access import sandbox_connection_authenticate

FHIR_JSON = "application/fhir+json"
WRITABLE = {"DocumentReference", "Provenance", "Patient"}


def _fhir(body: dict, status: int = 200, **headers) -> JsonResponse:
    response = JsonResponse(body, status=status, content_type=FHIR_JSON)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _outcome(status: int, code: str, diagnostics: str, **headers) -> JsonResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
    return _fhir(body, status, **headers)


def sandbox_endpoint(view):
    """Authenticate as a sandbox connection, then call view(request, practice, ...)."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        connection = sandbox_connection_authenticate(authorization=request.headers.get("Authorization", ""))
        if connection is None:
            return _outcome(
                401,
                "login",
                "Sandbox: send the bearer token of a sandbox EHR connection (Authorization: Bearer ...).",
                WWW_Authenticate='Bearer realm="psyfi-review sandbox EHR"',
            )
        return view(request, connection.practice, *args, **kwargs)

    return wrapper


def _faults_before(faults: SandboxFaults) -> HttpResponse | None:
    if faults.delay_ms:
        time.sleep(faults.delay_ms / 1000)
    if faults.rate_503 and random.random() < faults.rate_503:  # noqa: S311
        return _outcome(
            503, "transient", "Sandbox: unavailable (injected)", Retry_After=str(faults.retry_after_seconds)
        )
    if faults.rate_429 and random.random() < faults.rate_429:  # noqa: S311
        return _outcome(
            429, "throttled", "Sandbox: too many requests (injected)", Retry_After=str(faults.retry_after_seconds)
        )
    return None


def _drop_connection(request: HttpRequest) -> None:
    """Close the client's socket after the write committed, so the answer is
    lost. Reaches the socket on Django's own server (runserver, live_server);
    elsewhere the answer is delayed past any sane client timeout instead."""
    wsgi_input = request.META.get("wsgi.input")
    # Django's LimitedStream keeps the reader's bound read method.
    stream = getattr(wsgi_input, "stream", None) or getattr(getattr(wsgi_input, "_read", None), "__self__", None)
    raw = getattr(stream, "raw", None)
    sock = getattr(raw, "_sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return
    time.sleep(60)


PROFILE_ID = "psyfi-sandbox-documentreference"


def _profile_url(request: HttpRequest) -> str:
    base = request.path.rsplit("/metadata", 1)[0].rsplit("/StructureDefinition", 1)[0]
    return request.build_absolute_uri(f"{base}/StructureDefinition/{PROFILE_ID}")


def _structure_definition(faults: SandboxFaults, url: str) -> dict:
    """The sandbox's DocumentReference profile. With the renamed_field fault
    (an EHR update) `date` is renamed `indexed` and required, as a vendor
    renaming a field in a release would."""

    def element(path: str, min_: int = 0, max_: str = "1", **extra) -> dict:
        return {"id": path, "path": path, "min": min_, "max": max_, **extra}

    def bound(value_set: str) -> dict:
        return {"binding": {"strength": "required", "valueSet": value_set}}

    date = element("DocumentReference.indexed", 1) if faults.renamed_field else element("DocumentReference.date")
    elements = [
        element("DocumentReference", 0, "*"),
        element("DocumentReference.meta"),
        element("DocumentReference.contained", 0, "*"),
        element("DocumentReference.masterIdentifier"),
        element("DocumentReference.identifier", 0, "*"),
        element("DocumentReference.status", 1, **bound("http://hl7.org/fhir/ValueSet/document-reference-status|4.0.1")),
        element("DocumentReference.docStatus", **bound("http://hl7.org/fhir/ValueSet/composition-status|4.0.1")),
        element("DocumentReference.type"),
        element("DocumentReference.category", 0, "*"),
        element("DocumentReference.subject", 1),
        date,
        element("DocumentReference.author", 0, "*"),
        element("DocumentReference.authenticator"),
        element("DocumentReference.relatesTo", 0, "*"),
        element("DocumentReference.relatesTo.code", 1),
        element("DocumentReference.relatesTo.target", 1),
        element("DocumentReference.description"),
        element("DocumentReference.content", 1, "*"),
        element("DocumentReference.content.attachment", 1),
        element("DocumentReference.content.format"),
        element("DocumentReference.context"),
        element("DocumentReference.context.encounter", 0, "*"),
        element("DocumentReference.context.period"),
        element("DocumentReference.context.related", 0, "*"),
    ]
    return {
        "resourceType": "StructureDefinition",
        "id": PROFILE_ID,
        "url": url,
        "version": "2" if faults.renamed_field else "1",
        "name": "PsyfiSandboxDocumentReference",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "DocumentReference",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/DocumentReference",
        "derivation": "constraint",
        "snapshot": {"element": elements},
    }


def _capability(faults: SandboxFaults, profile_url: str = "") -> dict:
    def resource(kind: str, interactions: list[str], **extra) -> dict:
        return {"type": kind, "interaction": [{"code": i} for i in interactions], **extra}

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "psyfi-review sandbox EHR"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    resource(
                        "DocumentReference",
                        ["create", "read", "search-type"],
                        conditionalCreate=faults.conditional_create,
                        profile=profile_url,
                        searchParam=[{"name": "identifier", "type": "token"}, {"name": "patient", "type": "reference"}],
                    ),
                    resource("Patient", ["read", "update"]),
                    resource("Provenance", ["create", "read"]),
                    resource("StructureDefinition", ["read", "search-type"]),
                ],
            }
        ],
    }


@sandbox_endpoint
def metadata(request: HttpRequest, practice) -> HttpResponse:
    return _fhir(_capability(SandboxFaults.current(), _profile_url(request)))


def _validate(resource_type: str, body: dict) -> str | None:
    try:
        model = get_fhir_model_class(resource_type)
        model.model_validate({k: v for k, v in body.items() if k != "resourceType"})
    except (ValidationError, KeyError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc)}]
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
    return None


def _identifier(body: dict) -> tuple[str, str]:
    for ident in body.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            return str(ident.get("system", "")), str(ident["value"])
    return "", ""


def _present(obj: SandboxResource, faults: SandboxFaults) -> dict:
    body = dict(obj.body)
    if obj.resource_type == "Patient" and faults.rename_birth_date and "birthDate" in body:
        body["birth_date"] = body.pop("birthDate")
    return body


def _search(practice, resource_type: str, request: HttpRequest) -> list[SandboxResource]:
    qs = SandboxResource.objects.filter(practice=practice, resource_type=resource_type).order_by("pk")
    token = request.GET.get("identifier")
    if token:
        system, _, value = token.rpartition("|")
        qs = qs.filter(identifier_value=value)
        if system:
            qs = qs.filter(identifier_system=system)
    patient = request.GET.get("patient")
    if patient:
        qs = qs.filter(body__subject__reference=f"Patient/{patient.removeprefix('Patient/')}")
    results = list(qs[:100])
    date = request.GET.get("date")
    if date:
        results = [r for r in results if str(r.body.get("date", "")).startswith(date)]
    return results


@sandbox_endpoint
def type_endpoint(request: HttpRequest, practice, resource_type: str) -> HttpResponse:
    faults = SandboxFaults.current()
    if resource_type == "StructureDefinition" and request.method == "GET":
        url = _profile_url(request)
        wanted = request.GET.get("url")
        found = [_structure_definition(faults, url)] if wanted in (None, url) else []
        entries = [{"resource": r} for r in found]
        return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries})
    if resource_type not in WRITABLE:
        return _outcome(404, "not-supported", f"Sandbox: {resource_type} is not supported.")
    if request.method == "GET":
        matches = _search(practice, resource_type, request)
        return _fhir(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "entry": [{"resource": _present(m, faults)} for m in matches],
            }
        )
    if request.method != "POST":
        return _outcome(405, "not-supported", "Sandbox: use GET or POST.")
    failure = _faults_before(faults)
    if failure is not None:
        return failure
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _outcome(400, "structure", "Sandbox: the body is not JSON.")
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        return _outcome(400, "invalid", f"Sandbox: resourceType must be {resource_type}.")
    problem = _validate(resource_type, body)
    if problem:
        return _outcome(422, "invalid", f"Sandbox: {problem}")
    if resource_type == "DocumentReference" and faults.renamed_field and "indexed" not in body:
        # The EHR after its update: the element is `indexed` now, and required.
        return _outcome(422, "required", "Sandbox: DocumentReference.indexed is required (date was renamed).")
    if resource_type == "DocumentReference" and body.get("status") != "current":
        return _outcome(422, "code-invalid", "Sandbox: DocumentReference.status must be current.")
    system, value = _identifier(body)
    condition = request.headers.get("If-None-Exist")
    with transaction.atomic():
        if condition and faults.conditional_create:
            key, _, token = condition.partition("=")
            c_system, _, c_value = token.rpartition("|")
            existing = list(
                SandboxResource.objects.select_for_update().filter(
                    practice=practice, resource_type=resource_type, identifier_system=c_system, identifier_value=c_value
                )[:2]
            )
            if len(existing) > 1:
                return _outcome(412, "duplicate", "Sandbox: more than one match for If-None-Exist.")
            if existing:
                return _fhir(existing[0].body, 200)
        logical_id = uuid.uuid4().hex[:16]
        body["id"] = logical_id
        body.setdefault("meta", {})["versionId"] = "1"
        obj = SandboxResource.objects.create(
            practice=practice,
            resource_type=resource_type,
            logical_id=logical_id,
            identifier_system=system,
            identifier_value=value,
            body=body,
        )
    if faults.drop_after_commit_rate and random.random() < faults.drop_after_commit_rate:  # noqa: S311
        _drop_connection(request)
    return _fhir(obj.body, 201, Location=f"{resource_type}/{logical_id}/_history/1", ETag='W/"1"')


@sandbox_endpoint
def instance_endpoint(
    request: HttpRequest, practice, resource_type: str, logical_id: str, version: str = ""
) -> HttpResponse:
    faults = SandboxFaults.current()
    if request.method == "PUT" and resource_type == "Patient":
        # Seeding synthetic patients (demo setup and tests): update-as-create.
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return _outcome(400, "structure", "Sandbox: the body is not JSON.")
        if not isinstance(body, dict) or body.get("resourceType") != "Patient":
            return _outcome(400, "invalid", "Sandbox: resourceType must be Patient.")
        body["id"] = logical_id
        problem = _validate("Patient", body)
        if problem:
            return _outcome(422, "invalid", f"Sandbox: {problem}")
        sandbox_patient_put(practice=practice, logical_id=logical_id, body=body)
        return _fhir(body, 200)
    if request.method != "GET":
        return _outcome(405, "not-supported", "Sandbox: read only.")
    if resource_type == "StructureDefinition":
        if logical_id != PROFILE_ID:
            return _outcome(404, "not-found", f"Sandbox: no StructureDefinition/{logical_id}.")
        return _fhir(_structure_definition(faults, _profile_url(request)))
    failure = _faults_before(faults)
    if failure is not None:
        return failure
    obj = SandboxResource.objects.filter(practice=practice, resource_type=resource_type, logical_id=logical_id).first()
    if obj is None and resource_type == "Patient":
        obj = _mirrored_patient(practice, logical_id)
    if obj is None:
        return _outcome(404, "not-found", f"Sandbox: no {resource_type}/{logical_id}.")
    return _fhir(_present(obj, faults))


def _mirrored_patient(practice, logical_id: str) -> SandboxResource | None:
    """The sandbox knows every synthetic client of the practice that names it
    as its EHR record, so demo clients added later can be delivered without
    seeding. Real clients, and other practices' clients, are never mirrored."""
    from notes.models import Client

    client = Client.objects.filter(practice=practice, ehr_patient_id=logical_id, synthetic=True).first()
    if client is None:
        return None
    return SandboxResource(
        practice=practice, resource_type="Patient", logical_id=logical_id, body=patient_resource(client)
    )


def patient_resource(client) -> dict:
    return {
        "resourceType": "Patient",
        "id": client.ehr_patient_id,
        "identifier": [{"system": "urn:psyfi-review:sandbox:mrn", "value": client.ehr_patient_id}],
        "name": [{"family": client.family_name, "given": [client.given_name]}],
        "birthDate": client.date_of_birth.isoformat(),
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}]},
    }


def sandbox_patient_put(*, practice, logical_id: str, body: dict) -> SandboxResource:
    system, value = _identifier(body)
    body = {**body, "id": logical_id, "resourceType": "Patient"}
    try:
        obj, _ = SandboxResource.objects.update_or_create(
            practice=practice,
            resource_type="Patient",
            logical_id=logical_id,
            defaults={"body": body, "identifier_system": system, "identifier_value": value},
        )
    except IntegrityError:  # a concurrent PUT of the same id won
        obj = SandboxResource.objects.get(practice=practice, resource_type="Patient", logical_id=logical_id)
    return obj
