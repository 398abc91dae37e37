"""The SOAP and DAP templates every practice starts with, after MAPPING.md §2.

Decisions where MAPPING.md is silent: the risk level and its text get their
own "risk" section (kind risk) right after the assessment, so a high-risk item
is one place to acknowledge; DAP keeps an interventions section (MAPPING.md
lists none for DAP, and flagging every DAP note's interventions as unplaced
would train clinicians to click flags away). Unplaced AI content is flagged
for manual placement by default; a practice can switch a version to a
fallback section.
"""

SOAP = {
    "key": "soap",
    "name": "SOAP progress note",
    "kind": "soap",
    "sections": [
        {"key": "subjective", "label": "Subjective", "kind": "text", "required": True, "loinc_code": "61150-9"},
        {"key": "objective", "label": "Objective", "kind": "text", "required": True, "loinc_code": "61149-1"},
        {"key": "assessment", "label": "Assessment", "kind": "text", "required": True, "loinc_code": "51848-0"},
        {"key": "risk", "label": "Assessment · risk", "kind": "risk", "required": True, "loinc_code": ""},
        {
            "key": "diagnoses",
            "label": "Assessment · diagnosis codes",
            "kind": "diagnosis_codes",
            "required": False,
            "loinc_code": "",
        },
        {"key": "plan", "label": "Plan", "kind": "text", "required": True, "loinc_code": "18776-5"},
        {
            "key": "interventions",
            "label": "Plan · interventions",
            "kind": "interventions",
            "required": False,
            "loinc_code": "",
        },
    ],
    "field_map": {
        "client_reported_symptoms": "subjective",
        "clinician_observations": "objective",
        "clinical_impressions": "assessment",
        "risk_assessment": "risk",
        "diagnosis_codes": "diagnoses",
        "next_steps": "plan",
        "interventions": "interventions",
    },
    "fallback_section_key": "",
    "unplaced_policy": "flag",
}

DAP = {
    "key": "dap",
    "name": "DAP progress note",
    "kind": "dap",
    "sections": [
        {"key": "data", "label": "Data", "kind": "text", "required": True, "loinc_code": ""},
        {
            "key": "interventions",
            "label": "Data · interventions",
            "kind": "interventions",
            "required": False,
            "loinc_code": "",
        },
        {"key": "assessment", "label": "Assessment", "kind": "text", "required": True, "loinc_code": "51848-0"},
        {"key": "risk", "label": "Assessment · risk", "kind": "risk", "required": True, "loinc_code": ""},
        {
            "key": "diagnoses",
            "label": "Assessment · diagnosis codes",
            "kind": "diagnosis_codes",
            "required": False,
            "loinc_code": "",
        },
        {"key": "plan", "label": "Plan", "kind": "text", "required": True, "loinc_code": "18776-5"},
    ],
    "field_map": {
        "client_reported_symptoms": "data",
        "clinician_observations": "data",
        "clinical_impressions": "assessment",
        "risk_assessment": "risk",
        "diagnosis_codes": "diagnoses",
        "next_steps": "plan",
        "interventions": "interventions",
    },
    "fallback_section_key": "",
    "unplaced_policy": "flag",
}

DEFAULT_TEMPLATES = [SOAP, DAP]

# The practice's starting intervention vocabulary: term -> synonyms.
DEFAULT_INTERVENTIONS = {
    "CBT": ["cognitive behavioral therapy", "cognitive behavioural therapy", "cognitive-behavioral therapy"],
    "DBT": ["dialectical behavior therapy", "dialectical behaviour therapy"],
    "MI": ["motivational interviewing"],
    "EMDR": ["eye movement desensitization and reprocessing"],
    "ACT": ["acceptance and commitment therapy"],
    "IPT": ["interpersonal therapy", "interpersonal psychotherapy"],
    "Psychoeducation": ["psychoeducational"],
    "Safety planning": ["safety plan", "crisis safety plan", "stanley-brown safety plan"],
    "Behavioral activation": ["behavioural activation", "ba"],
    "Mindfulness": ["mindfulness-based intervention", "mindfulness skills"],
    "Exposure therapy": ["exposure", "exposure and response prevention", "erp"],
    "Supportive therapy": ["supportive psychotherapy", "supportive counseling"],
    "Family systems": ["family systems therapy"],
    "Solution-focused therapy": ["sfbt", "solution focused brief therapy"],
    "Trauma-focused CBT": ["tf-cbt", "trauma focused cognitive behavioral therapy"],
    "Group process": ["group therapy", "process group"],
}
