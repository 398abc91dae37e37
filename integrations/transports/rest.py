"""REST JSON for EHRs with their own API: read the target patient (invariant
5), then POST the mapped document with an Idempotency-Key header (the note
version identifier)."""

import requests

from integrations.builders.rest import PatientRead, identifier_values, json_path_read
from integrations.transports.base import (
    Outcome,
    failed,
    http_session,
    operation_outcome_message,
    redirect_outcome,
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
    redirect = redirect_outcome(response)
    if redirect is not None:
        return redirect
    message, _ = operation_outcome_message(response)
    after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429:
        return retry(f"EHR throttled: {message}", after=after, http_status=status)
    if status >= 500:
        # The API takes an Idempotency-Key, so a resend after an error is safe.
        return retry(f"EHR unavailable: {message}", after=after, http_status=status, alert="unreachable")
    return failed(f"EHR rejected the note: {message}", http_status=status)


def patient_check(
    read: PatientRead, *, patient_id: str, birth_date: str, headers: dict, timeout: float
) -> Outcome | None:
    """Invariant 5: GET the patient we are about to write to and compare the
    identifier and date of birth at the mapping's paths. None when they
    match; otherwise the outcome (a mismatch fails for good, never writes)."""
    try:
        response = http_session().get(
            read.url, headers={"Accept": "application/json", **headers}, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as exc:
        # A read: nothing was written, so trying again is always safe.
        return retry(f"Could not read the patient from the EHR: {type(exc).__name__}", alert="unreachable")
    status = response.status_code
    if status == 404:
        return failed(
            f"The EHR has no patient {patient_id} ({read.url}); check the client's EHR id "
            "and the mapping's rest.patient.url. Nothing was written.",
            http_status=status,
            alert="patient_mismatch",
        )
    if status != 200:
        redirect = redirect_outcome(response)
        if redirect is not None:
            return redirect
        message, _ = operation_outcome_message(response)
        after = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            return retry(f"EHR throttled the patient read: {message}", after=after, http_status=status)
        if status >= 500:
            return retry(
                f"EHR unavailable for the patient read: {message}", after=after, http_status=status, alert="unreachable"
            )
        if status == 401:
            return failed(f"EHR refused our credentials: {message}", http_status=status, alert="configuration")
        return failed(f"EHR refused the patient read: {message}", http_status=status, alert="configuration")
    try:
        body = response.json()
    except ValueError:
        return failed("The EHR answered the patient read with something that is not JSON.", alert="configuration")
    try:
        identifiers = identifier_values(json_path_read(body, read.identifier_path))
    except KeyError:
        identifiers = set()
    if not identifiers:
        return failed(
            f"The EHR's patient answer has no identifier at {read.identifier_path} (has its schema changed?); "
            "nothing was written.",
            alert="patient_mismatch",
        )
    if patient_id not in identifiers:
        return failed(
            f"Patient {patient_id} at the EHR is another record; nothing was written.", alert="patient_mismatch"
        )
    try:
        found = json_path_read(body, read.birth_date_path)
    except KeyError:
        return failed(
            f"The EHR's patient answer has no date of birth at {read.birth_date_path} (has its schema changed?); "
            "nothing was written.",
            alert="patient_mismatch",
        )
    if found != birth_date:
        return failed(
            f"Date of birth at the EHR ({str(found)[:40]}) differs from the client's; nothing was written.",
            alert="patient_mismatch",
        )
    return None


__all__ = ["Outcome", "document_post", "patient_check"]
