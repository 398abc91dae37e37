import json
from datetime import timedelta

from django import forms

from integrations.models import Delivery, EHRConnection


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=EHRConnection.Kind.choices)
    base_url = forms.CharField(
        max_length=500,
        required=False,
        help_text="https://… for FHIR/REST, mllp(s)://host:port for HL7; empty for manual filing",
    )
    patient_query_url = forms.CharField(
        max_length=500,
        required=False,
        label="Patient query address (HL7)",
        help_text="mllp(s)://host:port answering IHE PDQ; blank: the address above",
    )
    hl7_patient_check = forms.ChoiceField(
        choices=EHRConnection.HL7PatientCheck.choices,
        required=False,
        initial=EHRConnection.HL7PatientCheck.PDQ,
        label="Patient check (HL7)",
        help_text=(
            "How the right patient is made sure of before a note is filed. Ask the EHR first: before each note an "
            "IHE PDQ query (QBP^Q22) asks the EHR who has the client's EHR id, and the note goes only if that "
            "patient's date of birth is the client's; the EHR (or the patient query address) must answer PDQ. "
            "The receiver checks: for interface channels that accept only MDM messages; each note carries the "
            "client's EHR id with the assigning authority, name and date of birth (PID-3, PID-5, PID-7), and the "
            "receiver must be set to refuse a patient it does not know. Its refusal (AE/AR naming the patient) "
            "fails the delivery with its text and a patient mismatch alert; nothing is resent"
        ),
    )
    hl7_assigning_authority = forms.CharField(
        max_length=100,
        required=False,
        label="Assigning authority (HL7)",
        help_text=(
            "The domain of the EHR's patient ids, as in its PID-3.4: a namespace id (e.g. CLINIC_A) or an OID. "
            "Needed when the receiver checks; with PDQ it picks the right patient when the EHR has several id domains"
        ),
    )
    is_sandbox = forms.BooleanField(required=False, initial=True, label="Sandbox (synthetic clients only)")
    auth_kind = forms.ChoiceField(choices=EHRConnection.Auth.choices, label="Authentication")
    client_id = forms.CharField(max_length=200, required=False)
    token_url = forms.CharField(max_length=500, required=False)
    username = forms.CharField(max_length=200, required=False)
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Client secret, bearer token or password; stored encrypted, never shown again",
    )

    def clean_hl7_patient_check(self) -> str:
        # Optional in the form (FHIR and REST connections leave it alone).
        return self.cleaned_data.get("hl7_patient_check") or EHRConnection.HL7PatientCheck.PDQ

    def clean(self):
        cleaned = super().clean()
        # Manual filing sends nothing, so needs no address (nor credentials:
        # manual_connection_check refuses them); every other kind needs one.
        if cleaned.get("kind") not in (None, EHRConnection.Kind.MANUAL) and not cleaned.get("base_url"):
            self.add_error("base_url", "Enter the EHR's address.")
        return cleaned

    def secrets(self) -> dict | None:
        secret = self.cleaned_data.get("secret")
        if not secret:
            return None
        key = {"client_secret": "client_secret", "bearer": "token", "basic": "password"}.get(
            self.cleaned_data["auth_kind"], "client_secret"
        )
        return {key: secret}


class MappingImportForm(forms.Form):
    document = forms.CharField(widget=forms.Textarea(attrs={"rows": 14}), label="Mapping JSON")

    def clean_document(self):
        try:
            return json.loads(self.cleaned_data["document"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc


class DeliveryFilterForm(forms.Form):
    """The dashboard's filters, from GET. Every field is optional; a value
    that is not one of the choices is a form error shown on the page."""

    AGES = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}

    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Delivery.State.choices])
    age = forms.ChoiceField(
        required=False,
        label="Age",
        choices=[("", "Any age"), ("1h", "Older than 1 hour"), ("1d", "Older than 1 day"), ("7d", "Older than 7 days")],
    )
    clinician = forms.ModelChoiceField(required=False, queryset=None, empty_label="Any clinician")
    connection = forms.ModelChoiceField(required=False, queryset=None, empty_label="Any connection")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, practice, **kwargs):
        from django.contrib.auth import get_user_model

        from notes.models import Membership

        super().__init__(*args, **kwargs)
        self.fields["clinician"].queryset = (
            get_user_model()
            .objects.filter(membership__practice=practice, membership__role=Membership.Role.CLINICIAN)
            .order_by("last_name", "first_name")
        )
        self.fields["clinician"].label_from_instance = lambda u: u.get_full_name() or u.username
        self.fields["connection"].queryset = EHRConnection.objects.filter(practice=practice).order_by("name")

    def filters(self) -> dict:
        data = self.cleaned_data
        return {
            "state": data.get("state") or "",
            "older_than": self.AGES.get(data.get("age") or ""),
            "clinician": data.get("clinician"),
            "connection": data.get("connection"),
            "before": data.get("before"),
        }


class FilingConfirmForm(forms.Form):
    """ "Filed in EHR" (integrations.manual_filing.manual_filing_confirm)."""

    ehr_reference = forms.CharField(
        max_length=200,
        required=False,
        label="EHR reference (optional)",
        help_text="The note's id or link in the EHR, if it shows one",
    )


class AlertRulesForm(forms.ModelForm):
    """The practice's alert settings; the service checks the webhook URL
    (https, egress policy) and issues its secret."""

    new_secret = forms.BooleanField(required=False, label="Issue a new webhook secret")

    class Meta:
        from integrations.models import AlertRules
        from integrations.services.alerts import RULE_FIELDS

        model = AlertRules
        fields = list(RULE_FIELDS)  # the fields the service saves
        labels = {
            "webhook_url": "Webhook URL (optional)",
            "long_retry_minutes": "Alert when a delivery retries longer than (minutes; blank: server default)",
            "unreachable_after_attempts": "Alert when the EHR has not answered for (attempts; blank: server default)",
            "phi_access_clients": "Alert when one person views this many clients' records (0: off)",
            "phi_access_window_minutes": "… within (minutes)",
            "working_day_start": "Working day starts",
            "working_day_end": "Working day ends (earlier than the start: over midnight)",
            "after_hours_margin_minutes": "Sign-offs further than this outside working hours (minutes)",
            "after_hours_signs": "Alert after this many such sign-offs by one person in a day (0: off)",
            "api_key_refusals": "Alert after this many refused API-key calls (0: off)",
            "api_key_refusals_window_minutes": "… within (minutes)",
        }
        widgets = {
            "working_day_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "working_day_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def clean(self):
        data = super().clean()
        for name in ("phi_access_window_minutes", "api_key_refusals_window_minutes"):
            if data.get(name) == 0:
                self.add_error(name, "A window of at least one minute.")
        start, end = data.get("working_day_start"), data.get("working_day_end")
        # A start later than the end is a night shift, over midnight.
        if start and end and start == end:
            self.add_error("working_day_end", "The working day cannot start and end at the same time.")
        return data
