"""Factories and the three personas: the clinician, a colleague in the same
practice, and a clinician from another practice (plus the other roles)."""

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from notes import services
from notes.models import AISource, Client, Membership, Note, NoteTemplateVersion, Practice

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def practice_factory(name: str | None = None) -> Practice:
    n = next(_seq)
    return services.practice_create(name=name or f"Practice {n}", slug=f"practice-{n}")


def practice_today(practice: Practice) -> date:
    """The practice's day, as its pages read and show dates (the middleware
    activates its time zone), not the server's UTC day: between midnight UTC
    and midnight in New York the two differ."""
    return datetime.now(ZoneInfo(practice.timezone)).date()


def member_factory(practice: Practice, role: str = Membership.Role.CLINICIAN, **kwargs) -> Membership:
    n = next(_seq)
    membership = services.member_create(
        practice=practice,
        username=kwargs.pop("username", f"{role}{n}"),
        password=PASSWORD,
        role=role,
        first_name=kwargs.pop("first_name", "Alex"),
        last_name=kwargs.pop("last_name", f"Member{n}"),
        **kwargs,
    )
    TOTPDevice.objects.create(user=membership.user, name="authenticator", confirmed=True)
    static = StaticDevice.objects.create(user=membership.user, name="backup codes", confirmed=True)
    StaticToken.objects.create(device=static, token=f"backup{n:02d}")
    return membership


def totp_now(user) -> str:
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def client_factory(practice: Practice, clinician, *, consent: bool = True, synthetic: bool = True, **kwargs) -> Client:
    n = next(_seq)
    client = services.client_create(
        practice=practice,
        clinician=clinician,
        given_name=kwargs.pop("given_name", "Jordan"),
        family_name=kwargs.pop("family_name", f"Client{n}"),
        date_of_birth=kwargs.pop("date_of_birth", date(1990, 4, 12)),
        ehr_patient_id=kwargs.pop("ehr_patient_id", f"PAT{n:05d}"),
        synthetic=synthetic,
        actor=clinician,
    )
    if consent:
        services.consent_record(
            client=client, consented_on=date(2026, 1, 5), disclosure_version="2026-01", actor=clinician
        )
    return client


def ai_source_factory(practice: Practice) -> AISource:
    return AISource.objects.create(
        practice=practice, name="Demo Scribe", vendor="Example AI", model_name="scribe-llm", model_version="2.3"
    )


def ai_output(**overrides) -> dict:
    output = {
        "client_reported_symptoms": 'Client reports sleeping better, "about six hours most nights".',
        "clinician_observations": "Alert, oriented x3; affect congruent, mildly anxious.",
        "clinical_impressions": "Depressive symptoms improving with behavioral activation.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: family, work."},
        "next_steps": "Continue weekly sessions; track activities daily.",
        "diagnosis_codes": ["F33.1"],
        "interventions": ["CBT", "behavioural activation"],
    }
    output.update(overrides)
    return output


def note_factory(
    *,
    practice: Practice,
    clinician,
    client: Client | None = None,
    template_key: str = "soap",
    payload: dict | None = None,
    ai_source: AISource | None = None,
    other_participant_names=(),
    session_start: datetime | None = None,
) -> Note:
    client = client or client_factory(practice, clinician)
    ai_source = ai_source or AISource.objects.filter(practice=practice).first() or ai_source_factory(practice)
    version = NoteTemplateVersion.objects.get(template__practice=practice, template__key=template_key, is_active=True)
    return services.draft_ingest(
        ai_source=ai_source,
        client=client,
        clinician=clinician,
        template_version=version,
        payload=payload if payload is not None else ai_output(),
        session_start=session_start or datetime(2026, 11, 24, 15, 0, tzinfo=UTC),
        session_duration_minutes=50,
        model_name="scribe-llm",
        model_version="2.3",
        other_participant_names=other_participant_names,
    )


def note_resolve_all_flags(note: Note, actor) -> None:
    for flag in note.flags.filter(resolved_at__isnull=True):
        services.flag_resolve(flag=flag, resolution="Reviewed", actor=actor)


def note_sign_now(note: Note, actor) -> Note:
    """Open, resolve flags and sign with a fresh step-up (fixtures for later steps)."""
    from django.utils import timezone

    services.note_open(note=note, actor=actor)
    note_resolve_all_flags(note, actor)
    return services.note_sign(note=note, actor=actor, step_up_at=timezone.now() - timedelta(seconds=1))


@dataclass
class World:
    practice: Practice
    clinician: object  # the clinician
    colleague: object  # another clinician, same practice
    admin: object
    qa: object
    auditor: object
    other_practice: Practice
    outsider: object  # a clinician of another practice


def world_factory() -> World:
    practice = practice_factory("Riverbend Counseling")
    other = practice_factory("Lakeside Therapy")
    return World(
        practice=practice,
        clinician=member_factory(practice).user,
        colleague=member_factory(practice).user,
        admin=member_factory(practice, Membership.Role.PRACTICE_ADMIN).user,
        qa=member_factory(practice, Membership.Role.QA_REVIEWER).user,
        auditor=member_factory(practice, Membership.Role.AUDITOR).user,
        other_practice=other,
        outsider=member_factory(other).user,
    )
