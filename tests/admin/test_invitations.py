"""A practice admin invites a person by email; the link works once, expires,
is stored only as a hash, and accepting it sets the person's own password."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client as DjangoClient
from django.utils import timezone

from accounts import services
from accounts.models import Invitation
from notes.models import Membership
from operations.access_log import MaskingLogger
from tests.admin.helpers import (
    NEW_PASSWORD,
    accept_and_enroll,
    invite,
    last_event,
    link_from_last_email,
    path_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser(world, login_as):
    return login_as(world.admin)


def _accept(link: str, password: str = NEW_PASSWORD):
    browser = DjangoClient()
    browser.get(path_of(link))
    return browser, browser.post("/accounts/invitation/accept/", {"password1": password, "password2": password})


def test_inviting_a_clinician_emails_a_link_and_stores_only_the_tokens_hash(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(
            admin_browser,
            "New.Clinician@Example.org",
            first_name="Sam",
            last_name="Okafor",
            credentials="LCSW",
            licence_type="LCSW (NY)",
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "new.clinician@example.org"
    assert (invitation.role, invitation.credentials, invitation.licence_type) == ("clinician", "LCSW", "LCSW (NY)")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.clinician@example.org"]
    token = path_of(link_from_last_email()).rstrip("/").rsplit("/", 1)[1]
    assert invitation.token_hash == services.token_hash(token) and token not in invitation.token_hash
    # The admin's page never shows the link.
    assert token not in admin_browser.get("/practice/people/").content.decode()
    event = last_event("invitation.create")
    assert event.actor_user == world.admin and event.detail["role"] == "clinician"
    assert token not in str(event.detail)


def test_accepting_creates_the_member_with_the_invited_role_and_details(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(
            admin_browser,
            "sam@example.org",
            first_name="Sam",
            last_name="Okafor",
            credentials="PsyD",
            pre_licensed="on",
            supervisor=world.clinician.pk,
        )
    _, response = _accept(link_from_last_email())
    assert response.status_code == 302 and response["Location"] == "/accounts/enroll/"
    user = get_user_model().objects.get(username="sam@example.org")
    assert user.check_password(NEW_PASSWORD)
    membership = user.membership
    assert (membership.practice, membership.role, membership.credentials) == (world.practice, "clinician", "PsyD")
    assert membership.pre_licensed and membership.supervisor == world.clinician
    assert user.get_full_name() == "Sam Okafor"  # the invitation's spelling when none is typed
    assert Invitation.objects.get().accepted_user == user
    assert last_event("invitation.accept").actor_user == user


def test_the_session_keeps_only_the_tokens_hash_which_opens_no_invitation(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "hashed@example.org")
    link = link_from_last_email()
    token = path_of(link).rstrip("/").rsplit("/", 1)[1]
    browser = DjangoClient()
    assert browser.get(path_of(link), follow=True).status_code == 200
    stored = Session.objects.get(session_key=browser.session.session_key)
    decoded = stored.get_decoded()
    assert token not in stored.session_data and token not in str(decoded)
    assert services.token_hash(token) in decoded.values()
    # What a reader of the session store finds does not open the invitation.
    for value in decoded.values():
        refused = DjangoClient().get(f"/accounts/invitation/{value}/", follow=True)
        assert refused.status_code == 404
    # The browser that opened the link still accepts it.
    response = browser.post("/accounts/invitation/accept/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/enroll/"
    assert get_user_model().objects.filter(username="hashed@example.org").exists()


def _access_atoms(path: str, referer: str = "-") -> dict:
    from datetime import timedelta as duration

    from gunicorn.config import Config

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": referer,
    }
    response = SimpleNamespace(status="302 Found", sent=0, headers=[("X-Request-Id", "r-1")])
    request = SimpleNamespace(headers=[("REFERER", referer)])
    logger = MaskingLogger(Config())
    try:
        return logger.atoms(response, request, environ, duration(milliseconds=3))
    finally:
        # gunicorn's Logger puts stream handlers on its two loggers; they must
        # not outlive the test (no handler here may lack the PHI filter).
        for log in (logger.error_log, logger.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)


def test_the_access_log_masks_the_invitation_token_in_every_atom():
    token = "Zq3-secret_Token0123456789abcdefghijklmnopq"
    atoms = _access_atoms(
        f"/accounts/invitation/{token}/", referer=f"https://psyfi.example/accounts/invitation/{token}/"
    )
    assert atoms["U"] == "/accounts/invitation/…/"
    assert atoms["r"] == "GET /accounts/invitation/…/ HTTP/1.1"
    assert atoms["f"] == "https://psyfi.example/accounts/invitation/…/"
    assert not [key for key, value in atoms.items() if token in str(value)]
    # Paths without a token are logged as they are.
    assert _access_atoms("/accounts/invitation/accept/")["U"] == "/accounts/invitation/accept/"
    assert _access_atoms("/queue/")["U"] == "/queue/"


def test_an_invitation_link_works_only_once(world, admin_browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "once@example.org")
    link = link_from_last_email()
    _accept(link)
    browser, response = _accept(link, password="another fine passphrase 7")
    assert response.status_code == 404
    assert "already used" in response.content.decode()
    assert get_user_model().objects.filter(username="once@example.org").count() == 1
    assert get_user_model().objects.get(username="once@example.org").check_password(NEW_PASSWORD)


def test_an_expired_invitation_is_refused_and_says_so(world, admin_browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "late@example.org")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _, response = _accept(link_from_last_email())
    assert response.status_code == 404 and "expired" in response.content.decode()
    assert not get_user_model().objects.filter(username="late@example.org").exists()


def test_a_revoked_invitation_is_refused(world, admin_browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "revoked@example.org")
    invitation = Invitation.objects.get()
    assert admin_browser.post(f"/practice/invitations/{invitation.pk}/revoke/").status_code == 302
    _, response = _accept(link_from_last_email())
    assert response.status_code == 404 and "withdrawn" in response.content.decode()
    assert last_event("invitation.revoke").actor_user == world.admin


def test_resending_replaces_the_link_and_the_old_one_stops_working(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "resend@example.org")
    first = link_from_last_email()
    invitation = Invitation.objects.get()
    Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))  # resend also revives an expired one
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_browser.post(f"/practice/invitations/{invitation.pk}/resend/").status_code == 302
    second = link_from_last_email()
    assert first != second and len(mail.outbox) == 2
    _, response = _accept(first)
    assert response.status_code == 404
    _, response = _accept(second)
    assert response.status_code == 302
    assert last_event("invitation.resend").actor_user == world.admin


def test_a_weak_password_is_refused_with_the_validators_message_and_nothing_is_created(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "weak@example.org")
    browser, response = _accept(link_from_last_email(), password="password")
    assert response.status_code == 400
    assert "too common" in response.content.decode()
    assert not get_user_model().objects.filter(username="weak@example.org").exists()
    assert Invitation.objects.get().accepted_at is None
    # The same link still works with a good password.
    response = browser.post("/accounts/invitation/accept/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302


def test_inviting_an_address_that_has_an_account_or_an_open_invitation_is_refused(world, admin_browser):
    world.clinician.email = "taken@example.org"
    world.clinician.save()
    response = invite(admin_browser, "TAKEN@example.org")
    assert response.status_code == 400 and "already has an account" in response.content.decode()
    assert invite(admin_browser, "twice@example.org").status_code == 302
    response = invite(admin_browser, "twice@example.org")
    assert response.status_code == 400 and "already has an open invitation" in response.content.decode()
    assert Invitation.objects.count() == 1


def test_a_pre_licensed_clinician_needs_a_licensed_clinician_of_the_practice_as_supervisor(world, admin_browser):
    response = invite(admin_browser, "pre@example.org", pre_licensed="on")
    assert response.status_code == 400 and "needs a supervisor" in response.content.decode()
    response = invite(admin_browser, "pre@example.org", pre_licensed="on", supervisor=world.outsider.pk)
    assert response.status_code == 400  # not a choice: another practice's clinician
    assert not Invitation.objects.exists()


def test_only_a_practice_admin_can_invite_and_only_in_their_own_practice(world, login_as):
    assert invite(login_as(world.clinician), "x@example.org").status_code == 403
    other_admin = Membership.objects.create(
        user=get_user_model().objects.create_user("otheradmin"), practice=world.other_practice, role="practice_admin"
    )
    invitation, _ = services.invitation_create(
        practice=world.practice, email="y@example.org", role="auditor", actor=world.admin
    )
    with pytest.raises(services.NotPermitted):
        services.invitation_revoke(invitation=invitation, actor=other_admin.user)
    admin_browser = login_as(world.admin)
    other_invitation, _ = services.invitation_create(
        practice=world.other_practice, email="z@example.org", role="auditor", actor=None
    )
    assert admin_browser.post(f"/practice/invitations/{other_invitation.pk}/revoke/").status_code == 404
    assert Invitation.objects.get(pk=other_invitation.pk).revoked_at is None


def test_a_non_clinician_invitation_drops_clinician_fields(world):
    invitation, _ = services.invitation_create(
        practice=world.practice,
        email="qa@example.org",
        role="qa_reviewer",
        credentials="PhD",
        supervisor=world.clinician,
        actor=world.admin,
    )
    assert invitation.credentials == "" and invitation.supervisor is None


def test_the_full_acceptance_leaves_a_member_who_can_log_in_with_password_and_code(
    world, admin_browser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(admin_browser, "full@example.org", role="qa_reviewer")
    browser, page, uri = accept_and_enroll(link_from_last_email())
    assert browser.get("/signed/").status_code == 200


def test_the_person_can_correct_their_name_when_accepting(world):
    invitation, token = services.invitation_create(
        practice=world.practice, email="ana@example.org", first_name="Anna", role="auditor", actor=world.admin
    )
    browser = DjangoClient()
    browser.get(f"/accounts/invitation/{token}/")
    page = browser.get("/accounts/invitation/accept/").content.decode()
    assert 'value="Anna"' in page
    browser.post(
        "/accounts/invitation/accept/",
        {"first_name": "Ana", "last_name": "Lima", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert get_user_model().objects.get(username="ana@example.org").get_full_name() == "Ana Lima"
