"""The sample AI output the template preview starts from: every content
field of intake schema v1, made up (no client's data)."""

SAMPLE_AI_OUTPUT = {
    "client_reported_symptoms": "Client reports sleeping about six hours most nights and less worry at work.",
    "clinician_observations": "Alert and oriented; affect congruent, mildly anxious.",
    "clinical_impressions": "Generalized anxiety improving with weekly CBT.",
    "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: family, work."},
    "next_steps": "Continue weekly sessions; practice breathing exercise daily.",
    "diagnosis_codes": ["F41.1"],
    "interventions": ["CBT", "psychoeducation"],
}
