"""FHIR R4 over HTTP: read /metadata, read a Patient, search and create
DocumentReferences. Status handling per ehr-standards.md §7."""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import requests

from integrations.errors import RedirectRefused
from integrations.transports.base import (
    Outcome,
    failed,
    http_session,
    operation_outcome_message,
    redirect_outcome,
    redirect_reason,
    retry,
    retry_after_seconds,
    sent,
    unknown,
)

FHIR_JSON = "application/fhir+json"
# IssueTypes that say "try again later".
RETRYABLE_ISSUES = {"transient", "throttled", "timeout", "lock-error"}


@dataclass
class FhirTarget:
    base_url: str
    timeout: float
    # Returns auth headers; called again with force=True once after a 401.
    auth_headers: Callable[..., dict]
    request_id: str = ""

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")


def _request(target: FhirTarget, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Accept": FHIR_JSON, **kwargs.pop("headers", {})}
    if target.request_id:
        headers["X-Request-Id"] = target.request_id
    response = None
    for force in (False, True):
        response = http_session().request(
            method,
            target.url(path),
            headers={**headers, **target.auth_headers(force=force)},
            timeout=target.timeout,
            allow_redirects=False,
            **kwargs,
        )
        if response.status_code != 401:
            break  # 401: refresh the token once, then take the answer
    return response


def _nothing_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (refused, DNS,
    connect timeout): resending is then safe."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc)
        return "NewConnectionError" in text or "Connection refused" in text or "NameResolution" in text
    return False


def metadata_read(target: FhirTarget) -> dict:
    """What the server's CapabilityStatement declares. Raises
    requests.RequestException or ValueError when it cannot be read,
    RedirectRefused for a redirect and EgressRefused for a refused address."""
    response = _request(target, "GET", "metadata")
    reason = redirect_reason(response)
    if reason is not None:
        raise RedirectRefused(reason, http_status=response.status_code)
    response.raise_for_status()
    body = response.json()
    if body.get("resourceType") != "CapabilityStatement":
        raise ValueError("The /metadata answer is not a CapabilityStatement.")
    declared = {}
    for rest in body.get("rest") or []:
        for resource in rest.get("resource") or []:
            declared[resource.get("type")] = resource
    doc = declared.get("DocumentReference") or {}
    return {
        "fhirVersion": body.get("fhirVersion", ""),
        "software": (body.get("software") or {}).get("name", ""),
        "conditional_create": bool(doc.get("conditionalCreate")),
        "provenance": any(i.get("code") == "create" for i in (declared.get("Provenance") or {}).get("interaction", [])),
        "documentreference_create": any(i.get("code") == "create" for i in doc.get("interaction", [])),
    }


def status_outcome(response: requests.Response, *, write: bool, resend_safe: bool) -> Outcome:
    redirect = redirect_outcome(response)
    if redirect is not None:
        return redirect
    status = response.status_code
    message, codes = operation_outcome_message(response)
    after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429 or (codes & RETRYABLE_ISSUES and status < 500):
        return retry(f"EHR throttled: {message}", after=after, http_status=status)
    if status >= 500:
        if write and not resend_safe:
            # The EHR may have committed before failing: search before resending.
            return unknown(f"EHR error after sending: {message}", after=after, http_status=status)
        return retry(f"EHR unavailable: {message}", after=after, http_status=status, alert="unreachable")
    if status in (409, 412) or "duplicate" in codes:
        return unknown(f"EHR reported a conflict; reconciling: {message}", http_status=status)
    if status == 401:
        return failed(f"EHR refused our credentials: {message}", http_status=status, alert="configuration")
    if status in (403, 404, 405):
        return failed(f"EHR configuration problem: {message}", http_status=status, alert="configuration")
    return failed(f"EHR rejected the note: {message}", http_status=status)


def _id_from(response: requests.Response, resource_type: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("resourceType") == resource_type and body.get("id"):
        return str(body["id"])
    location = response.headers.get("Location") or response.headers.get("Content-Location") or ""
    parts = urlparse(location).path.strip("/").split("/")
    if resource_type in parts:
        index = parts.index(resource_type)
        if index + 1 < len(parts):
            return parts[index + 1]
    return ""


def patient_check(target: FhirTarget, *, patient_id: str, birth_date: str) -> Outcome | None:
    """Invariant 5: read the Patient we are about to write to and compare its
    identity and date of birth. None when it matches; otherwise the outcome
    (a mismatch fails for good and never writes)."""
    try:
        response = _request(target, "GET", f"Patient/{patient_id}")
    except requests.RequestException as exc:
        return retry(f"Could not read the patient from the EHR: {type(exc).__name__}", alert="unreachable")
    if response.status_code == 404:
        return failed(f"The EHR has no Patient/{patient_id}; check the client's EHR id.", alert="patient_mismatch")
    if response.status_code != 200:
        return status_outcome(response, write=False, resend_safe=True)
    try:
        body = response.json()
    except ValueError:
        return failed("The EHR answered the patient read with something that is not JSON.", alert="configuration")
    identities = {str(body.get("id", ""))} | {
        str(i.get("value")) for i in body.get("identifier") or [] if isinstance(i, dict)
    }
    if body.get("resourceType") != "Patient" or patient_id not in identities:
        return failed(
            f"Patient/{patient_id} at the EHR is another record; nothing was written.", alert="patient_mismatch"
        )
    if "birthDate" not in body:
        return failed(
            "The EHR's Patient has no birthDate (has its schema changed?); nothing was written.",
            alert="patient_mismatch",
        )
    if body["birthDate"] != birth_date:
        return failed(
            f"Date of birth at the EHR ({body['birthDate']}) differs from the client's; nothing was written.",
            alert="patient_mismatch",
        )
    return None


def documentreference_search(target: FhirTarget, params: dict) -> list[dict] | Outcome:
    """Matching DocumentReferences, or an outcome when the search failed."""
    return resource_search(target, "DocumentReference", params)


def resource_search(target: FhirTarget, resource_type: str, params: dict) -> list[dict] | Outcome:
    """Matching resources of a type, or an outcome when the search failed."""
    try:
        response = _request(target, "GET", resource_type, params=params)
    except requests.RequestException as exc:
        return retry(f"Could not search the EHR: {type(exc).__name__}", alert="unreachable")
    if response.status_code != 200:
        outcome = status_outcome(response, write=False, resend_safe=True)
        return outcome
    try:
        bundle = response.json()
    except ValueError:
        return failed("The EHR's search answer is not JSON.", alert="configuration")
    return [e.get("resource") or {} for e in bundle.get("entry") or [] if isinstance(e, dict)]


def resource_create(
    target: FhirTarget, resource: dict, *, if_none_exist: str | None, resend_safe: bool | None = None
) -> Outcome:
    """POST a resource. With if_none_exist the server deduplicates, so a lost
    answer may be retried; without it a lost answer is `unknown`. resend_safe
    False keeps a lost answer `unknown` even with the header: the caller has
    not confirmed lately that the server honours it."""
    headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
    if if_none_exist:
        headers["If-None-Exist"] = if_none_exist
    resend_safe = bool(if_none_exist) if resend_safe is None else resend_safe and bool(if_none_exist)
    try:
        response = _request(target, "POST", resource["resourceType"], json=resource, headers=headers)
    except requests.RequestException as exc:
        if _nothing_sent(exc):
            return retry(f"EHR unreachable: {type(exc).__name__}", alert="unreachable")
        reason = f"No answer after sending ({type(exc).__name__})"
        return retry(reason) if resend_safe else unknown(reason)
    if response.status_code in (200, 201, 202):
        ehr_id = _id_from(response, resource["resourceType"])
        return sent(ehr_id, http_status=response.status_code)
    return status_outcome(response, write=True, resend_safe=resend_safe)
