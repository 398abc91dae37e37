from zoneinfo import available_timezones

from django import forms
from django.contrib.auth import get_user_model

from notes.models import Membership, Practice
from notes.roles import Role


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Membership.Role.choices)
    credentials = forms.CharField(max_length=40, required=False, help_text="Clinicians: e.g. PsyD, LCSW")
    licence_type = forms.CharField(max_length=60, required=False, help_text="Clinicians: e.g. LCSW (NY)")
    pre_licensed = forms.BooleanField(
        label="Pre-licensed", required=False, help_text="Signed notes wait for the supervisor's co-signature"
    )
    supervisor = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False)

    def __init__(self, *args, practice: Practice, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["supervisor"].queryset = (
            get_user_model()
            .objects.filter(
                membership__practice=practice,
                membership__role=Role.CLINICIAN,
                membership__is_active=True,
                membership__pre_licensed=False,
            )
            .order_by("last_name", "first_name")
        )
        self.fields["supervisor"].label_from_instance = lambda u: u.get_full_name() or u.username


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class AcceptForm(forms.Form):
    # The name the person goes by on signed notes and in the audit log; the
    # admin's spelling from the invitation is the starting value.
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class CodeForm(forms.Form):
    otp_token = forms.CharField(
        label="Code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(label="Current password", strip=False, widget=forms.PasswordInput)
    new_password1 = forms.CharField(label="New password", strip=False, widget=forms.PasswordInput)
    new_password2 = forms.CharField(label="New password again", strip=False, widget=forms.PasswordInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_password1") and cleaned.get("new_password1") != cleaned.get("new_password2"):
            self.add_error("new_password2", "The two passwords differ.")
        return cleaned


def _timezone_choices():
    return [(name, name) for name in sorted(available_timezones())]


class PracticeSettingsForm(forms.Form):
    timezone = forms.ChoiceField(label="Time zone", choices=_timezone_choices)
    idle_logoff_minutes = forms.IntegerField(
        label="Idle logoff (minutes)",
        min_value=1,
        max_value=720,
        required=False,
        help_text="Log a person out after this long without a request. Empty: the deployment's default.",
    )
    step_up_window_minutes = forms.IntegerField(
        label="Signing step-up window (minutes)",
        min_value=1,
        max_value=120,
        required=False,
        help_text="One code covers a batch of signatures for this long. Empty: the deployment's default.",
    )


class ClinicianDetailsForm(forms.Form):
    credentials = forms.CharField(max_length=40, required=False)
    licence_type = forms.CharField(max_length=60, required=False)
    pre_licensed = forms.BooleanField(label="Pre-licensed", required=False)
    supervisor = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False)

    def __init__(self, *args, practice: Practice, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["supervisor"].queryset = get_user_model().objects.filter(
            membership__practice=practice,
            membership__role=Role.CLINICIAN,
            membership__is_active=True,
            membership__pre_licensed=False,
        )
