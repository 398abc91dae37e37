"""What a person is told about a note's delivery to the EHR (pure).

One function, `delivery_status_view`, turns a Delivery row into the words
every page shows (the note and review pages, the signed list, the queue, the
admin dashboard) and the JSON the pages poll. No queries and no clock: the
caller passes the practice's timezone and `now`, and the selectors
(integrations.selectors.delivery_status_rows) load what it reads.

The `label` is built only from the state, times and the EHR's id, so it may
go in the PHI-free status JSON. The `detail` may carry the EHR's own words
(its error text can quote the patient), so it is shown on pages only.
"""

from datetime import datetime, tzinfo
from urllib.parse import quote, urljoin, urlsplit

# Polling stops at these: nothing changes them but a person (reprocess).
FINAL_STATES = frozenset({"delivered", "failed"})
# The REST mapping may say where a note can be opened at the EHR, e.g.
# {"rest": {"record_url": "notes/{ehr_id}"}} (relative to the base URL).
EHR_ID_PLACEHOLDER = "{ehr_id}"


def _zone_name(local: datetime, tz: tzinfo) -> str:
    # "EST" names the zone; zones without an abbreviation give "+03", which
    # names nothing, so their IANA key is shown instead.
    name = local.tzname() or ""
    if not name or name[0] in "+-":
        return getattr(tz, "key", "") or name or "UTC"
    return name


def format_local(moment: datetime, *, tz: tzinfo, now: datetime | None = None) -> str:
    """ "14:02 EST" today, "24 Nov 14:02 EST" this year, else with the year."""
    local = moment.astimezone(tz)
    zone = _zone_name(local, tz)
    today = now.astimezone(tz).date() if now is not None else None
    if today is not None and local.date() == today:
        return f"{local:%H:%M} {zone}"
    if today is not None and local.year == today.year:
        return f"{local.day} {local:%b %H:%M} {zone}"
    return f"{local.day} {local:%b %Y %H:%M} {zone}"


def delivery_ehr_url(*, kind: str, base_url: str, ehr_id: str, mapping_document: dict | None) -> str:
    """A link to the delivered note at the EHR, or "" where the connection
    has none: FHIR (and the FHIR sandbox) name the DocumentReference; REST
    only when the pinned mapping declares `rest.record_url` with {ehr_id}
    on the connection's own host; HL7 v2 has no address for a document."""
    if not ehr_id or not base_url:
        return ""
    quoted = quote(ehr_id, safe="")
    if kind in ("fhir", "sandbox"):
        url = f"{base_url.rstrip('/')}/DocumentReference/{quoted}"
    elif kind == "rest":
        template = ((mapping_document or {}).get("rest") or {}).get("record_url")
        if not isinstance(template, str) or EHR_ID_PLACEHOLDER not in template:
            return ""
        base = base_url if base_url.endswith("/") else base_url + "/"
        url = urljoin(base, template.replace(EHR_ID_PLACEHOLDER, quoted))
        if (urlsplit(url).scheme, urlsplit(url).netloc) != (urlsplit(base).scheme, urlsplit(base).netloc):
            return ""  # a template may not send the reader to another host
    else:
        return ""
    return url if urlsplit(url).scheme in ("http", "https") else ""


# Said on the note once it is delivered: whether the EHR holds the record of
# who wrote what (the AI scribe, the signing clinician) beside the note.
_PROVENANCE_DETAIL = {
    "stored": "Provenance (AI scribe and signer) stored at the EHR.",
    "unsupported": "Provenance: not supported by this EHR; the record of the AI scribe and the signer stays "
    "in psyfi-review's audit trail.",
}


def delivery_status_view(delivery, *, tz: tzinfo, now: datetime | None = None, psychotherapy: bool = False) -> dict:
    """The status of one delivery as {state, label, tone, detail, ehr_id,
    ehr_url, at, final}. `delivery` may be None (a signed note that makes no
    delivery). `tone` is one of ok, pending, warn, error, neutral. `at` is the
    ISO time the label names ("" if none). Reads `first_attempt_at` when the
    selector annotated it (when retrying began), else the row's created_at."""
    if delivery is None:
        return _view(
            state="none",
            label="Not sent to the EHR",
            tone="neutral",
            detail="Psychotherapy (process) notes stay here." if psychotherapy else "",
            final=True,
        )

    def when(moment: datetime | None) -> str:
        return format_local(moment, tz=tz, now=now) if moment else ""

    state = str(delivery.state)
    connection = getattr(delivery, "connection", None)
    since = getattr(delivery, "first_attempt_at", None) or delivery.created_at
    next_at = delivery.next_attempt_at
    error = delivery.last_error or ""
    if state == "delivered":
        label = f"Delivered to EHR {when(delivery.delivered_at)}".rstrip()
        if delivery.ehr_id:
            label += f", id {delivery.ehr_id}"
        return _view(
            state=state,
            label=label,
            tone="ok",
            detail=_PROVENANCE_DETAIL.get(getattr(delivery, "provenance_state", ""), ""),
            ehr_id=delivery.ehr_id,
            ehr_url=_url(delivery, connection),
            at=delivery.delivered_at,
            final=True,
        )
    if state == "failed":
        return _view(
            state=state,
            label="Failed: not in the EHR",
            tone="error",
            detail=(f"The EHR said: {error} " if error else "")
            + "A practice admin can reprocess it from the delivery dashboard.",
            at=delivery.updated_at,
            final=True,
        )
    if state == "retrying" or (state == "sending" and delivery.attempts > 1):
        detail = f"Next try {when(next_at)}." if next_at and state == "retrying" else ""
        if error:
            detail = f"{detail} Last answer: {error}".strip()
        return _view(
            state=state, label=f"Waiting for EHR: retrying since {when(since)}", tone="warn", detail=detail, at=since
        )
    if state == "unknown":
        return _view(
            state=state,
            label=f"Waiting for EHR: answer lost, checking the EHR before any resend (since {when(since)})",
            tone="warn",
            detail=error,
            at=since,
        )
    if state == "sending":
        return _view(state=state, label="Sending to the EHR", tone="pending", detail="", at=delivery.updated_at)
    if state == "waiting":
        return _view(
            state=state,
            label="Waiting for the earlier version to reach the EHR",
            tone="pending",
            detail=error,
            at=delivery.created_at,
        )
    if state == "pending":
        if connection is None:
            return _view(
                state=state,
                label="Waiting for an EHR connection",
                tone="warn",
                detail="The practice has no active EHR connection; a practice admin can set one up.",
                at=delivery.created_at,
            )
        return _view(
            state=state,
            label=f"Queued for the EHR since {when(delivery.created_at)}",
            tone="pending",
            detail="",
            at=delivery.created_at,
        )
    if state == "awaiting_filing":
        # Nothing changes until a person files it: no reason to keep asking.
        return _view(
            state=state,
            label=f"Awaiting filing in the EHR by a person, since {when(delivery.created_at)}",
            tone="warn",
            detail="Open “File in EHR” to copy the note or download its PDF, then confirm it was filed.",
            at=delivery.created_at,
            final=True,
        )
    # A state added later: its own label, and the page keeps asking until it turns final.
    display = getattr(delivery, "get_state_display", None)
    return _view(
        state=state,
        label=str(display() if display else state),
        tone="pending",
        detail=error,
        at=delivery.updated_at,
    )


def _url(delivery, connection) -> str:
    if connection is None:
        return ""
    mapping = getattr(delivery, "mapping", None)
    return delivery_ehr_url(
        kind=connection.kind,
        base_url=connection.base_url,
        ehr_id=delivery.ehr_id,
        mapping_document=mapping.document if mapping is not None else None,
    )


def _view(
    *,
    state: str,
    label: str,
    tone: str,
    detail: str,
    ehr_id: str = "",
    ehr_url: str = "",
    at: datetime | None = None,
    final: bool = False,
) -> dict:
    return {
        "state": state,
        "label": label,
        "tone": tone,
        "detail": detail,
        "ehr_id": ehr_id,
        "ehr_url": ehr_url,
        "at": at.isoformat() if at else "",
        "final": final or state in FINAL_STATES,
    }


def delivery_status_public(view: dict) -> dict:
    """The polled JSON: state, times and the EHR id only (no `detail`, which
    may quote the EHR's words about the patient)."""
    return {k: view[k] for k in ("state", "label", "tone", "ehr_id", "ehr_url", "at", "final")}
