"""The draft intake API for AI scribes (machine clients, API key auth).

POST /api/v1/drafts       store a draft, answer with its note(s) and flags
GET  /api/v1/drafts/{id}  the draft's state as the scribe may know it

Thin: validate (notes.intake_serializers), call the service (notes.intake),
answer. Every error is a 4xx of one shape: {"detail": "...", "errors":
{"field.path": ["..."]}}; see docs/intake.md for the list.
"""

import json

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from notes import intake, intake_limits
from notes.api_errors import exception_handler as project_exception_handler
from notes.api_keys import (
    AISourceKeyAuthentication,
    IsAISource,
    ai_source_key_touch,
    ai_source_key_use_record,
)
from notes.api_throttles import RefusalThrottledMixin
from notes.intake_limits import PayloadTooLarge
from notes.intake_serializers import KEY_MESSAGE, KEY_PATTERN, DraftInputSerializer, flatten_errors, intake_validate
from notes.models import AISourceKey


class LimitedJSONParser(JSONParser):
    """JSON with a size limit checked before parsing. DRF reads request.body,
    which Django caps at its own, larger DATA_UPLOAD_MAX_MEMORY_SIZE with an
    HTML 400: a view posting a body reads it first with
    intake_limits.request_body_read."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.INTAKE_MAX_BODY_BYTES
        message = intake_limits.body_too_large_message()
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(message)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(message)
        try:
            data = json.loads(body.decode(self._encoding(parser_context)), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc
        except RecursionError as exc:
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from exc
        if _depth_exceeds(data, MAX_DEPTH):
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        return data

    @staticmethod
    def _encoding(parser_context) -> str:
        return (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)


# No scribe output needs more; deeper nesting only costs stack (and jsonb).
MAX_DEPTH = 32


def _depth_exceeds(value, limit: int) -> bool:
    """Iterative, so a deep document cannot exhaust the stack here either."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
    raise ValueError(f"{name} is not valid JSON")


# Which part of the request an error without field errors is about.
_ERROR_FIELDS = [
    (exceptions.ParseError, "body"),
    (PayloadTooLarge, "body"),
    (exceptions.UnsupportedMediaType, "content_type"),
    (exceptions.NotAcceptable, "accept"),
    (exceptions.AuthenticationFailed, "authorization"),
    (exceptions.NotAuthenticated, "authorization"),
    (exceptions.PermissionDenied, "authorization"),
    (exceptions.NotFound, "id"),
    (Http404, "id"),
    (exceptions.MethodNotAllowed, "method"),
    (exceptions.Throttled, "authorization"),
]


def intake_exception_handler(exc, context):
    """The project's handler, then one answer shape with dotted field paths."""
    response = project_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "The draft is invalid; see errors.", "errors": flatten_errors(data)}
    elif isinstance(data, dict) and "errors" in data:
        pass
    else:
        detail = str(data.get("detail", "")) if isinstance(data, dict) else str(data)
        field = next((name for kind, name in _ERROR_FIELDS if isinstance(exc, kind)), "non_field_errors")
        response.data = {"detail": detail, "errors": {field: [detail]}}
    return response


class IntakeApiView(RefusalThrottledMixin, APIView):
    authentication_classes = [AISourceKeyAuthentication]
    permission_classes = [IsAISource]
    parser_classes = [LimitedJSONParser]

    def get_exception_handler(self):
        return intake_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        # Every accepted use of a key is logged; a stored draft logs it in its
        # own transaction (DraftCreateApi), anything else here.
        if isinstance(request.auth, AISourceKey) and not getattr(request, "key_use_recorded", False):
            ai_source_key_use_record(
                key=request.auth, method=request.method, path=request.path, status=response.status_code
            )
        return super().finalize_response(request, response, *args, **kwargs)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class FlagSummarySerializer(serializers.Serializer):
    open = serializers.IntegerField(help_text="Open flags the clinician must resolve before signing")
    by_kind = serializers.DictField(child=serializers.IntegerField())


STATE_CHOICES = ["draft", "in_review", "awaiting_cosign", "signed", "delivered", "discarded", "blocked"]


class DraftResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The draft id (GET /api/v1/drafts/{id})")
    note_id = serializers.IntegerField()
    client = serializers.IntegerField(help_text="The practice's client id")
    state = serializers.ChoiceField(choices=STATE_CHOICES)
    blocked = serializers.BooleanField()
    blocked_reason = serializers.CharField(allow_blank=True)
    high_risk = serializers.BooleanField()
    flags = FlagSummarySerializer()


class SkippedParticipantSerializer(serializers.Serializer):
    client = serializers.IntegerField()
    reason = serializers.CharField()


def _draft_result(note, flags: dict) -> dict:
    state = intake.note_intake_state(note)
    return {
        "id": note.draft_id,
        "note_id": note.pk,
        "client": note.client_id,
        "state": state,
        "blocked": bool(note.blocked_reason),
        "blocked_reason": note.blocked_reason,
        "high_risk": note.high_risk,
        "flags": flags,
    }


EXAMPLE_PAYLOAD = {
    "schema_version": 1,
    "draft_id": "scribe-7f3a9c",
    "template": "soap",
    "client": {"ehr_patient_id": "PAT00042"},
    "clinician": {"id": 3},
    "session": {"start": "2026-11-24T15:00:00-05:00", "duration_minutes": 50, "type": "individual"},
    "client_reported_symptoms": 'Client reports sleeping better, "about six hours most nights".',
    "clinician_observations": "Alert, oriented x3; affect congruent, mildly anxious.",
    "clinical_impressions": "Depressive symptoms improving with behavioral activation.",
    "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: family, work."},
    "next_steps": "Continue weekly sessions; activity log daily.",
    "diagnosis_codes": ["F33.1"],
    "interventions": ["CBT", "behavioural activation"],
    "model": {"name": "scribe-llm", "version": "2.3"},
    "transcript_ref": "s3://scribe-transcripts/2026/11/24/7f3a9c",
    "session_summary_for_patient": "Extra fields are kept verbatim and placed or flagged.",
}
GROUP_EXAMPLE = {
    "draft_id": "scribe-group-19",
    "clinician": {"id": 3},
    "session": {
        "start": "2026-11-24T18:00:00-05:00",
        "duration_minutes": 90,
        "type": "group",
        "participants": [
            {
                "client": {"ehr_patient_id": "PAT00042"},
                "name": "Jordan Rivera",
                "client_reported_symptoms": "Shared progress with sleep routine.",
            },
            {
                "client": {"id": 17},
                "name": "Sam Lee",
                "client_reported_symptoms": "Reported conflict at work; practiced a DBT skill.",
            },
        ],
    },
    "clinician_observations": "Members engaged; group cohesion good.",
    "interventions": ["Group process", "DBT"],
    "risk_assessment": {"level": "none", "text": "No risk disclosed in group."},
    "next_steps": "Next group: distress tolerance.",
    "model": {"name": "scribe-llm", "version": "2.3"},
}

_ERRORS = {
    400: OpenApiResponse(
        ErrorSerializer,
        description="Malformed JSON, wrong types, unknown client/clinician/template, or a broken limit: more than "
        f"{settings.INTAKE_MAX_EXTRA_FIELDS} extra fields (INTAKE_MAX_EXTRA_FIELDS), a field name over "
        f"{intake_limits.MAX_KEY_LENGTH} characters, nesting deeper than {MAX_DEPTH}, invalid Unicode "
        "(a lone surrogate) or a control character",
    ),
    401: OpenApiResponse(ErrorSerializer, description="Missing, invalid, revoked or expired API key"),
    403: OpenApiResponse(ErrorSerializer, description="Not an AI source"),
    404: OpenApiResponse(ErrorSerializer, description="No such draft for this AI source"),
    406: OpenApiResponse(ErrorSerializer, description="Only application/json answers are offered"),
    409: OpenApiResponse(ErrorSerializer, description="No group participant has active consent"),
    413: OpenApiResponse(
        ErrorSerializer,
        description="Body larger than INTAKE_MAX_BODY_BYTES (1 MiB by default), with or without Content-Length",
    ),
    415: OpenApiResponse(ErrorSerializer, description="Send application/json"),
    422: OpenApiResponse(ErrorSerializer, description="Idempotency key already used for a different draft"),
    429: OpenApiResponse(ErrorSerializer, description="Too many refused calls from this address or for this key"),
}


class DraftCreatedSerializer(DraftResultSerializer):
    drafts = DraftResultSerializer(many=True, help_text="Every draft stored (one per consenting group member)")
    skipped_participants = SkippedParticipantSerializer(many=True)
    replayed = serializers.BooleanField(help_text="True when this answers a repeated idempotency key")


class DraftStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_blank=True, help_text="The scribe's draft_id")
    client = serializers.IntegerField(source="client_id")
    session_type = serializers.CharField()
    received_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=STATE_CHOICES)
    note_id = serializers.IntegerField(allow_null=True)
    note_version = serializers.IntegerField(allow_null=True)


class DraftCreateApi(IntakeApiView):
    # Module-level classes so the OpenAPI components get distinct names.
    OutputSerializer = DraftCreatedSerializer

    @extend_schema(
        operation_id="drafts_create",
        summary="Post an AI draft",
        request=DraftInputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="A repeated POST with the same key returns the first result (200). "
                "Without it, the payload's draft_id is the key. " + KEY_MESSAGE,
            )
        ],
        responses={201: OutputSerializer, 200: OutputSerializer, **{k: v for k, v in _ERRORS.items() if k != 404}},
        examples=[
            OpenApiExample("Individual SOAP draft", value=EXAMPLE_PAYLOAD, request_only=True),
            OpenApiExample("Group session", value=GROUP_EXAMPLE, request_only=True),
        ],
    )
    def post(self, request):
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if idempotency_key and not KEY_PATTERN.match(idempotency_key):
            raise exceptions.ValidationError({"idempotency_key": [KEY_MESSAGE]})
        intake_limits.request_body_read(request._request)  # 413 beyond the limit, chunked or not
        data = intake_validate(request.data)
        key = request.auth
        use = {"api_key": key.prefix, "method": request.method, "path": request.path}

        def stored():
            # The note.draft events, written with the drafts, carry the key:
            # they are this use's record (one audit append, not two).
            ai_source_key_touch(key=key)
            request.key_use_recorded = True

        result = intake.draft_intake(
            ai_source=key.ai_source,
            data=data,
            payload=request.data,
            idempotency_key=idempotency_key,
            audit_detail=use,
            on_stored=stored,
        )
        summaries = intake.note_flag_summaries(result.notes)
        drafts = [_draft_result(n, summaries[n.pk]) for n in result.notes]
        body = {**drafts[0], "drafts": drafts, "skipped_participants": result.skipped, "replayed": result.replayed}
        return Response(
            # body is built field by field above; OutputSerializer documents it in the schema.
            body,
            status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED,
        )


class DraftDetailApi(IntakeApiView):
    OutputSerializer = DraftStatusSerializer

    @extend_schema(
        operation_id="drafts_retrieve",
        summary="A draft's state",
        parameters=[OpenApiParameter("draft_id", int, OpenApiParameter.PATH, description="The draft id")],
        responses={200: OutputSerializer, **{k: _ERRORS[k] for k in (401, 403, 404, 406, 429)}},
    )
    def get(self, request, draft_id: str):
        if not draft_id.isascii() or not draft_id.isdigit() or not 0 < int(draft_id) < 2**63:
            raise exceptions.NotFound("No such draft.")
        draft = intake.draft_get_for_source(ai_source=request.auth.ai_source, draft_id=int(draft_id))
        state, note = intake.draft_state(draft)
        draft.state = state
        draft.note_id = note.pk if note else None
        draft.note_version = note.version if note else None
        return Response(self.OutputSerializer(draft).data)
