"""Forms of the practice admin pages. They parse and check input shape;
the rules (who, uniqueness, minors' guardians) are in the services."""

from django import forms

from notes.models import ClientConsent, NoteTemplateVersion, TemplateSection
from practice_admin.services.client_import import MAX_BYTES as CLIENT_IMPORT_MAX_BYTES
from practice_admin.services.vocabularies import MAX_IMPORT_BYTES as VOCABULARY_IMPORT_MAX_BYTES


def _refuse_oversized(upload, max_bytes: int) -> None:
    """Checked on the size the upload handler counted, before anything reads
    the file into memory (the services check the bytes again)."""
    if upload is not None and upload.size > max_bytes:
        megabytes = max_bytes / (1024 * 1024)
        raise forms.ValidationError(f"The file is larger than {megabytes:g} MB; split it.", code="too_large")


class ClinicianChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.username


class ClientForm(forms.Form):
    given_name = forms.CharField(max_length=100)
    family_name = forms.CharField(max_length=100)
    date_of_birth = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    ehr_patient_id = forms.CharField(max_length=64, required=False, label="EHR patient id")
    clinician = ClinicianChoice(queryset=None, label="Primary clinician")
    synthetic = forms.BooleanField(required=False, label="Synthetic (a made-up client for demos)")

    def __init__(self, *args, clinicians, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinician"].queryset = clinicians


class ClientImportForm(forms.Form):
    file = forms.FileField(required=False, label="CSV file exported from the EHR")
    # The checked file travels back with the confirmation, so what is imported
    # is exactly what was previewed (and it is checked again).
    csv_text = forms.CharField(required=False, widget=forms.HiddenInput)
    default_clinician = ClinicianChoice(
        queryset=None, required=False, label="Clinician for rows without one", empty_label="(none: every row names one)"
    )

    def __init__(self, *args, clinicians, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_clinician"].queryset = clinicians

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        _refuse_oversized(upload, CLIENT_IMPORT_MAX_BYTES)
        return upload

    def clean(self):
        cleaned = super().clean()
        if self.has_error("file"):
            return cleaned
        upload = cleaned.get("file")
        if upload is not None:
            cleaned["data"] = upload.read()
        elif cleaned.get("csv_text"):
            cleaned["data"] = cleaned["csv_text"]
        else:
            raise forms.ValidationError("Choose a CSV file.")
        return cleaned


class ConsentRecordForm(forms.Form):
    consented_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Consent date")
    method = forms.ChoiceField(choices=ClientConsent.Method.choices, label="How the client consented")
    disclosure = forms.ModelChoiceField(queryset=None, label="Disclosure text the client read", empty_label=None)
    guardian_name = forms.CharField(max_length=200, required=False, label="Parent or guardian (for a minor)")
    guardian_relationship = forms.CharField(max_length=60, required=False, label="Relationship to the client")

    def __init__(self, *args, disclosures, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["disclosure"].queryset = disclosures
        self.fields["disclosure"].label_from_instance = lambda d: f"v{d.version}: {d.text[:80]}"


class DisclosureTextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=5000, label="New disclosure text")


class TemplateCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    key = forms.SlugField(max_length=50, required=False, help_text="Used by the scribe; made from the name if empty")
    is_psychotherapy_notes = forms.BooleanField(required=False, label="Psychotherapy (process) notes")


class SectionForm(forms.Form):
    # One table row per section: the column headings label the inputs for
    # sighted users, aria-label for screen readers.
    key = forms.CharField(max_length=50, widget=forms.TextInput(attrs={"aria-label": "Section key"}))
    label = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"aria-label": "Section label"}))
    order = forms.IntegerField(
        min_value=1, max_value=999, widget=forms.NumberInput(attrs={"aria-label": "Section order"})
    )
    required = forms.BooleanField(required=False, widget=forms.CheckboxInput(attrs={"aria-label": "Required"}))
    kind = forms.ChoiceField(choices=TemplateSection.Kind.choices, widget=forms.Select(attrs={"aria-label": "Kind"}))


SectionFormSet = forms.formset_factory(SectionForm, extra=1, can_delete=True, max_num=40)


class DraftSettingsForm(forms.Form):
    field_map = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        required=False,
        label="AI output field → section key (one per line, field = section)",
    )
    fallback_section_key = forms.CharField(max_length=50, required=False, label="Section that takes unplaced content")
    unplaced_policy = forms.ChoiceField(choices=NoteTemplateVersion.UnplacedPolicy.choices)

    def clean_field_map(self) -> dict:
        mapping = {}
        for n, line in enumerate(self.cleaned_data["field_map"].splitlines(), start=1):
            if not line.strip():
                continue
            field_name, sep, key = line.partition("=")
            if not sep or not field_name.strip() or not key.strip():
                raise forms.ValidationError(f"Line {n}: write “field = section key”.")
            mapping[field_name.strip()] = key.strip()
        return mapping


class PreviewForm(forms.Form):
    # Well above a real draft's content fields; mapping a larger sample would
    # only tie up the web worker.
    sample = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}), label="Sample AI output (JSON)", max_length=200_000
    )


class TermForm(forms.Form):
    term = forms.CharField(max_length=100)
    synonyms = forms.CharField(required=False, help_text="Separated by commas")


class SynonymsForm(forms.Form):
    synonyms = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class CsvUploadForm(forms.Form):
    """The vocabulary import's upload."""

    file = forms.FileField(label="CSV file")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        _refuse_oversized(upload, VOCABULARY_IMPORT_MAX_BYTES)
        return upload


class AISourceForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name", help_text="How the practice calls this scribe")
    vendor = forms.CharField(max_length=100)
    model_name = forms.CharField(max_length=100, label="Model")
    model_version = forms.CharField(max_length=50, required=False)
