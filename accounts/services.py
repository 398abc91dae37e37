"""People and practice settings: invitations, second-factor enrollment, backup
codes, deactivation, role changes, password changes, practice settings.

Each function takes keyword-only arguments and the actor, runs in one
transaction, raises a DomainError a person can read, and writes its AuditEvent
in the same transaction. Secrets (invitation tokens, TOTP keys, backup codes,
passwords) are returned to the one person they belong to and never stored in
the clear, written to the audit log or shown to an admin.
"""

import hashlib
import secrets
from datetime import timedelta
from zoneinfo import available_timezones

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Invitation
from audit.services import Actor, actor_person, actor_system, audit_record
from notes.cosign_services import supervisor_check
from notes.errors import DomainError, NotPermitted
from notes.models import Membership, Note, Practice
from notes.roles import Role, membership_of

INVITATION_TTL = timedelta(days=7)
BACKUP_CODE_COUNT = 10
TOTP_DEVICE_NAME = "authenticator"
BACKUP_DEVICE_NAME = "backup codes"
# Fields only a clinician carries: for other roles they are cleared.
CLINICIAN_FIELDS = ("credentials", "licence_type", "pre_licensed", "supervisor")


class InvitationInvalid(DomainError):
    status_code = 404


def token_hash(token: str) -> str:
    # The token is 256 random bits, so a fast hash is enough (as for API keys).
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def _actor(actor) -> Actor:
    if actor is None:
        return actor_system("setup")
    return actor if isinstance(actor, Actor) else actor_person(actor)


def _require_admin(actor, practice: Practice) -> None:
    """A person acting on people or settings is an active practice admin of
    this practice. None or a system Actor is the operator's command."""
    if actor is None or isinstance(actor, Actor):
        return
    membership = membership_of(actor)
    if membership is None or membership.role != Role.PRACTICE_ADMIN or membership.practice_id != practice.pk:
        raise NotPermitted("Only a practice admin of this practice can do this.")


def _normalise_email(email: str) -> str:
    return (email or "").strip().lower()


# --- invitations ------------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *,
    practice: Practice,
    email: str,
    role: str,
    actor,
    first_name: str = "",
    last_name: str = "",
    credentials: str = "",
    licence_type: str = "",
    pre_licensed: bool = False,
    supervisor=None,
    now=None,
) -> tuple[Invitation, str]:
    """An invitation and its token (returned once: it goes into the link and
    is not kept). Raises DomainError for an address already in use or already
    invited, a role that does not exist, or a supervisor who cannot supervise."""
    _require_admin(actor, practice)
    now = now or timezone.now()
    email = _normalise_email(email)
    if role not in Role.values:
        raise DomainError("Choose a role.", field="role")
    if role != Role.CLINICIAN:
        credentials, licence_type, pre_licensed, supervisor = "", "", False, None
    if pre_licensed and supervisor is None:
        raise DomainError("A pre-licensed clinician needs a supervisor.", field="supervisor")
    if supervisor is not None:
        supervisor_check(practice_id=practice.pk, supervisor=supervisor)
    User = get_user_model()
    if User.objects.filter(username__iexact=email).exists() or User.objects.filter(email__iexact=email).exists():
        raise DomainError("Someone already has an account with this email address.", field="email")
    # Lock the open invitations of this address (none, or one) so two admins
    # inviting at once get one row and a clear error, not an IntegrityError.
    open_ = Invitation.objects.select_for_update().filter(
        practice=practice, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    )
    if open_.exists():
        raise DomainError("This address already has an open invitation: resend or revoke it.", field="email")
    token, hashed = _new_token()
    invitation = Invitation(
        practice=practice,
        email=email,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        role=role,
        credentials=credentials.strip(),
        licence_type=licence_type.strip(),
        pre_licensed=pre_licensed,
        supervisor=supervisor,
        token_hash=hashed,
        expires_at=now + INVITATION_TTL,
        created_by=None if actor is None or isinstance(actor, Actor) else actor,
    )
    try:
        invitation.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.message_dict.items()))
        raise DomainError(errors[0], field=field) from exc
    try:
        with transaction.atomic():  # a savepoint: the rest of the caller's transaction survives
            invitation.save()
    except IntegrityError as exc:
        # Another admin invited the same address at the same moment (the
        # partial unique constraint); the lock above cannot lock a row that
        # does not exist yet.
        raise DomainError("This address already has an open invitation: resend or revoke it.", field="email") from exc
    audit_record(
        practice=practice,
        actor=_actor(actor),
        action="invitation.create",
        obj=invitation,
        detail={"role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    return invitation, token


def invitation_link(*, base_url: str, token: str) -> str:
    from django.urls import reverse

    return base_url.rstrip("/") + reverse("accounts:invitation_open", args=[token])


def invitation_email_send(*, invitation: Invitation, link: str) -> None:
    """Send the link after the transaction commits (a rolled-back invitation
    sends nothing). The email names the practice and the role only."""
    practice_name, role, to = invitation.practice.name, invitation.get_role_display(), invitation.email
    days = INVITATION_TTL.days

    def send():
        send_mail(
            subject=f"Your invitation to {practice_name} on psyfi-review",
            message=(
                f"You are invited to join {practice_name} on psyfi-review as {role}.\n\n"
                f"Open this link to set your password and your authenticator app:\n{link}\n\n"
                f"The link works once and expires in {days} days. If you did not expect it, ignore this email."
            ),
            from_email=None,
            recipient_list=[to],
        )
        Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now())

    transaction.on_commit(send)


def _invitation_lock(invitation: Invitation) -> Invitation:
    return Invitation.objects.select_for_update(of=("self",)).select_related("practice").get(pk=invitation.pk)


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor, now=None) -> tuple[Invitation, str]:
    """A new token and a new expiry; the previous link stops working."""
    now = now or timezone.now()
    invitation = _invitation_lock(invitation)
    _require_admin(actor, invitation.practice)
    if invitation.accepted_at or invitation.revoked_at:
        raise DomainError(f"This invitation was {invitation.state_at(now).lower()}; invite again instead.")
    token, invitation.token_hash = _new_token()
    invitation.expires_at = now + INVITATION_TTL
    invitation.save(update_fields=["token_hash", "expires_at"])
    audit_record(
        practice=invitation.practice,
        actor=_actor(actor),
        action="invitation.resend",
        obj=invitation,
        detail={"expires_at": invitation.expires_at.isoformat()},
    )
    return invitation, token


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor, now=None) -> Invitation:
    now = now or timezone.now()
    invitation = _invitation_lock(invitation)
    _require_admin(actor, invitation.practice)
    if invitation.accepted_at:
        raise DomainError("This invitation was already accepted: deactivate the member instead.")
    if invitation.revoked_at:
        raise DomainError("This invitation was already revoked.")
    invitation.revoked_at = now
    invitation.revoked_by = None if isinstance(actor, Actor) else actor
    invitation.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(practice=invitation.practice, actor=_actor(actor), action="invitation.revoke", obj=invitation)
    return invitation


def _invitation_usable(invitation: Invitation | None, now) -> Invitation:
    if invitation is None:
        raise InvitationInvalid(
            "This invitation link is not valid. It may have been replaced by a newer one: use the latest email."
        )
    state = invitation.state_at(now)
    if state == Invitation.State.ACCEPTED:
        raise InvitationInvalid("This invitation was already used. Log in with the password you chose.")
    if state == Invitation.State.REVOKED:
        raise InvitationInvalid("This invitation was withdrawn. Ask your practice admin for a new one.")
    if state == Invitation.State.EXPIRED:
        raise InvitationInvalid("This invitation has expired. Ask your practice admin to send it again.")
    return invitation


def invitation_for_token(*, token: str, now=None) -> Invitation:
    """The pending invitation the token opens, or InvitationInvalid saying why not."""
    return invitation_for_token_hash(hashed=token_hash(token or ""), now=now)


def invitation_for_token_hash(*, hashed: str, now=None) -> Invitation:
    """As invitation_for_token, from the token's hash (what the accepting
    browser's session keeps instead of the token)."""
    now = now or timezone.now()
    found = Invitation.objects.select_related("practice").filter(token_hash=hashed or "-").first()
    return _invitation_usable(found, now)


@transaction.atomic
def invitation_accept(
    *, token: str = "", hashed: str = "", password: str, first_name: str = "", last_name: str = "", now=None
):
    """Use the invitation once: create the user (username = the invited
    address) and the membership. The invitation is named by its token or by
    the token's hash. Raises InvitationInvalid, or a ValidationError with
    Django's password validators' messages."""
    now = now or timezone.now()
    hashed = hashed or token_hash(token or "")
    found = (
        Invitation.objects.select_for_update(of=("self",)).select_related("practice").filter(token_hash=hashed).first()
    )
    invitation = _invitation_usable(found, now)
    User = get_user_model()
    user = User(
        username=invitation.email,
        email=invitation.email,
        first_name=first_name.strip() or invitation.first_name,
        last_name=last_name.strip() or invitation.last_name,
    )
    validate_password(password, user=user)
    if User.objects.filter(username__iexact=invitation.email).exists():
        raise DomainError("Someone already has an account with this email address. Ask your practice admin.")
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # the same address accepted in another practice at the same moment
        raise DomainError("Someone already has an account with this email address. Ask your practice admin.") from exc
    if invitation.supervisor_id is not None:
        supervisor_check(practice_id=invitation.practice_id, supervisor=invitation.supervisor)
    membership = Membership(
        user=user,
        practice=invitation.practice,
        role=invitation.role,
        credentials=invitation.credentials,
        licence_type=invitation.licence_type,
        pre_licensed=invitation.pre_licensed,
        supervisor=invitation.supervisor,
    )
    membership.full_clean()
    membership.save()
    invitation.accepted_at = now
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    audit_record(
        practice=invitation.practice,
        actor=actor_person(user),
        action="invitation.accept",
        obj=invitation,
        detail={"role": invitation.role, "membership": membership.pk},
    )
    return user


# --- second factor ----------------------------------------------------------------------------------


def member_has_second_factor(user) -> bool:
    """Whether the person has any second factor at all. Only an admin's reset
    (or never having enrolled) leaves none; someone who used up their backup
    codes still has the device and must not fall back to a password alone."""
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticDevice.objects.filter(user=user, confirmed=True).exists()
    )


@transaction.atomic
def totp_enrollment_begin(*, user) -> TOTPDevice:
    """The person's unconfirmed authenticator, made on first call and reused
    after, so reloading the page shows the same QR code. Refused once a
    confirmed one exists: a second device only after a reset by an admin."""
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise NotPermitted("You already have an authenticator. Ask your practice admin to reset it.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def _backup_codes_replace(user) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


@transaction.atomic
def totp_enrollment_confirm(*, user, device: TOTPDevice, token: str) -> list[str]:
    """Confirm the authenticator with its first code; returns new backup codes
    (shown once). Raises DomainError for a wrong code."""
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
    if device.confirmed:
        raise DomainError("This authenticator is already set up.")
    token = (token or "").strip().replace(" ", "")
    if not token.isdigit() or not device.verify_token(token):
        raise DomainError(
            "That code is not valid. Enter the six digits your authenticator app shows now.", field="otp_token"
        )
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    codes = _backup_codes_replace(user)
    membership = Membership.objects.select_related("practice").get(user=user)
    audit_record(
        practice=membership.practice,
        actor=actor_person(user),
        action="member.otp_enroll",
        obj=membership,
        detail={"backup_codes": len(codes)},
    )
    return codes


@transaction.atomic
def backup_codes_regenerate(*, user) -> list[str]:
    """New backup codes for the person themself; the old ones stop working."""
    membership = Membership.objects.select_related("practice").get(user=user)
    codes = _backup_codes_replace(user)
    audit_record(
        practice=membership.practice,
        actor=actor_person(user),
        action="member.backup_codes_regenerate",
        obj=membership,
        detail={"backup_codes": len(codes)},
    )
    return codes


# --- members ----------------------------------------------------------------------------------------


def _membership_lock(membership: Membership) -> Membership:
    return Membership.objects.select_for_update(of=("self",)).select_related("user", "practice").get(pk=membership.pk)


def _end_sessions(user) -> int:
    """Delete every open session of the user (database session backend).
    A session logged in before a deactivation or a second-factor reset must
    not come back: after a reset it would still hold the password login and
    could enroll an authenticator of its holder's choosing; after a
    reactivation it would be verified again without anyone logging in."""
    user_pk = str(user.pk)
    stale = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get(SESSION_KEY)) == user_pk
    ]
    return Session.objects.filter(pk__in=stale).delete()[0]


def _other_active_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(practice=membership.practice, role=Role.PRACTICE_ADMIN, is_active=True)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def member_deactivate(*, membership: Membership, actor) -> Membership:
    """The member can no longer log in, and their open sessions end: they
    are deleted, so a later reactivation does not bring them back."""
    membership = _membership_lock(membership)
    _require_admin(actor, membership.practice)
    if not membership.is_active:
        raise DomainError("This member is already deactivated.")
    if membership.user_id == getattr(actor, "pk", None):
        raise DomainError("You cannot deactivate yourself; ask another practice admin.")
    if membership.role == Role.PRACTICE_ADMIN and not _other_active_admins(membership):
        raise DomainError("The practice needs at least one active practice admin.")
    if Membership.objects.filter(supervisor=membership.user, is_active=True, pre_licensed=True).exists():
        raise DomainError("This clinician supervises pre-licensed clinicians: give them another supervisor first.")
    membership.is_active = False
    membership.save(update_fields=["is_active"])
    user = membership.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    sessions_ended = _end_sessions(user)
    audit_record(
        practice=membership.practice,
        actor=_actor(actor),
        action="member.deactivate",
        obj=membership,
        detail={"sessions_ended": sessions_ended},
    )
    return membership


@transaction.atomic
def member_reactivate(*, membership: Membership, actor) -> Membership:
    membership = _membership_lock(membership)
    _require_admin(actor, membership.practice)
    if membership.is_active:
        raise DomainError("This member is already active.")
    membership.is_active = True
    membership.save(update_fields=["is_active"])
    user = membership.user
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_record(practice=membership.practice, actor=_actor(actor), action="member.reactivate", obj=membership)
    return membership


@transaction.atomic
def member_otp_reset(*, membership: Membership, actor) -> Membership:
    """Delete the member's authenticator and backup codes and end their open
    sessions: only a password login after the reset leads to enrolling a new
    authenticator (an older session, or whoever holds it, cannot enroll)."""
    membership = _membership_lock(membership)
    _require_admin(actor, membership.practice)
    if membership.user_id == getattr(actor, "pk", None):
        raise DomainError("You cannot reset your own second factor; ask another practice admin.")
    removed = TOTPDevice.objects.filter(user=membership.user).delete()[0]
    removed += StaticDevice.objects.filter(user=membership.user).delete()[0]
    sessions_ended = _end_sessions(membership.user)
    audit_record(
        practice=membership.practice,
        actor=_actor(actor),
        action="member.otp_reset",
        obj=membership,
        detail={"rows_removed": removed, "sessions_ended": sessions_ended},
    )
    return membership


@transaction.atomic
def member_role_change(*, membership: Membership, role: str, actor) -> Membership:
    membership = _membership_lock(membership)
    _require_admin(actor, membership.practice)
    if role not in Role.values:
        raise DomainError("Choose a role.", field="role")
    if role == membership.role:
        raise DomainError(f"This member is already {membership.get_role_display()}.", field="role")
    if membership.role == Role.PRACTICE_ADMIN and not _other_active_admins(membership):
        raise DomainError("The practice needs at least one active practice admin.", field="role")
    if (
        membership.role == Role.CLINICIAN
        and Membership.objects.filter(supervisor=membership.user, is_active=True).exists()
    ):
        raise DomainError("This clinician supervises others: give them another supervisor first.", field="role")
    before = membership.role
    membership.role = role
    fields = ["role"]
    if role != Role.CLINICIAN:
        membership.credentials, membership.licence_type, membership.pre_licensed, membership.supervisor = (
            "",
            "",
            False,
            None,
        )
        fields += ["credentials", "licence_type", "pre_licensed", "supervisor"]
    membership.save(update_fields=fields)
    audit_record(
        practice=membership.practice,
        actor=_actor(actor),
        action="member.role_change",
        obj=membership,
        before={"role": before},
        after={"role": role},
    )
    return membership


@transaction.atomic
def member_clinician_details_update(
    *,
    membership: Membership,
    credentials: str,
    licence_type: str,
    pre_licensed: bool,
    supervisor,
    actor,
) -> Membership:
    """A clinician's credentials, licence type, pre-licensed flag and supervisor."""
    membership = _membership_lock(membership)
    _require_admin(actor, membership.practice)
    if membership.role != Role.CLINICIAN:
        raise DomainError("Only clinicians have credentials, a licence type and a supervisor.")
    if pre_licensed and supervisor is None:
        raise DomainError("A pre-licensed clinician needs a supervisor.", field="supervisor")
    if supervisor is not None:
        supervisor_check(
            practice_id=membership.practice_id, supervisor=supervisor, clinician_user_id=membership.user_id
        )
    if pre_licensed and Membership.objects.filter(supervisor=membership.user, is_active=True).exists():
        raise DomainError("This clinician supervises others, so cannot be pre-licensed.", field="pre_licensed")
    if membership.pre_licensed and not pre_licensed:
        # Notes signed while pre-licensed still need their co-signature
        # (notes.cosign_services); licensed now, nobody would be asked for it.
        waiting = Note.objects.filter(clinician_id=membership.user_id, state=Note.State.AWAITING_COSIGN).count()
        if waiting:
            raise DomainError(
                f"{waiting} note(s) of this clinician still await co-signature; keep them pre-licensed with a "
                "supervisor until those are co-signed or returned.",
                field="pre_licensed",
            )
    fields = ("credentials", "licence_type", "pre_licensed", "supervisor_id")
    before = {f: getattr(membership, f) for f in fields}
    membership.credentials = credentials.strip()
    membership.licence_type = licence_type.strip()
    membership.pre_licensed = pre_licensed
    membership.supervisor = supervisor
    after = {f: getattr(membership, f) for f in fields}
    if after == before:
        return membership
    try:
        membership.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.message_dict.items()))
        raise DomainError(errors[0], field=field) from exc
    membership.save(update_fields=["credentials", "licence_type", "pre_licensed", "supervisor"])
    audit_record(
        practice=membership.practice,
        actor=_actor(actor),
        action="member.details_change",
        obj=membership,
        before={k: v for k, v in before.items() if before[k] != after[k]},
        after={k: v for k, v in after.items() if before[k] != after[k]},
    )
    return membership


@transaction.atomic
def member_password_change(*, user, old_password: str, new_password: str) -> None:
    """Raises DomainError for a wrong current password and ValidationError
    with the validators' messages for a weak new one."""
    membership = Membership.objects.select_related("practice").get(user=user)
    if not user.check_password(old_password):
        raise DomainError("Your current password is not correct.", field="old_password")
    validate_password(new_password, user=user)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    audit_record(
        practice=membership.practice, actor=actor_person(user), action="member.password_change", obj=membership
    )


# --- practice settings ------------------------------------------------------------------------------


@transaction.atomic
def practice_settings_update(
    *,
    practice: Practice,
    timezone_name: str,
    idle_logoff_minutes: int | None,
    step_up_window_minutes: int | None,
    actor,
) -> Practice:
    _require_admin(actor, practice)
    practice = Practice.objects.select_for_update(of=("self",)).get(pk=practice.pk)
    if timezone_name not in available_timezones():
        raise DomainError(f"“{timezone_name}” is not a time zone name (e.g. America/New_York).", field="timezone")
    fields = ("timezone", "idle_logoff_minutes", "step_up_window_minutes")
    before = {f: getattr(practice, f) for f in fields}
    practice.timezone = timezone_name
    practice.idle_logoff_minutes = idle_logoff_minutes
    practice.step_up_window_minutes = step_up_window_minutes
    try:
        practice.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.message_dict.items()))
        raise DomainError(errors[0], field=field) from exc
    after = {f: getattr(practice, f) for f in fields}
    if after == before:
        return practice
    practice.save(update_fields=list(fields))
    audit_record(
        practice=practice,
        actor=_actor(actor),
        action="practice.settings_change",
        obj=practice,
        before={k: v for k, v in before.items() if before[k] != after[k]},
        after={k: v for k, v in after.items() if before[k] != after[k]},
    )
    return practice


# --- operator bootstrap -----------------------------------------------------------------------------


@transaction.atomic
def practice_bootstrap(
    *, name: str, slug: str, admin_email: str, timezone_name: str = "America/New_York"
) -> tuple[Practice, Invitation, str]:
    """A practice with its default templates and vocabulary and an invitation
    for its first practice admin (manage.py practice_create)."""
    from notes.services import practice_create

    if timezone_name not in available_timezones():
        raise DomainError(f"“{timezone_name}” is not a time zone name (e.g. America/New_York).", field="timezone")
    if Practice.objects.filter(slug=slug).exists():
        raise DomainError(f"A practice with the short name “{slug}” already exists.", field="slug")
    try:
        practice = practice_create(name=name, slug=slug, timezone_name=timezone_name)
    except ValidationError as exc:
        field, errors = next(iter(exc.message_dict.items()))
        raise DomainError(f"{field}: {errors[0]}", field=field) from exc
    invitation, token = invitation_create(
        practice=practice, email=admin_email, role=Role.PRACTICE_ADMIN, actor=actor_system("operator")
    )
    return practice, invitation, token
