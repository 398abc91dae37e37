"""`manage.py post_demo_drafts` plays the scribe against a running server,
through the real endpoint over HTTP."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from notes.api_keys import ai_source_key_create
from notes.demo_data import demo_practice_seed
from notes.models import AISource, Draft, Note


@pytest.mark.django_db(transaction=True)
def test_the_demo_drafts_arrive_through_the_api(live_server):
    practice = demo_practice_seed()
    seeded = Draft.objects.count()
    _, key = ai_source_key_create(ai_source=AISource.objects.get(practice=practice))
    out = StringIO()
    call_command("post_demo_drafts", url=live_server.url, key=key, stdout=out)
    text = out.getvalue()
    posted = Draft.objects.exclude(external_id="")
    assert posted.count() == Draft.objects.count() - seeded > 0
    assert "HTTP 201" in text and "HTTP 200" in text  # the repeat is answered with the first result
    assert "blocked" in text and "HIGH RISK" in text and "skipped client" in text
    assert Note.objects.filter(draft__in=posted, draft__session_type="group").count() == 2
    # It went through the API: the drafts' audit events name the key it used.
    prefix = key.split("_", 2)[1]
    drafted = AuditEvent.objects.filter(action="note.draft", detail__api_key=prefix)
    assert drafted.count() == posted.count()


@pytest.mark.django_db(transaction=True)
def test_create_key_makes_a_key_and_uses_it(live_server):
    demo_practice_seed()
    out = StringIO()
    call_command("post_demo_drafts", url=live_server.url, create_key=True, stdout=out)
    assert "shown once" in out.getvalue() and "psk_" in out.getvalue()
    assert Draft.objects.exclude(external_id="").exists()


@pytest.mark.django_db(transaction=True)
def test_a_server_that_refuses_the_key_stops_the_command(live_server):
    practice = demo_practice_seed()
    key_row, key = ai_source_key_create(ai_source=AISource.objects.get(practice=practice))
    from notes.api_keys import ai_source_key_revoke

    ai_source_key_revoke(key=key_row)
    with pytest.raises(CommandError, match="401"):
        call_command("post_demo_drafts", url=live_server.url, key=key, stdout=StringIO())
