"""REST JSON for EHRs with their own API: read the target patient (invariant
5), then POST the mapped document with an Idempotency-Key header (the note
version identifier). I/O only: each returns the facts
(integrations.outcomes.Reply)."""

import requests

from integrations.builders.rest import PatientRead
from integrations.outcomes import Reply
from integrations.transports.base import http_exchange, reply_of, unanswered


def document_post(*, url: str, document: dict, idempotency_key: str, headers: dict, timeout: float) -> Reply:
    try:
        response = http_exchange(
            "POST",
            url,
            json=document,
            headers={"Idempotency-Key": idempotency_key, "Accept": "application/json", **headers},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        return unanswered(exc)
    return reply_of(response)


def patient_read(read: PatientRead, *, headers: dict, timeout: float) -> Reply:
    """GET the patient we are about to write to (invariant 5)."""
    try:
        response = http_exchange("GET", read.url, headers={"Accept": "application/json", **headers}, timeout=timeout)
    except requests.RequestException as exc:
        return unanswered(exc)
    return reply_of(response)


__all__ = ["document_post", "patient_read"]
