"""Issue #17, point 8: demo data that makes sense. The seeded queue has a
batch of clean drafts to try at once, and `post_demo_drafts` posts new
synthetic sessions rather than the seeded ones again."""

from io import StringIO

import pytest
from django.core.management import call_command

from notes.api_keys import ai_source_key_create
from notes.demo_data import demo_practice_seed
from notes.models import AISource, Draft, Note


def _clean(notes):
    return [
        n
        for n in notes
        if n.state == Note.State.DRAFT
        and not n.blocked_reason
        and n.client.active_consent is not None
        and not n.flags.filter(resolved_at__isnull=True).exists()
    ]


def _texts(draft: Draft) -> set[str]:
    return {v for k, v in draft.payload.items() if isinstance(v, str) and len(v) > 40}


@pytest.mark.django_db
def test_the_seeded_demo_has_at_least_five_clean_drafts_ready_for_a_batch():
    practice = demo_practice_seed()
    notes = Note.objects.filter(client__practice=practice).select_related("client").prefetch_related("client__consents")
    clean = _clean(notes)
    assert len(clean) >= 5, [(n.client.ehr_patient_id, list(n.flags.values_list("kind", flat=True))) for n in notes]
    # Still something to review: the seeded queue also shows flags, a high-risk note and a blocked one.
    assert any(n.flags.filter(resolved_at__isnull=True).exists() for n in notes)


@pytest.mark.django_db(transaction=True)
def test_posting_demo_drafts_twice_adds_new_sessions_never_a_seeded_or_earlier_one_again(live_server):
    practice = demo_practice_seed()
    seeded = list(Draft.objects.all())
    _, key = ai_source_key_create(ai_source=AISource.objects.get(practice=practice))

    call_command("post_demo_drafts", url=live_server.url, key=key, stdout=StringIO())
    first_run = list(Draft.objects.exclude(pk__in=[d.pk for d in seeded]))
    call_command("post_demo_drafts", url=live_server.url, key=key, stdout=StringIO())
    second_run = list(Draft.objects.exclude(pk__in=[d.pk for d in seeded + first_run]))

    assert first_run and second_run
    # A draft is one person's session: no client has two drafts for the same session time.
    sessions = [(d.client_id, d.session_start) for d in seeded + first_run + second_run if d.client_id]
    assert len(sessions) == len(set(sessions))
    # New ids and new text: nothing posted repeats a seeded draft's narrative.
    assert not {d.external_id for d in first_run} & {d.external_id for d in second_run}
    seeded_text = set().union(*(_texts(d) for d in seeded))
    for draft in first_run + second_run:
        assert not (_texts(draft) & seeded_text), draft.external_id
    # Varied: the two runs do not post one text for everybody.
    posted_text = [
        frozenset(_texts(d)) for d in first_run + second_run if d.session_type == Draft.SessionType.INDIVIDUAL
    ]
    assert len(set(posted_text)) >= 4


@pytest.mark.django_db(transaction=True)
def test_posted_demo_drafts_include_clean_ones_to_sign(live_server):
    practice = demo_practice_seed()
    seeded = set(Note.objects.values_list("pk", flat=True))
    _, key = ai_source_key_create(ai_source=AISource.objects.get(practice=practice))
    call_command("post_demo_drafts", url=live_server.url, key=key, stdout=StringIO())
    posted = Note.objects.exclude(pk__in=seeded).select_related("client").prefetch_related("client__consents")
    assert len(_clean(posted)) >= 3
