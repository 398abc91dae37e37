"""Issue #12, point 1: risk language is read with its negation, time and
experiencer (medspaCy ConText), and only current risk marks a note high-risk."""

import json
from pathlib import Path

import pytest

from notes.mapping import SectionSpec, TemplateSpec, map_ai_output
from notes.models import Note
from notes.risk_language import LABELS, Label, risk_scan
from notes.vocabulary import InterventionVocabulary
from tests.factories import ai_output, world_factory
from tests.notes.intake_support import scribe_for

DATA = Path(__file__).parent / "data" / "risk_sentences.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
VOCAB = InterventionVocabulary({"CBT": ["cognitive behavioral therapy"]})
SOAP = TemplateSpec(
    sections=[
        SectionSpec("subjective", "Subjective", 1),
        SectionSpec("objective", "Objective", 2),
        SectionSpec("assessment", "Assessment", 3),
        SectionSpec("risk", "Risk", 4),
        SectionSpec("plan", "Plan", 5),
        SectionSpec("interventions", "Interventions", 6, kind="interventions"),
    ],
    field_map={
        "client_reported_symptoms": "subjective",
        "clinician_observations": "objective",
        "clinical_impressions": "assessment",
        "risk_assessment": "risk",
        "next_steps": "plan",
        "interventions": "interventions",
    },
)


def _asserted(sentence: str) -> bool:
    return any(m.label == Label.ASSERTED for m in risk_scan(sentence))


def test_the_labelled_set_has_at_least_200_sentences_of_every_label():
    labels = [row["label"] for row in ROWS]
    assert len(ROWS) >= 200
    assert set(labels) == {*LABELS, "none"}
    assert all(labels.count(label) >= 15 for label in LABELS)


def test_every_current_risk_sentence_is_found_with_a_precision_of_at_least_90_percent():
    missed = [row["sentence"] for row in ROWS if row["label"] == "asserted" and not _asserted(row["sentence"])]
    alarms = [row["sentence"] for row in ROWS if row["label"] != "asserted" and _asserted(row["sentence"])]
    found = sum(1 for row in ROWS if row["label"] == "asserted") - len(missed)
    assert missed == []  # recall 100 %: a missed crisis is the worst error
    assert found / (found + len(alarms)) >= 0.90, alarms


@pytest.mark.parametrize(
    ("sentence", "label"),
    [
        ("Denies suicidal ideation.", Label.DENIED),
        ("SI present, passive, no plan.", Label.ASSERTED),
        ("Client does not deny suicidal ideation.", Label.ASSERTED),
        ("Previous suicide attempt in 2019.", Label.HISTORICAL),
        ("If SI returns, client will call 988.", Label.HYPOTHETICAL),
        ("Her uncle threatened to kill himself.", Label.OTHER),
        ("Niega ideación suicida.", Label.DENIED),
        ("Client says she quiere morir.", Label.ASSERTED),
    ],
)
def test_each_statement_gets_its_label(sentence, label):
    assert [m.label for m in risk_scan(sentence)] == [label]


def test_a_denial_does_not_hide_a_plan_later_in_the_sentence():
    labels = {m.text.lower(): m.label for m in risk_scan("Denies SI but reports a plan to overdose.")}
    assert labels["si"] == Label.DENIED
    assert Label.ASSERTED in {labels[k] for k in labels if k != "si"}


def test_a_draft_whose_only_risk_language_is_a_denial_is_not_high_risk():
    payload = ai_output(interventions=["CBT"], client_reported_symptoms="Denies suicidal ideation or self-harm.")
    mapped = map_ai_output(payload, SOAP, vocabulary=VOCAB)  # risk rated low with text
    assert mapped.high_risk is False
    assert [f for f in mapped.flags if f.kind == "risk"] == []


@pytest.mark.parametrize(
    "sentence",
    ["SI present, passive, no plan.", "Reports NSSI twice this week.", "I don't want to be alive anymore."],
)
def test_current_risk_marks_a_low_rated_draft_high_risk_and_raises_a_flag(sentence):
    mapped = map_ai_output(ai_output(interventions=["CBT"], client_reported_symptoms=sentence), SOAP, vocabulary=VOCAB)
    assert mapped.high_risk is True
    [flag] = [f for f in mapped.flags if f.kind == "risk"]
    assert flag.section_key == "subjective" and flag.value["statements"]


@pytest.mark.parametrize("assessment", [None, {"level": "none", "text": ""}, ""])
def test_a_denial_without_a_risk_assessment_asks_to_confirm_risk_was_assessed(assessment):
    payload = ai_output(interventions=["CBT"], client_reported_symptoms="Denies SI/HI.", risk_assessment=assessment)
    mapped = map_ai_output(payload, SOAP, vocabulary=VOCAB)
    [flag] = [f for f in mapped.flags if f.kind == "risk"]
    assert "Confirm that risk was assessed" in flag.message and flag.value == {"denials": ["hi", "si"]}
    assert mapped.high_risk is False


def test_a_denial_with_a_recorded_assessment_asks_nothing():
    payload = ai_output(interventions=["CBT"], risk_assessment={"level": "none", "text": "Asked directly; denies SI."})
    assert [f for f in map_ai_output(payload, SOAP, vocabulary=VOCAB).flags if f.kind == "risk"] == []


@pytest.mark.django_db
def test_a_denial_only_draft_posted_by_the_scribe_is_not_high_risk():
    scribe = scribe_for(world_factory())
    response = scribe.post(scribe.payload(client_reported_symptoms="Denies suicidal ideation. Sleeping better."))
    assert response.status_code == 201, response.content
    assert response.json()["high_risk"] is False
    note = Note.objects.get(pk=response.json()["note_id"])
    assert note.high_risk is False and not note.flags.filter(kind="risk").exists()


def test_beyond_the_scan_cap_risk_sentences_count_as_current_risk_not_as_nothing(monkeypatch):
    # A draft with more distinct risk sentences than one scan classifies: the
    # rest are taken as current risk (flagged for the clinician), never dropped.
    import notes.risk_language as risk_language

    monkeypatch.setattr(risk_language, "RISK_SCAN_MAX_SENTENCES", 2)
    monkeypatch.setattr(risk_language, "_CLASSIFIED", {})  # none of them classified before
    text = " ".join(f"Denies suicidal ideation on day {i}." for i in range(5))
    mentions = risk_scan(text)
    assert [m.label for m in mentions].count(Label.DENIED) == 2
    unclassified = [m for m in mentions if m.concept == "UNCLASSIFIED"]
    assert len(unclassified) == 3 and all(m.label == Label.ASSERTED for m in unclassified)
    assert all("suicid" in m.text.lower() for m in unclassified)


def test_a_group_shares_one_scan_of_its_session_wide_text_and_each_member_keeps_their_findings(monkeypatch):
    # Under risk_scan_shared (a group's 30 notes) the shared text's sentences
    # are looked for once, and each member still gets the findings of the
    # shared text and of their own lines.
    import notes.risk_language as risk_language

    calls = []
    real = risk_language._candidate
    monkeypatch.setattr(risk_language, "_candidate", lambda sentence: calls.append(sentence) or real(sentence))
    shared = "Group discussed coping skills. Member reports thoughts of killing himself this week."
    own = ["Sleeping better.", "Denies suicidal ideation."]
    with risk_language.risk_scan_shared():
        per_member = [risk_language._risk_scan_many([shared, mine]) for mine in own]
    assert calls.count("Member reports thoughts of killing himself this week.") == 1
    for shared_mentions, _ in per_member:
        assert [m.label for m in shared_mentions] == [Label.ASSERTED]
    assert per_member[0][1] == [] and [m.label for m in per_member[1][1]] == [Label.DENIED]


def test_a_short_sentence_seen_before_is_classified_again_without_the_pipeline_and_the_same(monkeypatch):
    # Risk boilerplate recurs in most drafts: its classification is kept per
    # process (bounded, short sentences only) and gives the same mentions.
    import notes.risk_language as risk_language

    monkeypatch.setattr(risk_language, "_CLASSIFIED", {})
    monkeypatch.setattr(risk_language, "CLASSIFIED_CACHE_SIZE", 2)
    first = risk_scan("Denies SI/HI.")
    long_sentence = "Reports thoughts of killing himself " + "and more " * 40 + "today."
    assert first and all(m.label == Label.DENIED for m in first)  # SI and HI
    risk_scan(long_sentence)
    assert long_sentence not in risk_language._CLASSIFIED  # too long to keep

    def no_pipeline():
        raise AssertionError("the pipeline ran for a sentence it had classified")

    monkeypatch.setattr(risk_language, "risk_pipeline", no_pipeline)
    assert risk_scan("Denies SI/HI.") == first
    monkeypatch.undo()
    monkeypatch.setattr(risk_language, "CLASSIFIED_CACHE_SIZE", 2)
    for sentence in ("Denies SI.", "Denies HI.", "Reports SI today."):
        risk_scan(sentence)
    assert len(risk_language._CLASSIFIED) <= 2
