"""AI output -> template sections and flags (MAPPING.md §2). Pure: no database."""

from notes.default_templates import DAP, SOAP
from notes.mapping import SectionSpec, TemplateSpec, map_ai_output
from notes.vocabulary import InterventionVocabulary
from tests.factories import ai_output

VOCAB = InterventionVocabulary({"CBT": ["cognitive behavioral therapy"], "MI": ["motivational interviewing"]})


def _spec(template: dict, **overrides) -> TemplateSpec:
    sections = [
        SectionSpec(key=s["key"], label=s["label"], order=i, kind=s["kind"], required=s["required"])
        for i, s in enumerate(template["sections"], start=1)
    ]
    values = {
        "field_map": template["field_map"],
        "fallback_section_key": template["fallback_section_key"],
        "unplaced_policy": template["unplaced_policy"],
    } | overrides
    return TemplateSpec(sections=sections, **values)


def _sections(mapped) -> dict:
    return {s.key: s for s in mapped.sections}


def test_soap_places_each_field_in_its_section():
    mapped = map_ai_output(ai_output(interventions=["CBT"]), _spec(SOAP), vocabulary=VOCAB)
    s = _sections(mapped)
    assert "six hours" in s["subjective"].text
    assert "oriented x3" in s["objective"].text
    assert "behavioral activation" in s["assessment"].text
    assert s["risk"].codes == ["low"] and "Denies SI/HI" in s["risk"].text
    assert s["diagnoses"].codes == ["F33.1"] and "Major depressive disorder" in s["diagnoses"].text
    assert "weekly sessions" in s["plan"].text
    assert s["interventions"].codes == ["CBT"]
    assert mapped.flags == [] and mapped.high_risk is False


def test_dap_puts_report_and_observations_together_in_data_with_labels():
    mapped = map_ai_output(ai_output(interventions=["CBT"]), _spec(DAP), vocabulary=VOCAB)
    data = _sections(mapped)["data"].text
    assert data.startswith("Client report: ") and "\n\nObservations: Alert" in data


def test_a_field_with_no_place_is_flagged_verbatim_never_dropped():
    mapped = map_ai_output(ai_output(interventions=["CBT"], homework_sheet={"page": 3}), _spec(SOAP), vocabulary=VOCAB)
    [flag] = mapped.flags
    assert flag.kind == "unplaced_content" and flag.field == "homework_sheet" and flag.value == {"page": 3}


def test_with_a_fallback_section_unplaced_content_lands_there_labelled():
    spec = _spec(SOAP, fallback_section_key="plan", unplaced_policy="fallback")
    mapped = map_ai_output(ai_output(interventions=["CBT"], mood_rating="6/10"), spec, vocabulary=VOCAB)
    plan = _sections(mapped)["plan"]
    assert plan.text.endswith("mood_rating: 6/10") and plan.origin == "fallback"
    assert mapped.flags == []


def test_invalid_and_category_codes_are_flagged_not_passed_through():
    mapped = map_ai_output(
        ai_output(interventions=["CBT"], diagnosis_codes=["F33.1", "F41", "NOTACODE"]), _spec(SOAP), vocabulary=VOCAB
    )
    diagnoses = _sections(mapped)["diagnoses"]
    assert diagnoses.codes == ["F33.1"] and "F41" not in diagnoses.text and "NOTACODE" not in diagnoses.text
    flags = {f.value: f for f in mapped.flags}
    assert (
        flags["F41"].kind == "invalid_code"
        and {"code": "F41.1", "description": "Generalized anxiety disorder"} in flags["F41"].suggestions
    )
    assert flags["NOTACODE"].kind == "invalid_code" and flags["NOTACODE"].suggestions == []


def test_interventions_resolve_synonyms_and_flag_unknown_terms():
    mapped = map_ai_output(
        ai_output(interventions=["Motivational Interviewing", "reiki"]), _spec(SOAP), vocabulary=VOCAB
    )
    assert _sections(mapped)["interventions"].codes == ["MI"]
    [flag] = mapped.flags
    assert flag.kind == "unknown_intervention" and flag.value == "reiki"


def test_high_risk_level_marks_the_note_and_asks_for_acknowledgement():
    mapped = map_ai_output(
        ai_output(interventions=["CBT"], risk_assessment={"level": "high", "text": "Plan."}),
        _spec(SOAP),
        vocabulary=VOCAB,
    )
    assert mapped.high_risk is True
    assert [f.kind for f in mapped.flags] == ["risk"]


def test_crisis_language_marks_high_risk_even_when_the_scribe_rated_it_low():
    payload = ai_output(interventions=["CBT"], client_reported_symptoms='Client said "I want to die" twice.')
    mapped = map_ai_output(payload, _spec(SOAP), vocabulary=VOCAB)
    assert mapped.high_risk is True
    assert any(f.kind == "risk" and "want to die" in f.message for f in mapped.flags)


def test_another_group_members_name_is_flagged():
    payload = ai_output(interventions=["CBT"], client_reported_symptoms="Shared that Morgan's story helped.")
    mapped = map_ai_output(payload, _spec(SOAP), vocabulary=VOCAB, other_participant_names=["Morgan", "Quinn"])
    assert [f.value for f in mapped.flags if f.kind == "other_participant"] == ["Morgan"]


def test_missing_required_content_is_flagged():
    payload = ai_output(interventions=["CBT"])
    del payload["next_steps"]
    mapped = map_ai_output(payload, _spec(SOAP), vocabulary=VOCAB)
    assert [(f.kind, f.section_key) for f in mapped.flags] == [("missing_required", "plan")]


def test_the_same_input_gives_the_same_note():
    a = map_ai_output(ai_output(), _spec(SOAP), vocabulary=VOCAB)
    b = map_ai_output(ai_output(), _spec(SOAP), vocabulary=VOCAB)
    assert a == b
