"""Issue 14 §6: a practice admin registers an AI scribe (vendor, model),
creates a key shown once with a copy button and the intake guide's link,
rotates it with the overlap window, revokes it, and sees each key's last use."""

import re
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from notes.models import AISource, AISourceKey
from tests.notes.intake_support import Scribe

pytestmark = pytest.mark.django_db


def _shown_key(page: str) -> str:
    return re.search(r'id="new-key" readonly value="(psk_[^"]+)"', page).group(1)


@pytest.fixture
def source(world):
    from practice_admin.services.scribes import ai_source_register

    return ai_source_register(actor=world.admin, name="Acme Scribe", vendor="Acme AI", model_name="acme-notes")


def test_an_admin_registers_a_scribe_with_vendor_and_model(world, login_as):
    response = login_as(world.admin).post(
        "/practice/scribes/",
        {"name": "Acme Scribe", "vendor": "Acme AI", "model_name": "acme-notes", "model_version": "4"},
    )
    assert response.status_code == 302
    source = AISource.objects.get(practice=world.practice, name="Acme Scribe")
    assert (source.vendor, source.model_name, source.model_version) == ("Acme AI", "acme-notes", "4")
    event = AuditEvent.objects.get(action="ai_source.create")
    assert event.actor_user == world.admin


def test_a_scribe_without_a_vendor_is_a_field_error(world, login_as):
    response = login_as(world.admin).post("/practice/scribes/", {"name": "X", "vendor": " ", "model_name": "m"})
    assert response.status_code == 400
    assert not AISource.objects.filter(name="X").exists()


def test_a_new_key_is_shown_once_with_copy_button_and_guide_and_works(world, login_as, source):
    admin = login_as(world.admin)
    response = admin.post(f"/practice/scribes/{source.pk}/keys/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plain = _shown_key(page)
    key = AISourceKey.objects.get(ai_source=source)
    assert plain.startswith(f"psk_{key.prefix}_")
    assert 'id="copy-key"' in page and "js/copy_key.js" in page
    assert 'href="/practice/scribes/intake-guide/"' in page
    assert AuditEvent.objects.get(action="api_key.create").actor_user == world.admin
    # Never again: the list shows the prefix only.
    listing = admin.get("/practice/scribes/").content.decode()
    assert key.prefix in listing and plain not in listing and plain.split("_", 2)[2] not in listing
    # The guide itself is there for the admin to pass on.
    assert "Authorization: Bearer" in admin.get("/practice/scribes/intake-guide/").content.decode()


def test_last_use_per_key_is_shown(world, login_as, source):
    from practice_admin.services.scribes import admin_key_create
    from tests.factories import client_factory

    used, used_plain = admin_key_create(actor=world.admin, ai_source=source)
    unused, _ = admin_key_create(actor=world.admin, ai_source=source)
    client = client_factory(world.practice, world.clinician)
    scribe = Scribe(world=world, ai_source=source, key=used_plain, client=client)
    assert scribe.post(scribe.payload()).status_code == 201
    used.refresh_from_db()
    assert used.last_used_at is not None
    page = login_as(world.admin).get("/practice/scribes/").content.decode()
    row_used = re.search(rf"psk_{used.prefix}_….*?</tr>", page, re.S).group(0)
    row_unused = re.search(rf"psk_{unused.prefix}_….*?</tr>", page, re.S).group(0)
    # Shown in the practice's time zone.
    shown = timezone.localtime(used.last_used_at, ZoneInfo(world.practice.timezone))
    assert "never" not in row_used and shown.strftime("%Y-%m-%d") in row_used
    assert "never" in row_unused


def test_rotating_shows_the_new_key_and_the_old_keys_end_of_overlap(world, login_as, source):
    from practice_admin.services.scribes import admin_key_create

    old, _ = admin_key_create(actor=world.admin, ai_source=source)
    response = login_as(world.admin).post(f"/practice/scribes/keys/{old.pk}/rotate/")
    page = response.content.decode()
    assert response.status_code == 200
    new = AISourceKey.objects.exclude(pk=old.pk).get(ai_source=source)
    assert _shown_key(page).startswith(f"psk_{new.prefix}_")
    old.refresh_from_db()
    assert old.expires_at is not None and old.revoked_at is None
    assert f"The old key {old.prefix} keeps working until" in page
    assert AuditEvent.objects.get(action="api_key.rotate").actor_user == world.admin


def test_revoking_a_key_refuses_it_at_once(world, login_as, source):
    from practice_admin.services.scribes import admin_key_create
    from tests.factories import client_factory

    key, plain = admin_key_create(actor=world.admin, ai_source=source)
    response = login_as(world.admin).post(f"/practice/scribes/keys/{key.pk}/revoke/")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.get(action="api_key.revoke").actor_user == world.admin
    scribe = Scribe(world=world, ai_source=source, key=plain, client=client_factory(world.practice, world.clinician))
    assert scribe.post(scribe.payload()).status_code == 401


def test_another_practices_scribe_and_keys_are_unreachable(world, login_as):
    from notes.api_keys import ai_source_key_create
    from tests.factories import ai_source_factory

    theirs = ai_source_factory(world.other_practice)
    key, _ = ai_source_key_create(ai_source=theirs)
    admin = login_as(world.admin)
    assert admin.post(f"/practice/scribes/{theirs.pk}/keys/").status_code == 404
    assert admin.post(f"/practice/scribes/keys/{key.pk}/rotate/").status_code == 404
    assert admin.post(f"/practice/scribes/keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and key.expires_at is None
    assert AISourceKey.objects.filter(ai_source=theirs).count() == 1
    listing = admin.get("/practice/scribes/").content.decode()
    assert theirs.name not in listing and key.prefix not in listing
