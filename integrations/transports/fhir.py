"""FHIR R4 over HTTP: read /metadata, read a Patient, search and create
resources. I/O only: each returns the facts (integrations.outcomes.Reply);
what they mean (ehr-standards.md §7) is integrations.outcomes'."""

from collections.abc import Callable
from dataclasses import dataclass

import requests

from integrations.errors import RedirectRefused
from integrations.outcomes import Reply
from integrations.transports.base import http_exchange, redirect_reason, reply_of, unanswered

FHIR_JSON = "application/fhir+json"


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
        sent = {**headers, **target.auth_headers(force=force)}
        response = http_exchange(method, target.url(path), headers=sent, timeout=target.timeout, **kwargs)
        if response.status_code != 401:
            break  # 401: refresh the token once, then take the answer
    return response


def _exchange(target: FhirTarget, method: str, path: str, **kwargs) -> Reply:
    try:
        return reply_of(_request(target, method, path, **kwargs))
    except requests.RequestException as exc:
        return unanswered(exc)


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


def patient_read(target: FhirTarget, patient_id: str) -> Reply:
    """Read the Patient we are about to write to (invariant 5)."""
    return _exchange(target, "GET", f"Patient/{patient_id}")


def resource_search(target: FhirTarget, resource_type: str, params: dict) -> Reply:
    return _exchange(target, "GET", resource_type, params=params)


def resource_create(target: FhirTarget, resource: dict, *, if_none_exist: str | None) -> Reply:
    """POST a resource; with if_none_exist the server deduplicates on it."""
    headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
    if if_none_exist:
        headers["If-None-Exist"] = if_none_exist
    return _exchange(target, "POST", resource["resourceType"], json=resource, headers=headers)
