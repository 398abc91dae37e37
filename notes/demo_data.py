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

# Clean drafts (valid codes, listed interventions, consent recorded, no risk
# to acknowledge), on earlier days, so a clinician can try the batch flow
# (step up once, then sign and next) on the first visit.
CLEAN_DRAFTS = [
    {
        "client": "SYN-1004",
        "template": "soap",
        "start": (1, 9),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": "Client reports worrying most evenings about money and her mother's health; "
            "falls asleep within an hour on most nights now. Used the worry-time exercise four times.",
            "clinician_observations": "Neatly dressed, relaxed posture, good eye contact. Affect full range. "
            "Speech normal. Thought process goal-directed.",
            "clinical_impressions": "Generalized anxiety improving with worry scheduling and cognitive restructuring.",
            "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: partner, work, faith."},
            "next_steps": "Continue weekly CBT. Homework: worry time daily, one thought record per day.",
            "diagnosis_codes": ["F41.1"],
            "interventions": ["CBT", "Psychoeducation"],
        },
    },
    {
        "client": "SYN-1005",
        "template": "dap",
        "start": (1, 10),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": "Reports two nightmares this week (was five). Took the train to work three "
            "days using grounding; skipped the crowded platform once.",
            "clinician_observations": "Alert, cooperative, brief startle at a door closing, settled quickly.",
            "clinical_impressions": "Post-traumatic stress symptoms easing; trauma narrative work tolerated.",
            "risk_assessment": {"level": "none", "text": "Denies SI/HI, no self-harm."},
            "next_steps": "Continue trauma narrative, chapter three. Practise grounding before each commute.",
            "diagnosis_codes": ["F43.10"],
            "interventions": ["TF-CBT", "Mindfulness"],
        },
    },
    {
        "client": "SYN-1002",
        "template": "soap",
        "start": (2, 9),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": 'Client says the new shift pattern is "hard but doable". Low mood most '
            "mornings, better by afternoon. Went walking twice with his brother.",
            "clinician_observations": "Casually dressed, mildly fatigued, engaged. Affect euthymic to mildly "
            "dysthymic. Speech normal rate.",
            "clinical_impressions": "Persistent depressive disorder, stable; activity scheduling helping.",
            "risk_assessment": {"level": "low", "text": "Denies SI/HI, intent or plan. Supportive brother nearby."},
            "next_steps": "Continue fortnightly sessions. Homework: three scheduled walks, one call to a friend.",
            "diagnosis_codes": ["F34.1"],
            "interventions": ["Behavioral activation", "Supportive therapy"],
        },
    },
    {
        "client": "SYN-1003",
        "template": "dap",
        "start": (2, 10),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": "Gave a short talk at the team meeting with moderate anxiety (SUDS 60, "
            "expected 85). Still avoids the canteen at lunch.",
            "clinician_observations": "Calm, well groomed, good rapport. Some hand-wringing when describing the talk.",
            "clinical_impressions": "Social anxiety responding to graded exposure; predictions overestimate distress.",
            "risk_assessment": {"level": "none", "text": "No safety concerns; denies SI/HI."},
            "next_steps": "Next exposure step: lunch in the canteen twice. Record predicted and actual SUDS.",
            "diagnosis_codes": ["F40.10"],
            "interventions": ["Exposure therapy", "CBT"],
        },
    },
    {
        "client": "SYN-1001",
        "template": "soap",
        "start": (3, 9),
        "type": "individual",
        "payload": {
            "client_reported_symptoms": "Client reports getting up by 8 on five days and cooking twice. Mood 6/10; "
            "still finds weekends flat.",
            "clinician_observations": "Appropriately dressed, good eye contact. Affect mildly restricted, reactive. "
            "Speech normal. Thought process linear.",
            "clinical_impressions": "Recurrent major depression, moderate, responding to behavioral activation.",
            "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: niece, job, treatment."},
            "next_steps": "Continue weekly CBT. Plan two weekend activities with friends and log mood.",
            "diagnosis_codes": ["F33.1"],
            "interventions": ["Behavioral activation", "CBT"],
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
    for spec in DRAFTS + CLEAN_DRAFTS:
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


# What `manage.py post_demo_drafts` plays as the scribe: new sessions, never
# the seeded ones again. Each run draws from these at random, so two runs post
# different text; none of it repeats a seeded draft.
SCRIBE_SESSIONS = [
    {
        "client_reported_symptoms": "Client describes a calmer week; argued once with a flatmate and used time-out "
        "instead of shouting. Sleep about seven hours.",
        "clinician_observations": "Relaxed, good eye contact, humorous at times. Speech normal. Thought linear.",
        "clinical_impressions": "Anger episodes reducing; applying distress tolerance skills between sessions.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI. No violence since last session."},
        "next_steps": "Continue DBT skills module two. Homework: diary card daily, one TIPP practice.",
        "diagnosis_codes": ["F43.22"],
        "interventions": ["DBT", "Mindfulness"],
    },
    {
        "client_reported_symptoms": "Reports checking the stove fewer times (three instead of ten) before leaving. "
        "Urges still strong in the morning rush.",
        "clinician_observations": "Engaged, mildly tense while describing urges, settled with breathing.",
        "clinical_impressions": "Obsessive-compulsive symptoms responding to exposure with response prevention.",
        "risk_assessment": {"level": "none", "text": "No safety concerns; denies SI/HI."},
        "next_steps": "Next ERP step: leave after one check, rate anxiety at 0, 10 and 30 minutes.",
        "diagnosis_codes": ["F42.2"],
        "interventions": ["Exposure therapy", "Psychoeducation"],
    },
    {
        "client_reported_symptoms": 'Client says the week was "steady". Kept to the new bedtime on six nights '
        "and had lunch with a colleague twice.",
        "clinician_observations": "Well groomed, warm, good rapport. Affect euthymic. Speech normal.",
        "clinical_impressions": "Depressive symptoms in partial remission; routines holding.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI, intent or plan. Supportive partner."},
        "next_steps": "Move to fortnightly sessions. Homework: keep the sleep window, plan one new activity.",
        "diagnosis_codes": ["F33.41"],
        "interventions": ["Behavioral activation", "IPT"],
    },
    {
        "client_reported_symptoms": "Reports fewer panic symptoms on the motorway; drove to the next town and back "
        "with a friend. Heart racing once, rode it out.",
        "clinician_observations": "Cheerful, proud of progress, good eye contact. No psychomotor changes.",
        "clinical_impressions": "Panic disorder improving with interoceptive and in-vivo exposure.",
        "risk_assessment": {"level": "none", "text": "No safety concerns; denies SI/HI."},
        "next_steps": "Next step: drive alone for fifteen minutes. Continue paced breathing practice.",
        "diagnosis_codes": ["F41.0"],
        "interventions": ["Exposure therapy", "CBT"],
    },
    {
        "client_reported_symptoms": "Client talked through the move to a new job; excited but sleeping poorly the "
        "last three nights. Appetite normal.",
        "clinician_observations": "Talkative, slightly restless, reactive affect. Thought process linear.",
        "clinical_impressions": "Adjustment with anxious mood around a planned life change; coping well overall.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: family, savings, plans."},
        "next_steps": "Continue weekly sessions through the transition. Homework: wind-down routine nightly.",
        "diagnosis_codes": ["F43.22"],
        "interventions": ["Solution-focused therapy", "Supportive therapy"],
    },
    {
        "client_reported_symptoms": "Reports accepting two invitations and staying at a party for an hour. "
        "Worried beforehand, less so than expected.",
        "clinician_observations": "Calm, appropriate dress, fair eye contact that improved through the session.",
        "clinical_impressions": "Social anxiety improving; safety behaviours dropping.",
        "risk_assessment": {"level": "none", "text": "Denies SI/HI; no safety concerns."},
        "next_steps": "Drop one safety behaviour at the next event; note predicted and actual outcome.",
        "diagnosis_codes": ["F40.10"],
        "interventions": ["CBT", "Exposure therapy"],
    },
    {
        "client_reported_symptoms": "Client reports flashbacks twice this week, both after news reports; used the "
        "five-senses grounding and went back to work.",
        "clinician_observations": "Cooperative, mildly guarded at first, then open. Affect congruent.",
        "clinical_impressions": "PTSD symptoms stable; processing sessions tolerated.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI. Uses grounding and calls a friend when low."},
        "next_steps": "Continue EMDR preparation; resource installation next session.",
        "diagnosis_codes": ["F43.10"],
        "interventions": ["EMDR", "Mindfulness"],
    },
    {
        "client_reported_symptoms": "Reports family dinners without arguments on three evenings; teenager helped "
        "plan one of them.",
        "clinician_observations": "Warm, engaged, laughs readily. Affect bright. Speech normal.",
        "clinical_impressions": "Family conflict easing with structured communication at home.",
        "risk_assessment": {"level": "none", "text": "No safety concerns; denies SI/HI."},
        "next_steps": "Family session in two weeks. Homework: weekly family meeting, 20 minutes.",
        "diagnosis_codes": ["F43.21"],
        "interventions": ["Family systems", "Psychoeducation"],
    },
]

SCRIBE_HIGH_RISK = [
    {
        "client_reported_symptoms": 'Client says "everyone would be better off without me" since the break-up and '
        "reports thinking about taking an overdose of stored tablets.",
        "clinician_observations": "Flat affect, tearful, poor eye contact, slowed speech. Cooperative.",
        "clinical_impressions": "Suicidal ideation with a specific method, in the context of a recent loss.",
        "risk_assessment": {
            "level": "high",
            "text": "Active SI with a method (stored tablets), no set time. Agreed to give the tablets to a relative.",
        },
        "next_steps": "Safety plan written together; crisis line numbers given. Check-in call tomorrow.",
        "diagnosis_codes": ["F32.2"],
        "interventions": ["Safety planning", "MI"],
    },
    {
        "client_reported_symptoms": "Reports cutting her forearm twice this week after arguments at home and "
        "thoughts of not waking up.",
        "clinician_observations": "Long sleeves, guarded, flat affect. Answers briefly.",
        "clinical_impressions": "Self-harm with passive suicidal ideation during family conflict.",
        "risk_assessment": {
            "level": "high",
            "text": "Recent self-harm; passive SI, no plan. Wounds seen by the practice nurse today.",
        },
        "next_steps": "Safety plan updated; family meeting this week. Session in two days.",
        "diagnosis_codes": ["F33.1"],
        "interventions": ["Safety planning", "DBT"],
    },
]

SCRIBE_GROUP_SESSIONS = [
    {
        "client_reported_symptoms": "Group shared wins from the week: one member returned to the gym, another "
        "set a boundary with a parent. Discussion of setbacks as part of recovery.",
        "clinician_observations": "Members attentive and supportive; quieter members invited in and joined.",
        "clinical_impressions": "Group cohesion good; members generalising skills outside sessions.",
        "risk_assessment": {"level": "low", "text": "No member reported SI/HI."},
        "next_steps": "Next session: handling criticism. Homework: notice one automatic thought a day.",
        "diagnosis_codes": ["F43.23"],
        "interventions": ["Group process", "CBT"],
    },
    {
        "client_reported_symptoms": "Group practised a body-scan exercise and talked about sleep. Two members "
        "described waking at night and using breathing to settle.",
        "clinician_observations": "Engaged, calm room, respectful turn-taking.",
        "clinical_impressions": "Members applying mindfulness skills; sleep a shared theme.",
        "risk_assessment": {"level": "low", "text": "No member reported SI/HI."},
        "next_steps": "Next session: values and small goals. Homework: body scan before bed.",
        "diagnosis_codes": ["F43.23"],
        "interventions": ["Group process", "Mindfulness"],
    },
]
