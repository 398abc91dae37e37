"""EHR schema drift: read what the EHR declares and check it against what
the active mapping needs, so an EHR update that renames or drops a field
raises an alert before any delivery fails.

* FHIR (and the built-in sandbox): the CapabilityStatement (/metadata) must
  still declare DocumentReference with `create`, Patient `read`, and
  conditional create if it did before (at the last explicit connection
  test; a drop stays reported until a person re-tests the connection or
  resolves the alert); the DocumentReference profile it names (a
  StructureDefinition, read from the same server) must still contain every
  element the builder writes (DOCUMENTREFERENCE_PATHS), must not require an
  element the builder does not write, and must bind status and docStatus to
  the value sets the builder's codes come from.
* REST: the mapping's optional `rest.schema_url` (a JSON Schema of the
  EHR's note body) must still have every path the mapping writes, and
  require nothing the mapping does not write.

Run daily per connection by beat (integrations.schema_drift_check_all) and
on demand from the connections page. Problems raise one schema_drift alert
per connection (deduplicated while open) naming each field."""

from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import actor_person, actor_system, audit_record
from integrations import auth
from integrations.errors import ConnectionInvalid, RedirectRefused
from integrations.models import Alert, EHRConnection, FieldMapping
from integrations.services.alerts import alert_raise
from integrations.services.connections import connection_record_metadata
from integrations.transports import fhir as fhir_transport
from integrations.transports.base import connection_problem, http_session, redirect_reason, url_check

# The elements integrations.builders.fhir.documentreference_build writes
# (context.related, relatesTo and contained only for some notes, but a
# delivery needs them when it does).
DOCUMENTREFERENCE_PATHS = (
    "DocumentReference.meta",
    "DocumentReference.masterIdentifier",
    "DocumentReference.identifier",
    "DocumentReference.status",
    "DocumentReference.docStatus",
    "DocumentReference.type",
    "DocumentReference.category",
    "DocumentReference.subject",
    "DocumentReference.date",
    "DocumentReference.author",
    "DocumentReference.authenticator",
    "DocumentReference.relatesTo",
    "DocumentReference.relatesTo.code",
    "DocumentReference.relatesTo.target",
    "DocumentReference.content",
    "DocumentReference.content.attachment",
    "DocumentReference.context",
    "DocumentReference.context.period",
    "DocumentReference.context.related",
    "DocumentReference.contained",
)
# Required bindings the builder's codes rely on (status "current",
# docStatus "final"/"amended").
REQUIRED_BINDINGS = {
    "DocumentReference.status": "http://hl7.org/fhir/ValueSet/document-reference-status",
    "DocumentReference.docStatus": "http://hl7.org/fhir/ValueSet/composition-status",
}
FHIR_KINDS = (EHRConnection.Kind.FHIR, EHRConnection.Kind.SANDBOX)
CONDITIONAL_CREATE = "DocumentReference.conditionalCreate"


@dataclass
class DriftReport:
    problems: list[dict] = field(default_factory=list)  # {"field": ..., "problem": ...}
    checked: list[str] = field(default_factory=list)
    error: str = ""  # the EHR could not be read; nothing was concluded

    def add(self, where: str, problem: str) -> None:
        self.problems.append({"field": where, "problem": problem})


def schema_drift_connections() -> list[int]:
    """The connections the daily check covers: active, not revoked, FHIR or REST."""
    return list(
        EHRConnection.objects.filter(
            is_active=True, revoked_at__isnull=True, kind__in=[*FHIR_KINDS, EHRConnection.Kind.REST]
        ).values_list("pk", flat=True)
    )


# ---------------------------------------------------------------- checks (pure)


def capability_problems(capability: dict, *, had_conditional_create: bool | None) -> list[tuple[str, str]]:
    declared = {}
    for rest in capability.get("rest") or []:
        for resource in rest.get("resource") or []:
            declared[resource.get("type")] = resource

    def interactions(kind: str) -> set:
        return {i.get("code") for i in (declared.get(kind) or {}).get("interaction") or []}

    problems = []
    if "DocumentReference" not in declared:
        problems.append(("DocumentReference", "The EHR no longer declares the DocumentReference resource."))
    elif "create" not in interactions("DocumentReference"):
        problems.append(("DocumentReference.create", "The EHR no longer declares creating DocumentReference."))
    if "read" not in interactions("Patient"):
        problems.append(("Patient.read", "The EHR no longer declares reading Patient (the patient check needs it)."))
    doc = declared.get("DocumentReference") or {}
    if had_conditional_create and not doc.get("conditionalCreate"):
        problems.append((CONDITIONAL_CREATE, "The EHR no longer declares conditional create (If-None-Exist)."))
    return problems


def capability_profile(capability: dict) -> str:
    """The DocumentReference profile the CapabilityStatement names, if any."""
    for rest in capability.get("rest") or []:
        for resource in rest.get("resource") or []:
            if resource.get("type") == "DocumentReference":
                return resource.get("profile") or next(iter(resource.get("supportedProfile") or []), "")
    return ""


def structure_definition_problems(definition: dict) -> list[tuple[str, str]]:
    """What the mapping needs that the profile no longer has, or what the
    profile requires that the mapping does not send."""
    elements = (definition.get("snapshot") or {}).get("element") or (definition.get("differential") or {}).get(
        "element"
    )
    by_path = {e.get("path"): e for e in elements or [] if isinstance(e, dict)}
    problems = []
    for path in DOCUMENTREFERENCE_PATHS:
        if path not in by_path:
            problems.append((path, f"{path} is no longer in the EHR's DocumentReference profile."))
    written = set(DOCUMENTREFERENCE_PATHS)
    for path, element in by_path.items():
        parent = path.rsplit(".", 1)[0] if path and "." in path else ""
        required = int(element.get("min") or 0) >= 1 and (element.get("max") or "*") != "0"
        # A required child of an element we do not write is not ours to fill.
        if required and path not in written and (parent == "DocumentReference" or parent in written):
            problems.append((path, f"The EHR's profile now requires {path}, which the mapping does not send."))
    for path, value_set in REQUIRED_BINDINGS.items():
        binding = (by_path.get(path) or {}).get("binding") or {}
        declared = str(binding.get("valueSet") or "").split("|")[0]
        if path in by_path and binding.get("strength") == "required" and declared and declared != value_set:
            problems.append((path, f"{path} is now bound to {declared}; the mapping's codes come from {value_set}."))
    return problems


def _schema_node(schema: dict, path: str) -> dict | None:
    node = schema
    for part in path.split("."):
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict) or part not in properties:
            return None
        node = properties[part]
    return node if isinstance(node, dict) else {}


def rest_schema_problems(schema: dict, rest_mapping: dict) -> list[tuple[str, str]]:
    """Each JSON path the REST mapping writes must be in the schema; each
    property the schema requires (at any level the mapping writes into) must
    be written."""
    paths = [p for p in (rest_mapping.get("fields") or {}).values() if isinstance(p, str)]
    paths += [p for p in (rest_mapping.get("sections") or {}).values() if isinstance(p, str)]
    if isinstance(rest_mapping.get("unmapped"), str):
        paths.append(rest_mapping["unmapped"])
    problems = []
    for path in paths:
        if _schema_node(schema, path) is None:
            problems.append((path, f"{path} is no longer in the EHR's note schema."))
    prefixes = {""} | {".".join(p.split(".")[:i]) for p in paths for i in range(1, len(p.split(".")))}
    written = set(paths) | prefixes
    for prefix in sorted(prefixes):
        node = schema if not prefix else _schema_node(schema, prefix)
        for name in (node or {}).get("required") or []:
            path = f"{prefix}.{name}" if prefix else name
            if path not in written:
                problems.append((path, f"The EHR's note schema now requires {path}, which the mapping does not send."))
    return problems


# ---------------------------------------------------------------- I/O


def _fhir_target(connection: EHRConnection) -> fhir_transport.FhirTarget:
    timeout = settings.PSYFI_DELIVERY_TIMEOUT
    return fhir_transport.FhirTarget(
        base_url=connection.base_url,
        timeout=timeout,
        auth_headers=lambda force=False: auth.auth_headers(connection, timeout=timeout, force=force),
    )


def _read_json(target: fhir_transport.FhirTarget, path: str, **params) -> dict:
    response = fhir_transport._request(target, "GET", path, params=params or None)
    _refuse_redirect(response)
    response.raise_for_status()
    return response.json()


def _refuse_redirect(response: requests.Response) -> None:
    reason = redirect_reason(response)
    if reason is not None:
        raise RedirectRefused(reason, http_status=response.status_code)


def _structure_definition(target, profile: str) -> dict:
    """Read the profile from the connection's own server (never another
    host: the request carries the connection's credentials): by id when the
    canonical URL ends in StructureDefinition/<id>, else by searching its url."""
    parts = profile.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "StructureDefinition":
        try:
            body = _read_json(target, f"StructureDefinition/{parts[-1]}")
            if body.get("resourceType") == "StructureDefinition":
                return body
        except requests.HTTPError:
            pass
    bundle = _read_json(target, "StructureDefinition", url=profile)
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "StructureDefinition":
            return resource
    raise ValueError("The EHR does not serve its DocumentReference profile.")


def _fhir_check(connection: EHRConnection, report: DriftReport) -> None:
    url_check(connection.base_url)
    target = _fhir_target(connection)
    capability = _read_json(target, "metadata")
    if capability.get("resourceType") != "CapabilityStatement":
        raise ValueError("The /metadata answer is not a CapabilityStatement.")
    report.checked.append("CapabilityStatement")
    had = _had_conditional_create(connection)
    for where, problem in capability_problems(capability, had_conditional_create=had):
        report.add(where, problem)
    profile = capability_profile(capability)
    if profile:
        definition = _structure_definition(target, profile)
        report.checked.append(f"StructureDefinition {profile}")
        for where, problem in structure_definition_problems(definition):
            report.add(where, problem)
    summary = fhir_transport.metadata_read(target)
    connection_record_metadata(connection=connection, summary=summary)


def _had_conditional_create(connection: EHRConnection) -> bool | None:
    """What the conditional-create check compares with. Not only the value
    on the connection: this check, and deliveries, record each /metadata
    read there, so a dropped conditional create would be reported once and
    then forgotten. It stays reported until a person re-tests the connection
    (the last explicit test's answer is the baseline) or resolves the
    schema_drift alert (accepting what the EHR now declares)."""
    if connection.supports_conditional_create:
        return True
    tested = (
        AuditEvent.objects.filter(
            practice_id=connection.practice_id,
            action="connection.test",
            object_type=EHRConnection._meta.label_lower,
            object_id=str(connection.pk),
        )
        .order_by("-seq")
        .values_list("created_at", "after")
        .first()
    )
    resolved = (
        Alert.objects.filter(connection=connection, kind=Alert.Kind.SCHEMA_DRIFT, resolved_by__isnull=False)
        .order_by("-resolved_at")
        .values_list("resolved_at", flat=True)
        .first()
    )
    if tested and "error" not in (tested[1] or {}) and (resolved is None or tested[0] > resolved):
        return bool(tested[1].get("conditional_create"))
    # Not tested since a person last resolved it: the drop reported by the
    # last check stands while its alert is open.
    reported = any(p.get("field") == CONDITIONAL_CREATE for p in connection.schema_problems or [])
    still_open = Alert.objects.filter(connection=connection, kind=Alert.Kind.SCHEMA_DRIFT, resolved_at__isnull=True)
    return True if reported and still_open.exists() else connection.supports_conditional_create


def _rest_mappings(connection: EHRConnection) -> list[FieldMapping]:
    return list(FieldMapping.objects.filter(practice=connection.practice, is_active=True).select_related("template"))


def _rest_check(connection: EHRConnection, report: DriftReport) -> None:
    for mapping in _rest_mappings(connection):
        rest = (mapping.document or {}).get("rest") or {}
        schema_url = rest.get("schema_url")
        if not schema_url:
            continue
        url_check(schema_url, field="schema_url")
        same_host = urlsplit(urljoin(connection.base_url, schema_url)).netloc == urlsplit(connection.base_url).netloc
        headers = {"Accept": "application/schema+json, application/json"}
        if same_host:
            headers.update(auth.auth_headers(connection, timeout=settings.PSYFI_DELIVERY_TIMEOUT))
        # The guarded session checks the egress policy at connect.
        response = http_session().get(
            schema_url, headers=headers, timeout=settings.PSYFI_DELIVERY_TIMEOUT, allow_redirects=False
        )
        _refuse_redirect(response)
        response.raise_for_status()
        schema = response.json()
        report.checked.append(f"JSON Schema {schema_url} ({mapping.template} v{mapping.version})")
        for where, problem in rest_schema_problems(schema, rest):
            report.add(where, f"{mapping.template} mapping v{mapping.version}: {problem}")


def schema_drift_check(*, connection: EHRConnection, actor=None) -> DriftReport:
    """Check one connection; record the result on it and in the audit log
    (attributed to the admin who asked, or the system); raise a
    schema_drift alert naming each field when there is drift. An EHR that
    cannot be read is reported in `error`, not as drift (the delivery
    alerts cover an unreachable EHR)."""
    report = DriftReport()
    try:
        if connection.kind in FHIR_KINDS:
            _fhir_check(connection, report)
        elif connection.kind == EHRConnection.Kind.REST:
            _rest_check(connection, report)
        else:
            report.error = "Only FHIR and REST connections declare a schema."
    except (ConnectionInvalid, requests.RequestException, ValueError) as exc:
        # Plain answers only (connection_problem, or our own words): the error goes in the audit log.
        if isinstance(exc, requests.exceptions.JSONDecodeError):
            problem = "the answer is not JSON"
        elif isinstance(exc, ValueError) and not isinstance(exc, requests.RequestException):
            problem = str(exc)
        else:
            problem = connection_problem(exc)
        report.error = f"Could not read what the EHR declares: {problem}"
    with transaction.atomic():
        if not report.error:
            connection.schema_checked_at = timezone.now()
            connection.schema_problems = report.problems
            connection.save(update_fields=["schema_checked_at", "schema_problems"])
        audit_record(
            practice=connection.practice,
            actor=actor_person(actor) if actor is not None else actor_system("schema drift check"),
            action="connection.schema_check",
            obj=connection,
            after={"problems": report.problems, "checked": report.checked, "error": report.error},
        )
        if report.problems:
            fields = ", ".join(dict.fromkeys(p["field"] for p in report.problems))
            details = " ".join(p["problem"] for p in report.problems)
            alert_raise(
                practice=connection.practice,
                kind=Alert.Kind.SCHEMA_DRIFT,
                connection=connection,
                actor=actor,
                reason=f"What {connection.name} declares no longer fits the field mapping ({fields}). {details} "
                "Update the mapping (or ask the EHR vendor) before deliveries fail.",
            )
    return report
