"""CSV and JSON exports of audit events, streamed: rows come from a
server-side cursor as tuples and go out as they are read, so an export of a
year of a large practice needs neither the memory nor the time of building
it first. Each row carries prev_hash and hash, so an export can be checked
against the chain on its own."""

import csv
import json
from collections.abc import Iterable, Iterator

from django.db.models import OuterRef, Subquery, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, NullIf

from audit.models import AuditSession
from audit.services import AUDIT_SESSION_DETAIL

EXPORT_COLUMNS = (
    "seq",
    "created_at",
    "actor_type",
    "actor_user_id",
    "actor_ai_source_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "note_id",
    "client_id",
    "before",
    "after",
    "detail",
    "request_id",
    "ip_address",
    "user_agent",
    # Not hashed: the user agent of the event's session (stored once per
    # session, audit.services._audit_session), so each row says it.
    "session_user_agent",
    "prev_hash",
    "hash",
)
_JSON_AT = {EXPORT_COLUMNS.index(c) for c in ("before", "after", "detail")}
_CHUNK = 2000


def _rows(events) -> Iterator[tuple]:
    session_agent = AuditSession.objects.filter(key=KeyTextTransform(AUDIT_SESSION_DETAIL, OuterRef("detail")))
    events = events.annotate(
        session_user_agent=Coalesce(
            NullIf("user_agent", Value("")), Subquery(session_agent.values("user_agent")[:1]), Value("")
        )
    )
    return events.values_list(*EXPORT_COLUMNS).iterator(chunk_size=_CHUNK)


class _Line:
    """csv.writer writes into this and gets the line back."""

    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    # A spreadsheet runs a cell that starts with one of these as a formula, and
    # user agents and labels come from outside: keep them text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(row) -> list:
    out = []
    for i, value in enumerate(row):
        if value is None:
            out.append("")
        elif i in _JSON_AT:
            out.append(json.dumps(value, sort_keys=True, separators=(",", ":")))
        elif i == 1:
            out.append(value.isoformat())
        else:
            out.append(_cell(value))
    return out


def events_csv(events) -> Iterable[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in _rows(events):
        yield writer.writerow(_csv_row(row))


def events_json(events) -> Iterable[str]:
    """A JSON array; created_at keeps its microseconds (it is part of the hash)."""
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
    yield "[\n"
    first = True
    for row in _rows(events):
        item = dict(zip(EXPORT_COLUMNS, row, strict=True))
        item["created_at"] = item["created_at"].isoformat()
        text = encoder.encode(item)
        yield text if first else ",\n" + text
        first = False
    yield "\n]\n"
