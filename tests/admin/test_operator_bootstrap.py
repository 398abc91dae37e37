"""manage.py practice_create: the operator's first step after deployment."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as DjangoClient

from accounts.models import Invitation
from audit.models import AuditEvent
from notes.models import NoteTemplate, Practice
from tests.admin.helpers import NEW_PASSWORD, path_of

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command("practice_create", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_practice_with_soap_and_dap_and_prints_a_one_time_admin_link():
    out = _run(
        "--name",
        "Harbor Light Therapy",
        "--admin-email",
        "Owner@Harbor.example",
        "--base-url",
        "https://psyfi.harbor.example",
    )
    practice = Practice.objects.get(slug="harbor-light-therapy")
    assert set(NoteTemplate.objects.filter(practice=practice).values_list("key", flat=True)) >= {"soap", "dap"}
    invitation = Invitation.objects.get(practice=practice)
    assert (invitation.email, invitation.role) == ("owner@harbor.example", "practice_admin")
    link = next(
        line for line in out.splitlines() if line.startswith("https://psyfi.harbor.example/accounts/invitation/")
    )
    token = path_of(link).rstrip("/").rsplit("/", 1)[1]
    assert token not in invitation.token_hash
    event = AuditEvent.objects.get(practice=practice, action="invitation.create")
    assert event.actor_type == "system" and event.actor_label == "operator"

    browser = DjangoClient()
    browser.get(path_of(link))
    response = browser.post("/accounts/invitation/accept/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert practice.memberships.get().role == "practice_admin"


def test_the_command_takes_no_password():
    with pytest.raises(CommandError):
        call_command("practice_create", "--name", "X", "--admin-email", "a@example.org", "--password", "secret")


def test_a_duplicate_short_name_or_a_bad_time_zone_stops_with_a_message_and_writes_nothing():
    _run("--name", "Cedar Clinic", "--admin-email", "a@cedar.example")
    with pytest.raises(CommandError, match="already exists"):
        _run("--name", "Cedar Clinic", "--admin-email", "b@cedar.example")
    with pytest.raises(CommandError, match="not a time zone"):
        _run("--name", "Elm Clinic", "--admin-email", "c@elm.example", "--timezone", "Nowhere/Land")
    with pytest.raises(CommandError, match="valid email"):
        _run("--name", "Oak Clinic", "--admin-email", "not-an-address")
    assert list(Practice.objects.values_list("slug", flat=True)) == ["cedar-clinic"]
    assert Invitation.objects.count() == 1


def test_a_lost_first_admin_link_is_replaced_by_practice_admin_invite():
    first = _run("--name", "Birch Clinic", "--admin-email", "owner@birch.example")
    first_link = next(line for line in first.splitlines() if "/accounts/invitation/" in line)
    out = StringIO()
    call_command(
        "practice_admin_invite", "--practice", "birch-clinic", "--admin-email", "owner@birch.example", stdout=out
    )
    new_link = next(line for line in out.getvalue().splitlines() if "/accounts/invitation/" in line)
    assert new_link != first_link and Invitation.objects.count() == 1
    browser = DjangoClient()
    browser.get(path_of(first_link))
    assert browser.get("/accounts/invitation/accept/").status_code == 404
    browser.get(path_of(new_link))
    assert browser.get("/accounts/invitation/accept/").status_code == 200
    event = AuditEvent.objects.filter(action="invitation.resend").get()
    assert event.actor_label == "operator"
    with pytest.raises(CommandError, match="No practice"):
        call_command("practice_admin_invite", "--practice", "nope", "--admin-email", "x@example.org")
