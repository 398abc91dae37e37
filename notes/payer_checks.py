"""Payer checks (issue 15, point 6): a CPT code the scribe proposes is checked
against the session's duration and type, and the note against the
medical-necessity elements payers look for. Pure functions of what the intake
already holds (no queries), so they add nothing measurable to the intake hot
path nor any per-member query to a group (bench/intake.py).

Each finding becomes an open Flag (kinds cpt_code and medical_necessity) the
clinician resolves with a reason before signing, like every other flag. The
rules table is documented in docs/intake.md ("Payer checks"); keep the two
in step.

The checks run only on drafts that carry a CPT code: a draft posted without
one is not being billed through the scribe, and flagging it would only add
noise to review.
"""

from dataclasses import dataclass, field

# Psychotherapy by time (CPT 2024 time rule: a unit is reported once the
# midpoint is passed). Codes with an E/M (90833/90836/90838) share the ranges.
# code -> (minimum minutes, maximum minutes or None)
PSYCHOTHERAPY_TIME: dict[str, tuple[int, int | None]] = {
    "90832": (16, 37),
    "90833": (16, 37),
    "90834": (38, 52),
    "90836": (38, 52),
    "90837": (53, None),
    "90838": (53, None),
}
# Family psychotherapy, without (90846) or with (90847) the patient: 26 minutes or more.
FAMILY_MIN_MINUTES = 26
FAMILY_CODES = ("90846", "90847")
# Group psychotherapy (90853) and multiple-family group (90849): group sessions only.
GROUP_CODES = ("90853", "90849")
# Crisis psychotherapy: 90839 for the first 30-74 minutes, 90840 for each further 30 (75-104: one, 105-134: two...).
CRISIS_CODE, CRISIS_ADD_ON = "90839", "90840"
CRISIS_MIN_MINUTES = 30
CRISIS_ADD_ON_FROM = 75
# Interactive complexity: an add-on to these primary codes only (never to crisis or family psychotherapy).
INTERACTIVE_COMPLEXITY = "90785"
INTERACTIVE_COMPLEXITY_PRIMARIES = ("90791", "90792", *PSYCHOTHERAPY_TIME, "90853")
ADD_ON_CODES = (INTERACTIVE_COMPLEXITY, CRISIS_ADD_ON)

# Medical-necessity elements -> the AI output fields that carry them (MAPPING.md §1).
NECESSITY_ELEMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("diagnosis", "a diagnosis (ICD-10-CM code)", ("diagnosis_codes",)),
    (
        "symptoms",
        "symptoms or functional impairment",
        ("client_reported_symptoms", "clinician_observations"),
    ),
    ("intervention", "the interventions used", ("interventions",)),
    ("response", "the client's response or progress", ("clinical_impressions",)),
    ("plan", "the plan", ("next_steps",)),
)


@dataclass(frozen=True)
class PayerFinding:
    kind: str  # notes.models.Flag.Kind value
    field: str
    message: str
    value: object = None
    suggestions: list = field(default_factory=list)


def _time_code_for(minutes: int) -> str | None:
    for code in ("90832", "90834", "90837"):
        low, high = PSYCHOTHERAPY_TIME[code]
        if minutes >= low and (high is None or minutes <= high):
            return code
    return None


def crisis_add_on_units(minutes: int) -> int:
    return 0 if minutes < CRISIS_ADD_ON_FROM else 1 + (minutes - CRISIS_ADD_ON_FROM) // 30


def cpt_findings(*, cpt_code: str, add_on_codes: list[str], minutes: int, session_type: str) -> list[PayerFinding]:
    """What does not fit between the codes, the duration and the session type."""
    findings: list[PayerFinding] = []

    def flag(message: str, *, value=None, suggestions=()):
        findings.append(
            PayerFinding(
                kind="cpt_code",
                field="cpt_code",
                message=message,
                value=value if value is not None else cpt_code,
                suggestions=list(suggestions),
            )
        )

    is_group = session_type == "group"
    if cpt_code in ADD_ON_CODES:
        flag(f"CPT {cpt_code} is an add-on code; it needs a primary code and cannot be billed alone.")
    elif cpt_code in PSYCHOTHERAPY_TIME:
        low, high = PSYCHOTHERAPY_TIME[cpt_code]
        if minutes < low or (high is not None and minutes > high):
            span = f"{low}–{high}" if high is not None else f"{low} or more"
            fitting = _time_code_for(minutes)
            hint = f" For {minutes} minutes the code is {fitting}." if fitting else ""
            if minutes < 16:
                hint = " Under 16 minutes no psychotherapy code applies."
            flag(
                f"CPT {cpt_code} is for {span} minutes of psychotherapy; this session lasted {minutes}.{hint}",
                suggestions=[fitting] if fitting else [],
            )
        if is_group:
            flag(
                f"CPT {cpt_code} is individual psychotherapy; this was a group session (90853).", suggestions=["90853"]
            )
    elif cpt_code in FAMILY_CODES:
        if minutes < FAMILY_MIN_MINUTES:
            flag(
                f"CPT {cpt_code} (family psychotherapy) needs {FAMILY_MIN_MINUTES} minutes or more; "
                f"this session lasted {minutes}."
            )
    elif cpt_code in GROUP_CODES:
        if not is_group:
            flag(f"CPT {cpt_code} is group psychotherapy; this session is recorded as {session_type}.")
    elif cpt_code == CRISIS_CODE:
        if minutes < CRISIS_MIN_MINUTES:
            fitting = _time_code_for(minutes)
            flag(
                f"CPT {CRISIS_CODE} (crisis psychotherapy) needs {CRISIS_MIN_MINUTES} minutes or more; "
                f"this session lasted {minutes}."
                + (f" For {minutes} minutes the code is {fitting}." if fitting else ""),
                suggestions=[fitting] if fitting else [],
            )

    # Add-on codes, once per unit.
    crisis_units = add_on_codes.count(CRISIS_ADD_ON)
    if cpt_code == CRISIS_CODE:
        expected = crisis_add_on_units(minutes)
        if crisis_units != expected:
            flag(
                f"A {minutes}-minute crisis session takes {expected} unit{'s' if expected != 1 else ''} of "
                f"add-on {CRISIS_ADD_ON}; {crisis_units} {'were' if crisis_units != 1 else 'was'} posted.",
                value=add_on_codes,
            )
    elif crisis_units:
        flag(f"Add-on {CRISIS_ADD_ON} goes only with crisis psychotherapy ({CRISIS_CODE}).", value=add_on_codes)
    if INTERACTIVE_COMPLEXITY in add_on_codes:
        if add_on_codes.count(INTERACTIVE_COMPLEXITY) > 1:
            flag(f"Add-on {INTERACTIVE_COMPLEXITY} is billed once per session.", value=add_on_codes)
        if cpt_code not in INTERACTIVE_COMPLEXITY_PRIMARIES:
            flag(
                f"Add-on {INTERACTIVE_COMPLEXITY} (interactive complexity) does not go with CPT {cpt_code}; "
                "it adds to diagnostic evaluation, individual or group psychotherapy.",
                value=add_on_codes,
            )
    unknown = [c for c in add_on_codes if c not in ADD_ON_CODES]
    if unknown:
        flag(f"Not an add-on code this check knows: {', '.join(unknown)}.", value=add_on_codes)
    return findings


def _present(value) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(_present(v) for v in value.values())
    if isinstance(value, list):
        return any(_present(v) for v in value)
    return value is not None


def necessity_findings(payload: dict) -> list[PayerFinding]:
    """One finding per medical-necessity element the draft does not carry."""
    findings = []
    for element, words, fields in NECESSITY_ELEMENTS:
        if not any(_present(payload.get(f)) for f in fields):
            findings.append(
                PayerFinding(
                    kind="medical_necessity",
                    field=fields[0],
                    value=element,
                    message=f"Medical necessity: the note does not state {words}. "
                    "Payers deny claims without it; add it, or resolve this flag saying why it is not needed.",
                )
            )
    return findings


def payer_findings(
    *, payload: dict, cpt_code: str, add_on_codes: list[str], minutes: int, session_type: str
) -> list[PayerFinding]:
    if not cpt_code:
        return []
    return [
        *cpt_findings(cpt_code=cpt_code, add_on_codes=add_on_codes, minutes=minutes, session_type=session_type),
        *necessity_findings(payload),
    ]
