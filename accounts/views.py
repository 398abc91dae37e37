"""People, enrollment and practice settings pages. Thin: a form, a service,
a message. Objects come through the selectors, scoped to the admin's practice."""

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from accounts import selectors, services
from accounts.forms import (
    AcceptForm,
    ClinicianDetailsForm,
    CodeForm,
    InviteForm,
    PasswordChangeForm,
    PracticeSettingsForm,
    RoleForm,
)
from notes.errors import DomainError
from notes.roles import Role, membership_of
from notes.views import member_required
from quality.models import SamplingPolicy

_INVITE_SESSION_KEY = "invitation_token_hash"


def _form_error(form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


# --- people (practice admin) ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required(Role.PRACTICE_ADMIN)
def people(request: HttpRequest) -> HttpResponse:
    practice = membership_of(request.user).practice
    form = InviteForm(request.POST or None, practice=practice)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                invitation, token = services.invitation_create(
                    practice=practice, actor=request.user, **form.cleaned_data
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                link = services.invitation_link(base_url=request.build_absolute_uri("/"), token=token)
                services.invitation_email_send(invitation=invitation, link=link)
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("accounts:people")
        status = 400
    return render(
        request,
        "accounts/people.html",
        {
            "form": form,
            "members": selectors.members_for_admin(user=request.user),
            "invitations": selectors.invitations_for_admin(user=request.user),
            "role_choices": RoleForm().fields["role"].choices,
            "supervisors": list(form.fields["supervisor"].queryset),
        },
        status=status,
    )


def _member_action(request: HttpRequest, membership_id: int, action) -> HttpResponse:
    membership = selectors.member_get_for_admin(user=request.user, membership_id=membership_id)
    try:
        message = action(membership)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("accounts:people")


def _name(membership) -> str:
    return membership.user.get_full_name() or membership.user.username


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def member_deactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    def act(m):
        services.member_deactivate(membership=m, actor=request.user)
        return f"{_name(m)} is deactivated and logged out everywhere."

    return _member_action(request, membership_id, act)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def member_reactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    def act(m):
        services.member_reactivate(membership=m, actor=request.user)
        return f"{_name(m)} can log in again."

    return _member_action(request, membership_id, act)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def member_otp_reset(request: HttpRequest, membership_id: int) -> HttpResponse:
    def act(m):
        services.member_otp_reset(membership=m, actor=request.user)
        return f"{_name(m)}'s authenticator and backup codes are removed; they set up a new one at their next login."

    return _member_action(request, membership_id, act)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)

    def act(m):
        if not form.is_valid():
            raise DomainError("Choose a role.")
        m = services.member_role_change(membership=m, role=form.cleaned_data["role"], actor=request.user)
        return f"{_name(m)} is now {m.get_role_display()}."

    return _member_action(request, membership_id, act)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def member_details(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = ClinicianDetailsForm(request.POST, practice=membership_of(request.user).practice)

    def act(m):
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            raise DomainError(f"{form.fields[field].label or field.replace('_', ' ').capitalize()}: {errors[0]}")
        services.member_clinician_details_update(membership=m, actor=request.user, **form.cleaned_data)
        return f"{_name(m)}'s clinician details are saved."

    return _member_action(request, membership_id, act)


def _invitation_action(request: HttpRequest, invitation_id: int, action) -> HttpResponse:
    invitation = selectors.invitation_get_for_admin(user=request.user, invitation_id=invitation_id)
    try:
        message = action(invitation)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("accounts:people")


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    def act(invitation):
        invitation, token = services.invitation_resend(invitation=invitation, actor=request.user)
        link = services.invitation_link(base_url=request.build_absolute_uri("/"), token=token)
        services.invitation_email_send(invitation=invitation, link=link)
        return f"A new link was sent to {invitation.email}; the earlier one no longer works."

    return _invitation_action(request, invitation_id, act)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    def act(invitation):
        services.invitation_revoke(invitation=invitation, actor=request.user)
        return f"The invitation of {invitation.email} is revoked."

    return _invitation_action(request, invitation_id, act)


# --- accepting an invitation (no login) -------------------------------------------------------------


@never_cache
def invitation_open(request: HttpRequest, token: str) -> HttpResponse:
    """Keep the token's hash in the session and continue on a URL without the
    token, so it does not linger in the address bar, history or a Referer
    header. Only the hash is stored (as in the invitation row): whoever reads
    the session store cannot open the invitation with it."""
    request.session[_INVITE_SESSION_KEY] = services.token_hash(token)
    return redirect("accounts:invitation_accept")


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    hashed = request.session.get(_INVITE_SESSION_KEY, "")
    try:
        invitation = services.invitation_for_token_hash(hashed=hashed)
    except DomainError as exc:
        return render(request, "accounts/invitation_invalid.html", {"message": exc.message}, status=exc.status_code)
    form = AcceptForm(
        request.POST or None, initial={"first_name": invitation.first_name, "last_name": invitation.last_name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept(
                hashed=hashed,
                password=form.cleaned_data["password1"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
            )
        except ValidationError as exc:
            form.add_error("password1", exc)
        except DomainError as exc:
            return render(request, "accounts/invitation_invalid.html", {"message": exc.message}, status=exc.status_code)
        else:
            request.session.pop(_INVITE_SESSION_KEY, None)
            # Logged in with the password only: the session reaches nothing
            # but enrollment until the authenticator is confirmed.
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("accounts:enroll")
    return render(
        request,
        "accounts/invitation_accept.html",
        {"form": form, "invitation": invitation},
        status=400 if request.method == "POST" else 200,
    )


# --- second factor ----------------------------------------------------------------------------------


def _qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG (segno, server-side: no script, no CDN)."""
    return segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app")


@never_cache
@require_http_methods(["GET", "POST"])
def enroll(request: HttpRequest) -> HttpResponse:
    """Set up the authenticator: a person logged in with their password who
    has no second factor yet (just invited, or reset by an admin)."""
    if not request.user.is_authenticated:
        return redirect("login")
    if membership_of(request.user) is None:
        return redirect("login")
    if services.member_has_second_factor(request.user):
        return redirect("home")
    try:
        device = services.totp_enrollment_begin(user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("home")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.totp_enrollment_confirm(
                user=request.user, device=device, token=form.cleaned_data["otp_token"]
            )
        except DomainError as exc:
            form.add_error("otp_token", exc.message)
        else:
            device.refresh_from_db()
            otp_login(request, device)
            return render(request, "accounts/backup_codes.html", {"codes": codes, "first_time": True})
    secret = device.key  # hex; the authenticator wants base32, in the URI
    uri = device.config_url
    return render(
        request,
        "accounts/enroll.html",
        {
            "form": form,
            "qr_svg": _qr_svg(uri),
            "otpauth_uri": uri,
            "manual_key": _base32(secret),
        },
        status=400 if request.method == "POST" else 200,
    )


def _base32(hex_key: str) -> str:
    from base64 import b32encode

    text = b32encode(bytes.fromhex(hex_key)).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


@never_cache
@require_http_methods(["GET", "POST"])
@member_required()
def security(request: HttpRequest) -> HttpResponse:
    """The person's own password and backup codes."""
    form = PasswordChangeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.member_password_change(
                    user=request.user,
                    old_password=form.cleaned_data["old_password"],
                    new_password=form.cleaned_data["new_password1"],
                )
            except ValidationError as exc:
                form.add_error("new_password1", exc)
            except DomainError as exc:
                _form_error(form, exc)
            else:
                update_session_auth_hash(request, request.user)
                messages.success(request, "Your password is changed.")
                return redirect("accounts:security")
        status = 400
    return render(request, "accounts/security.html", {"form": form}, status=status)


@never_cache
@require_POST
@member_required()
def backup_codes_regenerate(request: HttpRequest) -> HttpResponse:
    codes = services.backup_codes_regenerate(user=request.user)
    return render(request, "accounts/backup_codes.html", {"codes": codes, "first_time": False})


# --- practice settings ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@member_required(Role.PRACTICE_ADMIN)
def practice_settings(request: HttpRequest) -> HttpResponse:
    practice = membership_of(request.user).practice
    initial = {
        "timezone": practice.timezone,
        "idle_logoff_minutes": practice.idle_logoff_minutes,
        "step_up_window_minutes": practice.step_up_window_minutes,
    }
    form = PracticeSettingsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.practice_settings_update(
                    practice=practice,
                    timezone_name=form.cleaned_data["timezone"],
                    idle_logoff_minutes=form.cleaned_data["idle_logoff_minutes"],
                    step_up_window_minutes=form.cleaned_data["step_up_window_minutes"],
                    actor=request.user,
                )
            except DomainError as exc:
                _form_error(form, exc)
            else:
                messages.success(request, "Practice settings saved.")
                return redirect("accounts:practice_settings")
        status = 400
    return render(
        request,
        "accounts/practice_settings.html",
        {
            "form": form,
            "practice": practice,
            "default_idle_minutes": int(settings.IDLE_TIMEOUT.total_seconds() // 60),
            "default_step_up_minutes": int(settings.SIGN_STEP_UP_WINDOW.total_seconds() // 60),
            "qa_policy": SamplingPolicy.objects.filter(practice=practice).first(),
            "qa_default_rate": SamplingPolicy._meta.get_field("sample_rate_percent").default,
        },
        status=status,
    )
