import math
import re
import time

from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

TOTP_SHAPE = re.compile(r"^\d{6}$")


def otp_device_for_token(user, token: str):
    """Pick the device a token is meant for by its shape: six digits for the
    authenticator app, anything else for a printed backup code. Trying one
    device only keeps other devices' failure counters untouched."""
    model = TOTPDevice if TOTP_SHAPE.match(token) else StaticDevice
    return model.objects.filter(user=user, confirmed=True).first()


def _seconds(n: int) -> str:
    return f"{n} second" if n == 1 else f"{n} seconds"


def _totp_already_used(device: TOTPDevice, token: str) -> bool:
    """True when token is a code this device accepted before: it matches a
    time step at or before the last accepted one (django-otp's last_t), so
    django-otp refuses it although the person typed what the app shows."""
    if not token.isdigit():
        return False
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return totp.verify(int(token), device.tolerance) and totp.t() <= device.last_t


def _wait_after_failure(device) -> str:
    """The wait django-otp now imposes before the next try (it doubles with
    every wrong code in a row, from the device's throttle factor)."""
    if not device.throttling_enabled or device.throttling_failure_count == 0:
        return ""
    wait = device.get_throttle_factor() * 2 ** (device.throttling_failure_count - 1)
    return (
        f" Wait {_seconds(wait)} before the next try; each wrong code in a row doubles the wait"
        f" (next: {_seconds(wait * 2)})."
    )


def otp_verify(user, token: str):
    """The verified device, or a ValidationError a person can act on: a code
    already used says to wait for the next one (and costs no try), a wrong
    code says how long to wait before the next try, a throttled try says how
    much longer."""
    token = (token or "").strip().replace(" ", "")
    if not token:
        raise forms.ValidationError("Enter the code from your authenticator app or a backup code.", code="otp")
    device = otp_device_for_token(user, token)
    if device is None:
        raise forms.ValidationError("That code is not valid.", code="otp")
    allowed, extra = device.verify_is_allowed()
    if not allowed:
        locked_until = (extra or {}).get("locked_until")
        left = max(1, math.ceil((locked_until - timezone.now()).total_seconds())) if locked_until else None
        wait = f"Wait {_seconds(left)}, then enter the code your app shows." if left else "Wait, then try again."
        raise forms.ValidationError(
            f"Too many wrong codes in a row ({extra.get('failure_count', 1) if extra else 1}). {wait}",
            code="otp_throttled",
        )
    if isinstance(device, TOTPDevice) and _totp_already_used(device, token):
        raise forms.ValidationError(
            "That code was already used: each code works once. Wait for the next code in your"
            f" authenticator app (a new one every {_seconds(device.step)}) and enter that.",
            code="otp_reused",
        )
    if not device.verify_token(token):
        hint = " Each backup code works once." if isinstance(device, StaticDevice) else ""
        raise forms.ValidationError(f"That code is not valid.{hint}{_wait_after_failure(device)}", code="otp")
    return device


def _lockout_hint(request, username: str) -> str:
    """How many failed logins are left before django-axes locks this username
    from this address, and for how long."""
    limit = settings.AXES_FAILURE_LIMIT
    if not isinstance(limit, int) or request is None:
        return ""
    failures = AxesProxyHandler.get_failures(request, {"username": username})
    left = max(0, limit - failures)
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    tries = "1 more try" if left == 1 else f"{left} more tries"
    return f" {tries} before logging in is locked for {minutes} minutes."


class PasswordAndCodeForm(AuthenticationForm):
    """Username, password and one-time code on one form. A wrong code counts
    as a failed login for the lockout (django-axes), like a wrong password."""

    # Not required by the field: a person whose second factor an admin reset
    # has none to enter, and logs in with the password only to enroll a new
    # one (needs_enrollment; accounts.views.enroll). Everyone else must.
    otp_token = forms.CharField(
        label="One-time code",
        max_length=16,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    needs_enrollment = False

    def clean(self):
        from accounts.services import member_has_second_factor

        cleaned = super().clean()
        user = self.get_user()
        if user is not None and not member_has_second_factor(user):
            self.needs_enrollment = True
            self.otp_device = None
            return cleaned
        if user is not None:
            try:
                self.otp_device = otp_verify(user, cleaned.get("otp_token", ""))
            except forms.ValidationError as exc:
                username = cleaned.get("username")
                user_login_failed.send(sender=__name__, credentials={"username": username}, request=self.request)
                raise forms.ValidationError(
                    exc.messages[0] + _lockout_hint(self.request, username), code=exc.code
                ) from exc
        return cleaned


class StepUpForm(forms.Form):
    otp_token = forms.CharField(label="One-time code", max_length=16)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_otp_token(self):
        self.otp_device = otp_verify(self.user, self.cleaned_data["otp_token"])
        return self.cleaned_data["otp_token"]


class ConsentForm(forms.Form):
    consented_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    disclosure_version = forms.CharField(max_length=40, initial="2026-01")
    # A minor's consent names the parent or guardian (notes.services.consent_record).
    guardian_name = forms.CharField(max_length=200, required=False)
    guardian_relationship = forms.CharField(max_length=60, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
