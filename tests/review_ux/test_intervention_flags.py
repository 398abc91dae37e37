"""Issue 17, point 2: an intervention outside the vocabulary is fixed in
place: one-click nearest terms, a search of the practice's vocabulary, or
"keep as written" (text only, never coded: invariant 8) proposed to the
practice admin, who accepts (the term joins the vocabulary) or declines."""

import pytest

from audit.models import AuditEvent
from notes import review_services, vocabulary_services
from notes.errors import DomainError, NotPermitted
from notes.models import Flag, InterventionProposal, InterventionTerm
from tests.factories import ai_output, note_factory


def _note(world, term="EMDR-lite"):
    note = note_factory(
        practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["CBT", term])
    )
    return note, note.flags.get(kind=Flag.Kind.UNKNOWN_INTERVENTION)


def test_the_review_page_offers_search_and_keep_as_written_with_what_it_means(world, login_as):
    note, flag = _note(world)
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    assert f'action="/notes/{note.pk}/flags/{flag.pk}/choose-term/"' in html
    assert 'class="vocabulary-search"' in html and "search the practice's vocabulary" in html
    assert f'action="/notes/{note.pk}/flags/{flag.pk}/keep-term/"' in html
    assert "Keep “EMDR-lite” as written and propose it" in html
    assert "not coded as an intervention" in html


def test_the_vocabulary_search_finds_terms_and_synonyms_of_my_practice_only(world, login_as):
    InterventionTerm.objects.create(practice=world.other_practice, term="Motivational fishing")
    web = login_as(world.clinician)
    # "motivational interviewing" is a synonym of MI.
    assert web.get("/vocabulary/search/", {"q": "motivational"}).json()["results"] == ["MI"]
    assert web.get("/vocabulary/search/", {"q": "cbt"}).json()["results"] == ["CBT", "Trauma-focused CBT"]
    assert web.get("/vocabulary/search/", {"q": ""}).json()["results"] == []
    assert login_as(world.admin).get("/vocabulary/search/", {"q": "cbt"}).status_code == 403


def test_a_searched_term_fixes_the_flag_through_the_vocabulary(world, login_as):
    note, flag = _note(world)
    web = login_as(world.clinician)
    web.get(f"/notes/{note.pk}/review/")
    refused = web.post(f"/notes/{note.pk}/flags/{flag.pk}/choose-term/", {"term": "Reiki"})
    assert refused.status_code == 400 and "not in the practice" in refused.content.decode()
    assert web.post(f"/notes/{note.pk}/flags/{flag.pk}/choose-term/", {"term": "mindfulness"}).status_code == 302
    flag.refresh_from_db()
    assert flag.resolved_at is not None
    assert "Mindfulness" in note.sections.get(key=flag.section_key).codes


def test_keeping_a_term_as_written_puts_it_in_the_text_not_the_codes_and_proposes_it(world, login_as):
    note, flag = _note(world)
    web = login_as(world.clinician)
    web.get(f"/notes/{note.pk}/review/")
    response = web.post(f"/notes/{note.pk}/flags/{flag.pk}/keep-term/")
    assert response.status_code == 302
    flag.refresh_from_db()
    section = note.sections.get(key=flag.section_key)
    assert flag.resolved_at is not None and "not coded" in flag.resolution
    assert "EMDR-lite" in section.text
    assert "EMDR-lite" not in section.codes
    proposal = InterventionProposal.objects.get(practice=world.practice)
    assert (proposal.term, proposal.proposed_by, proposal.note_id, proposal.state) == (
        "EMDR-lite",
        world.clinician,
        note.pk,
        "proposed",
    )
    assert AuditEvent.objects.filter(action="vocabulary.propose", object_id=str(proposal.pk)).count() == 1


def test_a_second_note_keeping_the_same_term_adds_no_second_proposal(world):
    _, first = _note(world)
    _, second = _note(world, term="emdr-LITE")
    review_services.flag_keep_intervention_as_written(flag=first, actor=world.clinician)
    review_services.flag_keep_intervention_as_written(flag=second, actor=world.clinician)
    assert InterventionProposal.objects.filter(practice=world.practice).count() == 1


def test_only_the_notes_clinician_may_keep_a_term(world):
    _, flag = _note(world)
    with pytest.raises(DomainError):
        review_services.flag_keep_intervention_as_written(flag=flag, actor=world.colleague)
    assert not InterventionProposal.objects.exists()


def test_the_practice_admin_accepts_a_proposal_and_the_next_draft_codes_the_term(world, login_as):
    _, flag = _note(world)
    proposal = review_services.flag_keep_intervention_as_written(flag=flag, actor=world.clinician)
    web = login_as(world.admin)
    page = web.get("/vocabulary/proposals/").content.decode()
    assert "EMDR-lite" in page and "Add “EMDR-lite” to the vocabulary" in page
    assert web.post(f"/vocabulary/proposals/{proposal.pk}/accept/").status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == "accepted" and proposal.decided_by == world.admin
    assert InterventionTerm.objects.filter(practice=world.practice, term="EMDR-lite", is_active=True).exists()
    assert AuditEvent.objects.filter(action="vocabulary.term_add").count() == 1
    assert AuditEvent.objects.filter(action="vocabulary.proposal_accept", object_id=str(proposal.pk)).exists()

    later = note_factory(
        practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["EMDR-lite"])
    )
    assert not later.flags.filter(kind=Flag.Kind.UNKNOWN_INTERVENTION).exists()
    assert "EMDR-lite" in later.sections.get(key=flag.section_key).codes
    # Deciding twice is refused with a message, nothing changes.
    again = web.post(f"/vocabulary/proposals/{proposal.pk}/decline/", follow=True)
    assert "already accepted" in again.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == "accepted"


def test_declining_leaves_the_vocabulary_unchanged_and_is_audited(world, login_as):
    _, flag = _note(world)
    proposal = review_services.flag_keep_intervention_as_written(flag=flag, actor=world.clinician)
    before = InterventionTerm.objects.count()
    assert login_as(world.admin).post(f"/vocabulary/proposals/{proposal.pk}/decline/").status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == "declined" and InterventionTerm.objects.count() == before
    assert AuditEvent.objects.filter(action="vocabulary.proposal_decline", object_id=str(proposal.pk)).exists()


def test_clinicians_and_other_practices_cannot_decide(world, login_as):
    _, flag = _note(world)
    proposal = review_services.flag_keep_intervention_as_written(flag=flag, actor=world.clinician)
    assert login_as(world.clinician).post(f"/vocabulary/proposals/{proposal.pk}/accept/").status_code == 403
    with pytest.raises(NotPermitted):
        vocabulary_services.intervention_proposal_accept(proposal=proposal, actor=world.clinician)
    from notes.models import Membership
    from tests.factories import member_factory

    other_admin = member_factory(world.other_practice, Membership.Role.PRACTICE_ADMIN).user
    other = login_as(other_admin)
    assert other.post(f"/vocabulary/proposals/{proposal.pk}/accept/").status_code == 404
    assert "EMDR-lite" not in other.get("/vocabulary/proposals/").content.decode()
    proposal.refresh_from_db()
    assert proposal.state == "proposed"
