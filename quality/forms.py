from django import forms
from django.forms import formset_factory

from quality.models import QAError, QAReview


class QAReviewForm(forms.Form):
    accuracy = forms.TypedChoiceField(choices=QAReview.Score.choices, coerce=int, widget=forms.RadioSelect)
    completeness = forms.TypedChoiceField(choices=QAReview.Score.choices, coerce=int, widget=forms.RadioSelect)
    ehr_placement_correct = forms.TypedChoiceField(
        label="Correct EHR placement",
        choices=[("yes", "Yes"), ("no", "No")],
        coerce=lambda v: v == "yes",
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class QAErrorForm(forms.Form):
    kind = forms.ChoiceField(label="Error type", choices=[("", "—")] + QAError.Kind.choices, required=False)
    severity = forms.ChoiceField(label="Severity", choices=[("", "—")] + QAError.Severity.choices, required=False)
    comment = forms.CharField(label="Comment", required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("kind")) != bool(data.get("severity")):
            raise forms.ValidationError("Give both a type and a severity, or neither.")
        return data


QAErrorFormSet = formset_factory(QAErrorForm, extra=3, max_num=20)


class SamplingPolicyForm(forms.Form):
    sample_rate_percent = forms.DecimalField(label="Sampling rate (%)", min_value=0, max_value=100, decimal_places=2)
    first_notes_always = forms.IntegerField(label="Always sample a clinician's first N signed notes", min_value=0)
    rubber_stamp_seconds_per_100_words = forms.IntegerField(
        label="Rubber stamp: signed with no edit in under this many seconds per 100 words", min_value=1
    )
    rubber_stamp_rate_percent = forms.DecimalField(
        label="Sampling rate for rubber-stamped notes (%)", min_value=0, max_value=100, decimal_places=2
    )


class CohortForm(forms.Form):
    name = forms.CharField(max_length=60)
    sample_rate_percent = forms.DecimalField(
        label="Sampling rate (%), blank for the practice's",
        min_value=0,
        max_value=100,
        decimal_places=2,
        required=False,
    )


class CohortAssignForm(forms.Form):
    clinician = forms.IntegerField(widget=forms.HiddenInput)
    cohort = forms.IntegerField(required=False)


class PulseForm(forms.Form):
    score = forms.TypedChoiceField(
        label="How likely are you to keep using AI drafts? (0 = not at all, 10 = certainly)",
        choices=[(i, str(i)) for i in range(11)],
        coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
