"""A group session is stored in a fixed number of statements, whatever its
size (issue #11, point 5: the slowest accepted draft, a group of 30, answers
in under a second; bench/intake.py prints it). Only what the design asks per
member grows with the group: the client look-up and the note.draft audit
event. The session-wide text is scanned once for the group, each member's
own text still for them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from notes.mapping import SectionSpec, TemplateSpec, map_ai_output, shared_text_scans
from notes.models import Flag, Note
from notes.vocabulary import InterventionVocabulary
from tests.factories import client_factory, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _group_body(scribe, clients, n, own=None):
    body = scribe.payload(
        draft_id=f"group-{n}-{len(clients)}",
        session={
            "start": "2026-11-24T18:00:00-05:00",
            "duration_minutes": 90,
            "type": "group",
            "participants": [
                {"client": {"id": c.pk}, "name": c.given_name, **({"client_reported_symptoms": own[i]} if own else {})}
                for i, c in enumerate(clients)
            ],
        },
        clinician_observations="Members engaged; group cohesion good.",
    )
    del body["client"]
    return body


def _queries_to_post(scribe, body) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = scribe.post(body)
    assert response.status_code == 201, response.content[:500]
    return len(queries)


def test_a_larger_group_costs_only_a_client_look_up_and_an_audit_event_more_per_member(scribe):
    w = scribe.world
    clients = [client_factory(w.practice, w.clinician, given_name=f"Member{i}") for i in range(8)]
    _queries_to_post(scribe, _group_body(scribe, clients[:2], 0))  # warm: template version, vocabulary
    small = _queries_to_post(scribe, _group_body(scribe, clients[:4], 1))
    large = _queries_to_post(scribe, _group_body(scribe, clients, 2))
    # Per member: one client look-up (intake) and one note.draft event (audit
    # design). Draft, note, sections, flags, history and consent holds are one
    # statement each for the whole group.
    assert large - small == 4 * 2
    assert AuditEvent.objects.filter(action="note.draft").count() == 2 + 4 + 8
    assert Note.objects.filter(draft__session_type="group").count() == 14


def test_every_member_gets_the_shared_risk_flag_and_only_the_speaker_their_own(scribe):
    w = scribe.world
    clients = [client_factory(w.practice, w.clinician, given_name=f"Member{i}") for i in range(3)]
    own = ["Sleeping better.", "Reports a plan to overdose this weekend.", "Work stress."]
    body = _group_body(scribe, clients, 3, own=own)
    body["next_steps"] = "Client wants to die, said so twice in group."
    response = scribe.post(body)
    assert response.status_code == 201, response.content[:500]
    overdose = [c.pk for c in clients if "overdose" in " ".join(f.message for f in Flag.objects.filter(note__client=c))]
    assert overdose == [clients[1].pk]  # the speaker's own line, in the speaker's note only
    assert all(Note.objects.get(client=c).high_risk for c in clients)  # the shared line, in every note


SOAP = TemplateSpec(
    sections=[SectionSpec(key="subjective", label="Subjective", order=1)],
    field_map={"client_reported_symptoms": "subjective"},
)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ann Lee Park spoke first.\nThen Lee.", ["Ann Lee", "Lee Park", "Lee", "Park"]),
        ("Sam Okafor and sam again", ["Sam", "Okafor", "Sam Okafor", "Jordan"]),
        ("Nobody named here.", ["Quinn", "Morgan"]),
        ("Jo-Ann said so.\nJo\nAnn", ["Jo", "Ann", "Jo-Ann"]),
    ],
)
def test_names_found_line_by_line_in_a_group_are_the_names_found_in_the_whole_text(text, names):
    vocabulary, draft = InterventionVocabulary({}), {"client_reported_symptoms": text}
    alone = map_ai_output(draft, SOAP, vocabulary=vocabulary, other_participant_names=names)
    with shared_text_scans():  # an earlier member's look-up fills the memo for some names
        map_ai_output(draft, SOAP, vocabulary=vocabulary, other_participant_names=names[:1])
        shared = map_ai_output(draft, SOAP, vocabulary=vocabulary, other_participant_names=names)
    assert [f for f in shared.flags if f.kind == "other_participant"] == [
        f for f in alone.flags if f.kind == "other_participant"
    ]
