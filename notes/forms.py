import re

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

TOTP_SHAPE = re.compile(r"^\d{6}$")


def otp_device_for_token(user, token: str):
    """Pick the device a token is meant for by its shape: six digits for the
    authenticator app, anything else for a printed backup code. Trying one
    device only keeps other devices' failure counters untouched."""
    model = TOTPDevice if TOTP_SHAPE.match(token) else StaticDevice
    return model.objects.filter(user=user, confirmed=True).first()


def otp_verify(user, token: str):
    """The verified device, or a ValidationError a person can act on."""
    token = (token or "").strip().replace(" ", "")
    if not token:
        raise forms.ValidationError("Enter the code from your authenticator app or a backup code.", code="otp")
    device = otp_device_for_token(user, token)
    if device is None:
        raise forms.ValidationError("That code is not valid.", code="otp")
    allowed, extra = device.verify_is_allowed()
    if not allowed:
        raise forms.ValidationError("Too many wrong codes. Wait a little and try again.", code="otp_throttled")
    if not device.verify_token(token):
        raise forms.ValidationError("That code is not valid.", code="otp")
    return device


class PasswordAndCodeForm(AuthenticationForm):
    """Username, password and one-time code on one form. A wrong code counts
    as a failed login for the lockout (django-axes), like a wrong password."""

    otp_token = forms.CharField(
        label="One-time code",
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        cleaned = super().clean()
        user = self.get_user()
        if user is not None:
            try:
                self.otp_device = otp_verify(user, cleaned.get("otp_token", ""))
            except forms.ValidationError:
                user_login_failed.send(
                    sender=__name__, credentials={"username": cleaned.get("username")}, request=self.request
                )
                raise
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


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
