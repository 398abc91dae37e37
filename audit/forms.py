"""Forms of the auditor's pages. Bad input is answered with field errors."""

from django import forms
from django.contrib.auth import get_user_model

from notes.models import Client, Note


class DateRangeMixin:
    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


class PhiAccessForm(DateRangeMixin, forms.Form):
    client = forms.ModelChoiceField(queryset=Client.objects.none(), empty_label="Choose a client")
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, clients, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["client"].queryset = clients
        self.fields["client"].label_from_instance = lambda c: (
            f"{c.family_name}, {c.given_name} · born {c.date_of_birth:%Y-%m-%d} · {c.ehr_patient_id or 'no EHR id'}"
        )


ACTION_SHAPE = r"^[a-z0-9_]+(\.[a-z0-9_]+)*\.?$"


class ExportForm(DateRangeMixin, forms.Form):
    """The audit log's filters; the page and both exports take the same ones,
    so an export is exactly the filtered set the auditor was looking at."""

    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.IntegerField(required=False, min_value=1, help_text="A note id: all versions of it")
    user = forms.IntegerField(required=False, min_value=1, label="Who", help_text="A person's user id")
    action = forms.RegexField(
        required=False,
        max_length=60,
        regex=ACTION_SHAPE,
        error_messages={"invalid": "An action looks like note.sign, or note. for every note action."},
        help_text="An action (note.sign), or a family ending in a dot (note.)",
    )
    client = forms.IntegerField(required=False, min_value=1, help_text="A client id")

    def __init__(self, *args, practice_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.practice_id = practice_id

    def clean_note(self):
        note_id = self.cleaned_data.get("note")
        if note_id is None:
            return None
        note = Note.objects.filter(pk=note_id, practice_id=self.practice_id).first()
        if note is None:
            raise forms.ValidationError("No note with this id in your practice.")
        return note

    def clean_user(self):
        user_id = self.cleaned_data.get("user")
        if user_id is None:
            return None
        user = get_user_model().objects.filter(pk=user_id, membership__practice_id=self.practice_id).first()
        if user is None:
            raise forms.ValidationError("No member of your practice has this id.")
        return user

    def clean_client(self):
        client_id = self.cleaned_data.get("client")
        if client_id is None:
            return None
        client = Client.objects.filter(pk=client_id, practice_id=self.practice_id).first()
        if client is None:
            raise forms.ValidationError("No client with this id in your practice.")
        return client

    def filters(self) -> dict:
        """The cleaned filters as audit_events_filtered takes them."""
        data = self.cleaned_data
        return {
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
            "note": data.get("note"),
            "actor_user": data.get("user"),
            "action": data.get("action") or "",
            "client": data.get("client"),
        }

    def query(self) -> dict:
        """The filters as query parameters, for links that keep them."""
        return {k: v for k, v in self.data.items() if k in self.fields and v not in ("", None)}


class AuditLogForm(ExportForm):
    """The page's filters and its keyset cursor: events before this seq."""

    before = forms.IntegerField(required=False, min_value=2)
