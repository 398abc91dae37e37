import json

from django import forms

from integrations.models import EHRConnection


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=EHRConnection.Kind.choices)
    base_url = forms.CharField(max_length=500, help_text="https://… for FHIR/REST, mllp(s)://host:port for HL7")
    patient_query_url = forms.CharField(
        max_length=500,
        required=False,
        label="Patient query address (HL7)",
        help_text="mllp(s)://host:port answering IHE PDQ; blank: the address above",
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
