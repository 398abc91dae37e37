"""REST JSON for EHRs with their own API: POST the mapped document with an
Idempotency-Key header (the note version identifier)."""

import requests

from integrations.transports.base import (
    Outcome,
    failed,
    http_session,
    operation_outcome_message,
    retry,
    retry_after_seconds,
    sent,
    unknown,
)


def document_post(*, url: str, document: dict, idempotency_key: str, headers: dict, timeout: float) -> Outcome:
    try:
        response = http_session().post(
            url,
            json=document,
            headers={"Idempotency-Key": idempotency_key, "Accept": "application/json", **headers},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.ConnectionError as exc:
        if "NewConnectionError" in repr(exc) or "Connection refused" in repr(exc):
            return retry("EHR unreachable", alert="unreachable")
        return unknown(f"No answer after sending ({type(exc).__name__})")
    except requests.Timeout:
        return unknown("No answer after sending (timeout)")
    status = response.status_code
    if status in (200, 201, 202):
        try:
            body = response.json()
        except ValueError:
            body = {}
        ehr_id = str(body.get("id", "")) if isinstance(body, dict) else ""
        return sent(ehr_id or response.headers.get("Location", ""), http_status=status)
    message, _ = operation_outcome_message(response)
    after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        return retry(f"EHR throttled: {message}", after=after, http_status=status)
    if status >= 500:
        # The API takes an Idempotency-Key, so a resend after an error is safe.
        return retry(f"EHR unavailable: {message}", after=after, http_status=status, alert="unreachable")
    return failed(f"EHR rejected the note: {message}", http_status=status)


__all__ = ["Outcome", "document_post"]
