"""Reads for the people pages, scoped to the admin's practice: another
practice's member or invitation is a 404."""

from django.http import Http404
from django.utils import timezone

from accounts.models import Invitation
from notes.models import Membership
from notes.roles import Role, membership_of


def _admin_practice_id(user) -> int:
    membership = membership_of(user)
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        raise Http404
    return membership.practice_id


def members_for_admin(*, user) -> list[Membership]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    members = list(
        Membership.objects.filter(practice_id=_admin_practice_id(user))
        .select_related("user", "supervisor")
        .order_by("-is_active", "user__last_name", "user__first_name")
    )
    # Whether each has an authenticator, in one query (never the device itself).
    enrolled = set(
        TOTPDevice.objects.filter(user__in=[m.user_id for m in members], confirmed=True).values_list(
            "user_id", flat=True
        )
    )
    for member in members:
        member.has_authenticator = member.user_id in enrolled
    return members


def invitations_for_admin(*, user) -> list[Invitation]:
    """Open invitations (pending or expired), newest first."""
    now = timezone.now()
    invitations = list(
        Invitation.objects.filter(
            practice_id=_admin_practice_id(user), accepted_at__isnull=True, revoked_at__isnull=True
        )
        .select_related("created_by")
        .order_by("-created_at")
    )
    for invitation in invitations:
        invitation.state = invitation.state_at(now)
    return invitations


def member_get_for_admin(*, user, membership_id: int) -> Membership:
    try:
        return Membership.objects.select_related("user").get(pk=membership_id, practice_id=_admin_practice_id(user))
    except Membership.DoesNotExist as exc:
        raise Http404 from exc


def invitation_get_for_admin(*, user, invitation_id: int) -> Invitation:
    try:
        return Invitation.objects.get(pk=invitation_id, practice_id=_admin_practice_id(user))
    except Invitation.DoesNotExist as exc:
        raise Http404 from exc
