"""Group sessions: one draft per participant with active consent, each that
client's own note; another participant's name in a note is flagged."""

import pytest

from notes.models import Draft, Note
from tests.factories import client_factory, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _group(scribe, participants, **overrides):
    body = scribe.payload(
        session={
            "start": "2026-11-24T18:00:00-05:00",
            "duration_minutes": 90,
            "type": "group",
            "participants": participants,
        },
        interventions=["Group process"],
        clinician_observations="Members engaged; group cohesion good.",
        **overrides,
    )
    if "client" not in overrides:
        del body["client"]
    del body["client_reported_symptoms"]
    return body


@pytest.fixture
def members(scribe):
    w = scribe.world
    sam = client_factory(w.practice, w.clinician, given_name="Sam", family_name="Okafor")
    alex = client_factory(w.practice, w.clinician, given_name="Alex", family_name="Moreau", consent=False)
    return scribe.client, sam, alex  # Jordan Rivera (consent), Sam (consent), Alex (no consent)


def test_each_consenting_participant_gets_their_own_note(scribe, members):
    jordan, sam, alex = members
    participants = [
        {"client": {"id": jordan.pk}, "name": "Jordan", "client_reported_symptoms": "Jordan: sleeping better."},
        {"client": {"ehr_patient_id": sam.ehr_patient_id}, "name": "Sam", "client_reported_symptoms": "Work stress."},
        {"client": {"id": alex.pk}, "name": "Alex", "client_reported_symptoms": "Alex's private disclosure."},
    ]
    response = scribe.post(_group(scribe, participants))
    assert response.status_code == 201, response.content[:500]
    data = response.json()
    assert [d["client"] for d in data["drafts"]] == [jordan.pk, sam.pk]
    assert data["skipped_participants"] == [
        {"client": alex.pk, "reason": "The client has no active consent to AI-assisted documentation."}
    ]
    assert not Draft.objects.filter(client=alex).exists() and not Note.objects.filter(client=alex).exists()
    sam_note = Note.objects.get(client=sam)
    assert sam_note.sections.get(key="subjective").text == "Work stress."
    assert sam_note.sections.get(key="objective").text == "Members engaged; group cohesion good."
    assert sam_note.draft.session_type == "group"
    # Sam's stored draft holds Sam's content only, not the other members' content or names.
    stored = str(sam_note.draft.payload)
    assert "private disclosure" not in stored and "sleeping better" not in stored and "Jordan" not in stored


def test_another_participants_name_in_a_note_is_flagged(scribe, members):
    jordan, sam, _ = members
    participants = [
        {"client": {"id": jordan.pk}, "name": "Jordan", "client_reported_symptoms": "Supported Sam Okafor today."},
        {"client": {"id": sam.pk}, "name": "Sam", "client_reported_symptoms": "Quiet today."},
    ]
    data = scribe.post(_group(scribe, participants)).json()
    by_client = {d["client"]: d for d in data["drafts"]}
    assert by_client[jordan.pk]["flags"]["by_kind"]["other_participant"] == 1
    assert "other_participant" not in by_client[sam.pk]["flags"]["by_kind"]
    flagged = {f.value for f in Note.objects.get(client=jordan).flags.filter(kind="other_participant")}
    assert flagged == {"Sam Okafor"}


def test_a_shared_first_name_is_not_taken_for_a_disclosure(scribe):
    w = scribe.world
    other_jordan = client_factory(w.practice, w.clinician, given_name="Jordan", family_name="Blake")
    participants = [
        {"client": {"id": scribe.client.pk}, "client_reported_symptoms": "Jordan said the week went well."},
        {"client": {"id": other_jordan.pk}, "client_reported_symptoms": "Quiet."},
    ]
    data = scribe.post(_group(scribe, participants)).json()
    first = data["drafts"][0]
    assert "other_participant" not in first["flags"]["by_kind"]


def test_a_group_with_no_consenting_participant_stores_nothing(scribe, members):
    _, _, alex = members
    response = scribe.post(_group(scribe, [{"client": {"id": alex.pk}}]))
    assert response.status_code == 409
    assert "session.participants" in response.json()["errors"]
    assert not Draft.objects.exists()


def test_an_unknown_participant_refuses_the_whole_group(scribe, members):
    jordan, _, _ = members
    response = scribe.post(_group(scribe, [{"client": {"id": jordan.pk}}, {"client": {"ehr_patient_id": "NOPE"}}]))
    assert response.status_code == 400
    assert "session.participants.1.client" in response.json()["errors"]
    assert not Draft.objects.exists()


def test_a_group_needs_participants_with_clients_and_no_top_level_client(scribe, members):
    jordan, _, _ = members
    assert "session.participants" in scribe.post(_group(scribe, [])).json()["errors"]
    assert "session.participants.0.client" in scribe.post(_group(scribe, [{"name": "X"}])).json()["errors"]
    body = _group(scribe, [{"client": {"id": jordan.pk}}], client={"id": jordan.pk})
    assert "client" in scribe.post(body).json()["errors"]
    assert not Draft.objects.exists()


def test_a_repeated_group_post_returns_the_first_result(scribe, members):
    jordan, sam, _ = members
    body = _group(scribe, [{"client": {"id": jordan.pk}}, {"client": {"id": sam.pk}}], draft_id="group-19")
    first = scribe.post(body)
    again = scribe.post(body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert [d["id"] for d in again.json()["drafts"]] == [d["id"] for d in first.json()["drafts"]]
    assert Draft.objects.count() == 2
