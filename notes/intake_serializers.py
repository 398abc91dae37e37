"""The intake payload (MAPPING.md §1, schema version 1), validated strictly.

Types are checked, not coerced: "50" is not a duration and 7 is not a name.
Unknown extra fields pass validation untouched; the raw payload is what the
Draft keeps, and notes/mapping.py places or flags every extra field.
"""

import re
from datetime import UTC, datetime, timedelta

from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers, validators

from notes.intake_limits import payload_limits_check
from notes.mapping import RISK_LEVELS
from notes.models import Draft

MAX_TEXT = 200_000  # per text field; the 1 MiB body limit bounds the whole
MAX_LIST = 50
MAX_PARTICIPANTS = 30
EARLIEST_SESSION = datetime(2000, 1, 1, tzinfo=UTC)
# A scribe's clock may run ahead, and a session may be posted in a timezone
# ahead of ours; more than a day ahead is a wrong date, not a clock skew.
LATEST_SESSION_AHEAD = timedelta(days=1)

# Idempotency keys and scribe draft ids: printable, no spaces, no "/". The
# "/" is ours: a group session's per-participant drafts are keyed "<key>/<client>".
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:~+=@-]{1,150}$")
KEY_MESSAGE = "Use 1 to 150 characters from A-Z a-z 0-9 . _ : ~ + = @ -"

# CPT: five characters, four digits then a digit (Category I) or a letter (Category II/III, e.g. 0591T).
CPT_PATTERN = re.compile(r"^[0-9]{4}[0-9A-Z]$")
CPT_MESSAGE = "A CPT code is five characters: four digits, then a digit or a capital letter (e.g. 90834)."

# C0 controls except tab, newline and carriage return; DEL; C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character_errors(value, path: str = "") -> dict[str, list[str]]:
    """Field path -> error for every string (keys included) holding a control
    character. PostgreSQL cannot even store NUL in JSON, and the others have no
    place in a clinical note."""
    errors: dict[str, list[str]] = {}

    def walk(v, p):
        if isinstance(v, str):
            m = _CONTROL.search(v)
            if m:
                errors.setdefault(p or "body", []).append(
                    f"Control character U+{ord(m.group(0)):04X} is not allowed (only tab, newline and carriage return)."
                )
        elif isinstance(v, dict):
            for k, item in v.items():
                sub = f"{p}.{k}" if p else str(k)
                if _CONTROL.search(str(k)):
                    errors.setdefault(p or "body", []).append("A field name holds a control character.")
                    continue
                walk(item, sub)
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{p}.{i}" if p else str(i))

    walk(value, path)
    return errors


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail -> {"session.start": ["..."]}, the shape the
    intake API answers with."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for k, v in detail.items():
            key = prefix if k == "non_field_errors" and prefix else (f"{prefix}.{k}" if prefix else str(k))
            for field, messages in flatten_errors(v, key).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(d, (dict, list)) for d in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(d) for d in detail)
        else:
            for i, d in enumerate(detail):
                if d:
                    for field, messages in flatten_errors(d, f"{prefix}.{i}" if prefix else str(i)).items():
                        out.setdefault(field, []).extend(messages)
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField would take 7 as "7").

    Without DRF's ProhibitSurrogateCharactersValidator: intake_validate has
    already refused a lone surrogate anywhere in the body (one regex search
    per string, notes.intake_limits), and DRF's check is a Python loop over
    every character, a tenth of a second for a body of text."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, validators.ProhibitSurrogateCharactersValidator)
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not "50", not 50.5, not true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class SessionStartField(serializers.DateTimeField):
    """ISO 8601 with a timezone offset, between 2000 and one day from now."""

    default_error_messages = {
        "invalid": "Use an ISO 8601 date and time with a timezone offset, e.g. 2026-11-24T15:00:00-05:00.",
        "naive": "Give a timezone offset (e.g. -05:00 or Z): a session time without one is ambiguous.",
        "too_early": "The session cannot start before 2000-01-01.",
        "too_late": "The session cannot start more than a day in the future.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail("naive")
        if parsed < EARLIEST_SESSION:
            self.fail("too_early")
        if parsed > timezone.now() + LATEST_SESSION_AHEAD:
            self.fail("too_late")
        return parsed


def _text(**kwargs) -> StrictCharField:
    return StrictCharField(required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_TEXT, **kwargs)


class ClientRefSerializer(serializers.Serializer):
    """Exactly one of the practice's client id or the EHR patient identifier."""

    id = StrictIntegerField(required=False, min_value=1, max_value=2**62)
    ehr_patient_id = StrictCharField(required=False, max_length=64, min_length=1)

    def validate(self, attrs):
        if ("id" in attrs) == ("ehr_patient_id" in attrs):
            raise serializers.ValidationError("Give exactly one of `id` or `ehr_patient_id`.")
        return attrs


class ClinicianRefSerializer(serializers.Serializer):
    """Exactly one of the clinician's user id or their EHR practitioner id."""

    id = StrictIntegerField(required=False, min_value=1, max_value=2**62)
    ehr_practitioner_id = StrictCharField(required=False, max_length=64, min_length=1)

    def validate(self, attrs):
        if ("id" in attrs) == ("ehr_practitioner_id" in attrs):
            raise serializers.ValidationError("Give exactly one of `id` or `ehr_practitioner_id`.")
        return attrs


class RiskAssessmentSerializer(serializers.Serializer):
    level = StrictChoiceField(choices=RISK_LEVELS)
    text = _text()


class ModelInfoSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100, min_length=1)
    version = StrictCharField(max_length=50, required=False, allow_blank=True)


class ContentFieldsMixin(serializers.Serializer):
    """The AI output fields (MAPPING.md §1), all optional: a missing required
    section is flagged on the note, not refused here."""

    client_reported_symptoms = _text(help_text="What the client reported; direct quotes kept.")
    clinician_observations = _text(help_text="Behaviour, affect, appearance.")
    clinical_impressions = _text(help_text="Diagnostic impressions, progress toward goals.")
    risk_assessment = RiskAssessmentSerializer(required=False)
    next_steps = _text(help_text="Follow-up, homework, referrals, next session focus.")
    diagnosis_codes = serializers.ListField(
        child=StrictCharField(max_length=32, min_length=1),
        required=False,
        max_length=MAX_LIST,
        help_text="ICD-10-CM codes. An invalid or non-billable code is flagged on the note, not refused.",
    )
    interventions = serializers.ListField(
        child=StrictCharField(max_length=200, min_length=1),
        required=False,
        max_length=MAX_LIST,
        help_text="Terms of the practice's vocabulary or their synonyms; others are flagged.",
    )


class ParticipantSerializer(ContentFieldsMixin):
    """One member of a group session. Their own content fields override the
    session-wide ones for their note."""

    client = ClientRefSerializer(required=False)
    name = StrictCharField(
        required=False, max_length=200, help_text="As the scribe heard it; used to find disclosures."
    )


class SessionSerializer(serializers.Serializer):
    start = SessionStartField()
    duration_minutes = StrictIntegerField(min_value=1, max_value=600)
    type = StrictChoiceField(choices=Draft.SessionType.choices, required=False, default=Draft.SessionType.INDIVIDUAL)
    participants = ParticipantSerializer(many=True, required=False, max_length=MAX_PARTICIPANTS)


class DraftInputSerializer(ContentFieldsMixin):
    schema_version = StrictIntegerField(required=False, min_value=1, max_value=1)
    draft_id = StrictCharField(
        required=False, help_text="The scribe's own draft id; used as the idempotency key when no header is sent."
    )
    template = StrictCharField(
        required=False, max_length=50, help_text="Key of the practice's template (default `soap`)."
    )
    client = ClientRefSerializer(required=False, help_text="Required unless session.type is group.")
    clinician = ClinicianRefSerializer()
    session = SessionSerializer()
    model = ModelInfoSerializer()
    transcript_ref = StrictCharField(required=False, max_length=500)
    cpt_code = StrictCharField(
        required=False,
        trim_whitespace=False,
        validators=[RegexValidator(CPT_PATTERN, CPT_MESSAGE)],
        help_text="The CPT code the scribe proposes for the session (e.g. 90834). Checked against the duration "
        "and session type, with the note's medical-necessity elements; a mismatch is a flag, not a refusal.",
    )
    cpt_add_on_codes = serializers.ListField(
        child=StrictCharField(trim_whitespace=False, validators=[RegexValidator(CPT_PATTERN, CPT_MESSAGE)]),
        required=False,
        max_length=10,
        help_text='Add-on codes, one entry per unit (e.g. ["90785"], or 90840 twice for two crisis units).',
    )

    # The pattern (kept in the schema) lets Python's "$" match before a final
    # newline; fullmatch does not, so "90834\n" never reaches the 5-character column.
    def validate_cpt_code(self, value: str) -> str:
        if not CPT_PATTERN.fullmatch(value):
            raise serializers.ValidationError(CPT_MESSAGE)
        return value

    def validate_cpt_add_on_codes(self, value: list[str]) -> list[str]:
        if any(not CPT_PATTERN.fullmatch(code) for code in value):
            raise serializers.ValidationError(CPT_MESSAGE)
        if value and "cpt_code" not in self.initial_data:
            raise serializers.ValidationError("Add-on codes need a primary `cpt_code`.")
        return value

    def validate_draft_id(self, value: str) -> str:
        if not KEY_PATTERN.match(value):
            raise serializers.ValidationError(KEY_MESSAGE)
        return value

    def validate(self, attrs):
        session = attrs["session"]
        participants = session.get("participants") or []
        if session["type"] == Draft.SessionType.GROUP:
            errors = {}
            if "client" in attrs:
                errors["client"] = ["A group session names its clients in session.participants, not here."]
            if not participants:
                errors["session"] = {"participants": ["A group session needs its participants."]}
            missing = [str(i) for i, p in enumerate(participants) if "client" not in p]
            if missing:
                errors["session"] = {
                    "participants": {i: {"client": ["Each group participant needs a client."]} for i in missing}
                }
            if errors:
                raise serializers.ValidationError(errors)
        elif "client" not in attrs:
            raise serializers.ValidationError({"client": ["This field is required."]})
        return attrs


def intake_validate(data) -> dict:
    """Validate a parsed request body; raise ValidationError with every field
    error (DRF shape, flattened to dotted paths by the API)."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({"body": ["Send one JSON object."]})
    # First, and alone: a lone surrogate must not reach the serializer, whose
    # errors may quote the value back (and then fail to encode).
    payload_limits_check(data)
    serializer = DraftInputSerializer(data=data)
    valid = serializer.is_valid()
    errors = flatten_errors(serializer.errors) if not valid else {}
    for field, messages in control_character_errors(data).items():
        errors.setdefault(field, []).extend(messages)
    if errors:
        raise serializers.ValidationError(errors)
    return serializer.validated_data
