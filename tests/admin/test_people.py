"""The practice admin's people page: deactivate (sessions end at once),
reset a second factor (re-enroll at next login), change a role. Every action
is an audit event naming the admin; no secret is ever on the page."""

import pytest
from django.test import Client as DjangoClient
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from notes.errors import DomainError
from notes.models import Membership
from tests.admin.helpers import backup_codes, code_for, last_event, otpauth_from_page
from tests.factories import PASSWORD, member_factory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser(world, login_as):
    return login_as(world.admin)


def test_the_people_page_lists_members_with_no_secret(world, admin_browser):
    html = admin_browser.get("/practice/people/").content.decode()
    assert world.clinician.username in html and world.auditor.username in html
    for device in TOTPDevice.objects.filter(user__membership__practice=world.practice):
        assert device.key not in html
    for token in StaticToken.objects.filter(device__user__membership__practice=world.practice):
        assert token.token not in html
    assert world.outsider.username not in html


def test_the_people_page_is_for_practice_admins_only(world, login_as):
    for user in (world.clinician, world.qa, world.auditor):
        assert login_as(user).get("/practice/people/").status_code == 403


def test_a_deactivated_members_open_session_is_refused_on_the_next_request(world, admin_browser, login_as):
    clinician_browser = login_as(world.clinician)
    assert clinician_browser.get("/queue/").status_code == 200
    membership = world.clinician.membership
    response = admin_browser.post(f"/practice/people/{membership.pk}/deactivate/")
    assert response.status_code == 302
    refused = clinician_browser.get("/queue/")
    assert refused.status_code == 302 and refused["Location"].startswith("/login/")
    # And the API refuses the session too.
    assert clinician_browser.get("/api/v1/notes").status_code in (401, 403)
    event = last_event("member.deactivate")
    assert event.actor_user == world.admin and event.object_id == str(membership.pk)


def test_a_deactivated_member_cannot_log_in_again_until_reactivated(world, admin_browser):
    from tests.factories import totp_now

    membership = world.colleague.membership
    admin_browser.post(f"/practice/people/{membership.pk}/deactivate/")
    login = {"username": world.colleague.username, "password": PASSWORD, "otp_token": totp_now(world.colleague)}
    assert DjangoClient().post("/login/", login).status_code == 200
    admin_browser.post(f"/practice/people/{membership.pk}/reactivate/")
    assert DjangoClient().post("/login/", login).status_code == 302
    assert last_event("member.reactivate").actor_user == world.admin


def test_reactivating_a_member_does_not_bring_back_a_session_from_before_the_deactivation(
    world, admin_browser, login_as
):
    clinician_browser = login_as(world.clinician)
    assert clinician_browser.get("/queue/").status_code == 200
    membership = world.clinician.membership
    admin_browser.post(f"/practice/people/{membership.pk}/deactivate/")
    admin_browser.post(f"/practice/people/{membership.pk}/reactivate/")
    refused = clinician_browser.get("/queue/")
    assert refused.status_code == 302 and refused["Location"].startswith("/login/")
    assert "_auth_user_id" not in clinician_browser.session
    assert last_event("member.deactivate").detail["sessions_ended"] == 1


def test_the_last_active_admin_cannot_be_deactivated_or_demoted_and_nobody_deactivates_themself(world, admin_browser):
    admin_membership = world.admin.membership
    with pytest.raises(DomainError, match="yourself"):
        services.member_deactivate(membership=admin_membership, actor=world.admin)
    second_admin = member_factory(world.practice, Membership.Role.PRACTICE_ADMIN).user
    services.member_deactivate(membership=second_admin.membership, actor=world.admin)
    with pytest.raises(DomainError, match="at least one active practice admin"):
        services.member_role_change(membership=admin_membership, role="clinician", actor=world.admin)
    Membership.objects.filter(pk=admin_membership.pk).update(is_active=True)
    assert Membership.objects.get(pk=admin_membership.pk).role == "practice_admin"


def test_resetting_a_second_factor_removes_the_devices_and_the_member_re_enrolls_at_next_login(
    world, admin_browser, login_as
):
    clinician_browser = login_as(world.clinician)
    membership = world.clinician.membership
    assert admin_browser.post(f"/practice/people/{membership.pk}/reset-second-factor/").status_code == 302
    assert not TOTPDevice.objects.filter(user=world.clinician).exists()
    assert not StaticDevice.objects.filter(user=world.clinician).exists()
    # The open session was verified by a device that no longer exists.
    assert clinician_browser.get("/queue/").status_code == 302
    event = last_event("member.otp_reset")
    assert event.actor_user == world.admin and event.object_id == str(membership.pk)

    browser = DjangoClient()
    response = browser.post("/login/", {"username": world.clinician.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/enroll/"
    assert browser.get("/queue/").status_code == 302  # the password alone reaches nothing else
    uri = otpauth_from_page(browser.get("/accounts/enroll/").content.decode())
    done = browser.post("/accounts/enroll/", {"otp_token": code_for(uri)})
    assert len(backup_codes(done.content.decode())) == 10
    assert browser.get("/queue/").status_code == 200


def test_a_session_open_before_a_reset_cannot_enroll_an_authenticator(world, admin_browser, login_as):
    """A session logged in before the reset (say on a lost or shared device)
    would keep its password login once the devices are gone: the reset ends
    it, so it never reaches enrollment and cannot put its holder's
    authenticator on the account."""
    old = login_as(world.clinician)
    membership = world.clinician.membership
    assert admin_browser.post(f"/practice/people/{membership.pk}/reset-second-factor/").status_code == 302
    page = old.get("/accounts/enroll/")
    assert page.status_code == 302 and page["Location"].startswith("/login")
    posted = old.post("/accounts/enroll/", {"otp_token": "123456"})
    assert posted.status_code == 302 and posted["Location"].startswith("/login")
    assert not TOTPDevice.objects.filter(user=world.clinician).exists()
    assert last_event("member.otp_reset").detail["sessions_ended"] == 1


def test_a_wrong_password_never_reaches_enrollment_after_a_reset(world):
    services.member_otp_reset(membership=world.clinician.membership, actor=world.admin)
    response = DjangoClient().post("/login/", {"username": world.clinician.username, "password": "wrong"})
    assert response.status_code == 200


def test_changing_a_role_changes_access_and_is_audited(world, admin_browser, login_as):
    membership = world.qa.membership
    response = admin_browser.post(f"/practice/people/{membership.pk}/role/", {"role": "auditor"})
    assert response.status_code == 302
    assert Membership.objects.get(pk=membership.pk).role == "auditor"
    assert login_as(world.qa).get("/audit/").status_code == 200
    event = last_event("member.role_change")
    assert event.actor_user == world.admin
    assert (event.before, event.after) == ({"role": "qa_reviewer"}, {"role": "auditor"})


def test_an_unknown_role_is_refused_with_a_message(world, admin_browser):
    membership = world.qa.membership
    response = admin_browser.post(f"/practice/people/{membership.pk}/role/", {"role": "superuser"}, follow=True)
    assert "Choose a role" in response.content.decode()
    assert Membership.objects.get(pk=membership.pk).role == "qa_reviewer"


def test_another_practices_member_is_a_404(world, admin_browser):
    outsider = world.outsider.membership
    assert admin_browser.post(f"/practice/people/{outsider.pk}/deactivate/").status_code == 404
    assert Membership.objects.get(pk=outsider.pk).is_active


def test_the_auditor_reads_the_people_actions_with_the_admin_named(world, admin_browser, login_as):
    admin_browser.post(f"/practice/people/{world.qa.membership.pk}/role/", {"role": "auditor"})
    admin_browser.post(f"/practice/people/{world.colleague.membership.pk}/deactivate/")
    response = login_as(world.auditor).get("/audit/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "member.role_change" in html and "member.deactivate" in html
    assert world.admin.get_full_name() in html


def test_an_admin_edits_a_clinicians_credentials_licence_and_supervisor(world, admin_browser):
    membership = world.colleague.membership
    response = admin_browser.post(
        f"/practice/people/{membership.pk}/clinician/",
        {
            "credentials": "LMFT",
            "licence_type": "Associate MFT",
            "pre_licensed": "on",
            "supervisor": world.clinician.pk,
        },
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.credentials, membership.licence_type) == ("LMFT", "Associate MFT")
    assert membership.pre_licensed and membership.supervisor == world.clinician
    event = last_event("member.details_change")
    assert event.actor_user == world.admin and event.after["supervisor_id"] == world.clinician.pk


def test_clinician_details_refuse_a_missing_or_foreign_supervisor_and_non_clinicians(world, admin_browser):
    membership = world.colleague.membership
    response = admin_browser.post(f"/practice/people/{membership.pk}/clinician/", {"pre_licensed": "on"}, follow=True)
    assert "needs a supervisor" in response.content.decode()
    response = admin_browser.post(
        f"/practice/people/{membership.pk}/clinician/", {"supervisor": world.outsider.pk}, follow=True
    )
    assert "Supervisor" in response.content.decode()
    with pytest.raises(DomainError, match="Only clinicians"):
        services.member_clinician_details_update(
            membership=world.qa.membership,
            credentials="PhD",
            licence_type="",
            pre_licensed=False,
            supervisor=None,
            actor=world.admin,
        )
    membership.refresh_from_db()
    assert not membership.pre_licensed and membership.supervisor is None


def test_a_clinician_with_notes_awaiting_co_signature_cannot_be_made_licensed(world):
    # The admin's clinician form keeps the co-signature rule: notes signed
    # while pre-licensed keep their supervisor until co-signed or returned.
    from tests.factories import note_factory, note_sign_now

    membership = world.colleague.membership
    services.member_clinician_details_update(
        membership=membership,
        credentials="",
        licence_type="",
        pre_licensed=True,
        supervisor=world.clinician,
        actor=world.admin,
    )
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.colleague), world.colleague)
    assert note.state == "awaiting_cosign"
    with pytest.raises(DomainError, match="await co-signature"):
        services.member_clinician_details_update(
            membership=membership,
            credentials="",
            licence_type="",
            pre_licensed=False,
            supervisor=None,
            actor=world.admin,
        )
    membership.refresh_from_db()
    assert membership.pre_licensed and membership.supervisor == world.clinician
