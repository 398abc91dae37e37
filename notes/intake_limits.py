"""Limits on what one intake request may ask of us (docs/intake.md, Limits).

The body size bounds the bytes; these bound the work. Every extra field a
scribe sends becomes a flag row (notes.mapping), so 50,000 of them in a body
well under the size limit meant 50,000 rows, seconds of CPU and a stalled
web process. A field name longer than Flag.field holds, or a lone UTF-16
surrogate (valid as a JSON escape, not as text: PostgreSQL refuses it), used
to surface as a database error and a 500. All are refused here with a 400
that names the limit, before anything is written.

request_body_read is the size limit's one gate: it reads the body itself,
at most the limit plus one byte, whether or not the client declared a
Content-Length (a chunked upload has none), so Django's own, larger
DATA_UPLOAD_MAX_MEMORY_SIZE and its HTML 400 never come into play.
"""

import io
import json
import re

from django.conf import settings
from django.http import HttpRequest
from rest_framework import serializers, status
from rest_framework.exceptions import APIException

from notes.mapping import CONTENT_FIELDS, ENVELOPE_FIELDS

# Flag.field holds the name of the extra field a flag is about.
MAX_KEY_LENGTH = 100
# A group participant's own keys that are neither content nor extra fields.
PARTICIPANT_FIELDS = ("client", "name")
# Any UTF-16 surrogate left in a decoded str is a lone one: json.loads joins
# a valid "\ud83d\ude00" pair into one code point.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def body_too_large_message() -> str:
    return f"The request body is larger than {settings.INTAKE_MAX_BODY_BYTES} bytes (INTAKE_MAX_BODY_BYTES)."


def request_body_read(request: HttpRequest) -> None:
    """Read the body of a POST, at most INTAKE_MAX_BODY_BYTES; raise
    PayloadTooLarge beyond. Afterwards request.body is what was read, and a
    chunked body (no Content-Length) is parsed like any other.

    A WSGI server that de-chunks a request says so with wsgi.input_terminated
    and passes no Content-Length; Django would then read nothing at all."""
    limit = settings.INTAKE_MAX_BODY_BYTES
    meta = request.META
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(body_too_large_message())
    if hasattr(request, "_body"):
        body = request.body  # already read (by middleware): only check the size
    elif declared == 0 and meta.get("wsgi.input_terminated"):
        body = meta["wsgi.input"].read(limit + 1)
    else:
        body = request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(body_too_large_message())
    # What Django's HttpRequest.body does once it has read: keep the bytes and
    # a fresh stream over them; DRF parses request.body from here.
    request._body = body
    request._stream = io.BytesIO(body)
    meta["CONTENT_LENGTH"] = str(len(body))


def _extra_fields(obj: dict, known: tuple[str, ...]) -> list[str]:
    return [k for k in obj if k not in CONTENT_FIELDS and k not in ENVELOPE_FIELDS and k not in known]


def _path_part(key: str) -> str:
    """A key as it may appear in an error path: no lone surrogate (the answer
    could not be encoded) and not 50,000 characters long."""
    shown = key.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(key) else key
    return shown if len(shown) <= 40 else shown[:40] + "…"


def payload_limit_errors(data: dict) -> dict[str, list[str]]:
    """Field path -> errors for a parsed intake body: lone surrogates in any
    key or string, field names over MAX_KEY_LENGTH, and more extra fields
    than INTAKE_MAX_EXTRA_FIELDS (top level and group participants counted
    together: each becomes flags on the notes). Iterative, so nesting costs
    no stack."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[object, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                errors.setdefault(path or "body", []).append(
                    "Invalid Unicode: a lone surrogate (\\ud800-\\udfff escape) is not text. Send valid UTF-8."
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{_path_part(key)}" if path else _path_part(key)
                if _SURROGATE.search(key):
                    errors.setdefault(sub, []).append(
                        "Invalid Unicode in a field name: a lone surrogate (\\ud800-\\udfff escape) is not text."
                    )
                if len(key) > MAX_KEY_LENGTH:
                    errors.setdefault(sub, []).append(
                        f"Field names are limited to {MAX_KEY_LENGTH} characters; this one has {len(key)}."
                    )
                stack.append((item, sub))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))

    limit = settings.INTAKE_MAX_EXTRA_FIELDS
    extra = len(_extra_fields(data, ()))
    session = data.get("session")
    participants = session.get("participants") if isinstance(session, dict) else None
    if isinstance(participants, list):
        extra += sum(len(_extra_fields(p, PARTICIPANT_FIELDS)) for p in participants if isinstance(p, dict))
    if extra > limit:
        errors.setdefault("body", []).append(
            f"At most {limit} extra fields (fields outside intake schema 1) per request "
            f"(INTAKE_MAX_EXTRA_FIELDS); this one has {extra}. Each becomes a flag the clinician must resolve."
        )
    return errors


def _json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def group_stored_bytes(data: dict) -> int:
    """What a group session's drafts hold together: each participant's draft
    repeats the session-wide fields (notes.intake._group_units), so a full
    body shared by 30 members is 30 full drafts. Counts every participant
    (who has consent is not known yet); 0 for other sessions."""
    session = data.get("session")
    participants = session.get("participants") if isinstance(session, dict) else None
    if not isinstance(participants, list) or not participants:
        return 0
    shared = _json_bytes({k: v for k, v in data.items() if k != "session"})
    shared += _json_bytes({k: v for k, v in session.items() if k != "participants"})
    own = sum(_json_bytes(p) for p in participants)
    return len(participants) * shared + own


def payload_limits_check(data: dict) -> None:
    """Raise ValidationError (400, field paths) when the body breaks a limit,
    PayloadTooLarge (413) when a group's drafts together would exceed
    INTAKE_MAX_STORED_BYTES."""
    errors = payload_limit_errors(data)
    if errors:
        raise serializers.ValidationError(errors)
    stored, limit = group_stored_bytes(data), settings.INTAKE_MAX_STORED_BYTES
    if stored > limit:
        raise PayloadTooLarge(
            f"A group session's drafts repeat the session-wide fields for each participant: these would hold "
            f"{stored} bytes, over {limit} (INTAKE_MAX_STORED_BYTES). Send less session-wide text, or put "
            "each member's own text in their participant entry."
        )
