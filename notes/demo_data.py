"""The synthetic demo practice for `make run`. Every client here is made up and
marked synthetic; the drafts read like real AI scribe output so the review
screens can be judged on realistic text."""

from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from notes import services
from notes.models import AISource, Membership, NoteTemplateVersion, Practice

DEMO_SLUG = "riverbend-demo"
DEMO_PASSWORD = "demo-riverbend-2026"

PEOPLE = [
    ("dr.rivera", "Sam", "Rivera", Membership.Role.CLINICIAN, "PsyD"),
    ("dr.chen", "Mei", "Chen", Membership.Role.CLINICIAN, "LCSW"),
    ("admin.morgan", "Jo", "Morgan", Membership.Role.PRACTICE_ADMIN, ""),
    ("qa.patel", "Ravi", "Patel", Membership.Role.QA_REVIEWER, "LMFT"),
    ("auditor.kim", "Dana", "Kim", Membership.Role.AUDITOR, ""),
]

CLIENTS = [
    # given, family, dob, ehr id, consent
    ("Avery", "Testperson", date(1988, 3, 14), "SYN-1001", True),
    ("Blake", "Sampleton", date(1995, 7, 2), "SYN-1002", True),
    ("Casey", "Fictional", date(1979, 11, 23), "SYN-1003", True),
    ("Devon", "Madeup", date(2001, 1, 30), "SYN-1004", True),
    ("Emery", "Placeholder", date(1992, 5, 18), "SYN-1005", True),
    ("Finley", "Noconsent", date(1985, 9, 9), "SYN-1006", False),
]


def _session(day_offset: int, hour: int) -> datetime:
    day = timezone.localdate() - timedelta(days=day_offset)
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


DRAFTS = [
    {
        "client": "SYN-1001",
        "template": "soap",
        "start": (0, 9),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": 'Client reports mood "a bit better than last week", sleeping about six hours. '
            "Still avoiding the gym and calls with friends. Rates low mood 5/10 (was 7/10).",
            "clinician_observations": "Casually dressed, good eye contact. Affect mildly constricted but brighter "
            "when discussing her niece. Speech normal rate and volume. Thought process linear.",
            "clinical_impressions": "Recurrent major depression, moderate, improving with behavioral activation. "
            "Completed 4 of 5 planned activities.",
            "risk_assessment": {
                "level": "low",
                "text": "Denies SI/HI, intent or plan. Protective factors: family, job, engaged in treatment.",
            },
            "next_steps": "Continue weekly CBT. Homework: schedule two social contacts and one gym visit. "
            "Review activity log next session.",
            "diagnosis_codes": ["F33.1"],
            "interventions": ["CBT", "behavioural activation"],
        },
    },
    {
        "client": "SYN-1002",
        "template": "soap",
        "start": (0, 10),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": 'Client states "I can\'t see the point anymore" and reports having thought '
            "about ending his life after losing his job last week. Has been drinking more.",
            "clinician_observations": "Tearful, psychomotor slowing, poor eye contact. Speech soft. Cooperative.",
            "clinical_impressions": "Acute suicidal ideation in the context of job loss and increased alcohol use.",
            "risk_assessment": {
                "level": "high",
                "text": "Passive-to-active SI with a vague plan, no intent to act "
                "tonight. Access to means discussed; firearm stored at brother's house.",
            },
            "next_steps": "Completed Stanley-Brown safety plan; crisis line numbers given. Follow-up call tomorrow; "
            "session in 3 days. Consider psychiatric evaluation referral.",
            "diagnosis_codes": ["F32.2", "F10.10"],
            "interventions": ["safety plan", "MI"],
        },
    },
    {
        "client": "SYN-1003",
        "template": "dap",
        "start": (0, 11),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": "Reports panic attacks decreased from daily to twice this week. Used paced "
            "breathing at work.",
            "clinician_observations": "Calm, well groomed, engaged. Mild fidgeting when discussing commute.",
            "clinical_impressions": "Panic symptoms improving; interoceptive exposure tolerated well.",
            "risk_assessment": {"level": "none", "text": "No safety concerns."},
            "next_steps": "Continue exposure hierarchy step 4 (bus ride, two stops).",
            "diagnosis_codes": ["F41"],
            "interventions": ["exposure", "Cognitive restructuring worksheet"],
            "mood_rating": "6/10",
        },
    },
]

GROUP_DRAFT = {
    "template": "soap",
    "start": (0, 14),
    "participants": ["SYN-1004", "SYN-1005", "SYN-1006"],
    "payload": {
        "client_reported_symptoms": "Group discussed coping with holiday stress. Devon shared worry about family "
        "conflict; Emery described using grounding skills on the train.",
        "clinician_observations": "Members engaged; supportive feedback between members.",
        "clinical_impressions": "Group cohesion building; members applying skills between sessions.",
        "risk_assessment": {"level": "low", "text": "No member reported SI/HI."},
        "next_steps": "Next session: boundary setting. Homework: one grounding exercise daily.",
        "diagnosis_codes": ["F43.23"],
        "interventions": ["group therapy", "Mindfulness"],
    },
}


def _otp_devices(user) -> None:
    TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    static = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    for _ in range(5):
        StaticToken.objects.create(device=static, token=StaticToken.random_token())


@transaction.atomic
def demo_practice_seed() -> Practice:
    """Create the demo practice once; a second call returns it unchanged."""
    existing = Practice.objects.filter(slug=DEMO_SLUG).first()
    if existing:
        return existing
    practice = services.practice_create(name="Riverbend Counseling (demo)", slug=DEMO_SLUG)
    users = {}
    for username, first, last, role, credentials in PEOPLE:
        membership = services.member_create(
            practice=practice,
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            first_name=first,
            last_name=last,
            credentials=credentials,
        )
        _otp_devices(membership.user)
        users[username] = membership.user
    clinician = users["dr.rivera"]
    clients = {}
    for given, family, dob, ehr_id, consent in CLIENTS:
        client = services.client_create(
            practice=practice,
            clinician=clinician,
            given_name=given,
            family_name=family,
            date_of_birth=dob,
            ehr_patient_id=ehr_id,
            synthetic=True,
            actor=users["admin.morgan"],
        )
        if consent:
            services.consent_record(
                client=client, consented_on=date(2026, 1, 5), disclosure_version="2026-01", actor=users["admin.morgan"]
            )
        clients[ehr_id] = client
    scribe = AISource.objects.create(
        practice=practice, name="Demo Scribe", vendor="Example AI", model_name="scribe-llm", model_version="2.3"
    )
    for spec in DRAFTS:
        _ingest(scribe, clinician, clients[spec["client"]], spec, session_type=spec["type"])
    names = {c.ehr_patient_id: c.given_name for c in clients.values()}
    for ehr_id in GROUP_DRAFT["participants"]:
        others = [names[e] for e in GROUP_DRAFT["participants"] if e != ehr_id]
        if clients[ehr_id].active_consent is None:
            continue  # only consenting participants get a note (the draft API does the same)
        _ingest(scribe, clinician, clients[ehr_id], GROUP_DRAFT, session_type="group", others=others)
    return practice


def _ingest(scribe, clinician, client, spec, *, session_type, others=()):
    version = NoteTemplateVersion.objects.get(
        template__practice=scribe.practice, template__key=spec["template"], is_active=True
    )
    services.draft_ingest(
        ai_source=scribe,
        client=client,
        clinician=clinician,
        template_version=version,
        payload=spec["payload"],
        session_start=_session(*spec["start"]),
        session_duration_minutes=90 if session_type == "group" else 53,
        session_type=session_type,
        model_name=scribe.model_name,
        model_version=scribe.model_version,
        other_participant_names=list(others),
    )
