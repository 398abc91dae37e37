"""The pilot metrics page and each chart's CSV. Aggregates only: no client
appears here, so practice admins and QA reviewers both read it."""

import csv
from datetime import timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from notes.models import Membership
from notes.roles import Role, membership_of
from notes.views import member_required
from quality import charts
from quality.metrics import MetricFilter, pilot_chart, pilot_charts
from quality.models import Cohort

DEFAULT_WEEKS = 12
MAX_DAYS = 731


MIN_YEAR, MAX_YEAR = 2000, 2100


class MetricFilterForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    clinician = forms.TypedChoiceField(label="Clinician", coerce=int, required=False, empty_value=None)
    cohort = forms.TypedChoiceField(label="Cohort", coerce=int, required=False, empty_value=None)

    def __init__(self, *args, practice, today, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        clinicians = Membership.objects.filter(practice=practice, role=Role.CLINICIAN).select_related("user")
        self.fields["clinician"].choices = [("", "All clinicians")] + [
            (m.user_id, m.user.get_full_name() or m.user.username)
            for m in sorted(clinicians, key=lambda m: (m.user.last_name, m.user.first_name))
        ]
        self.fields["cohort"].choices = [("", "All cohorts")] + [
            (c.pk, c.name) for c in Cohort.objects.filter(practice=practice)
        ]

    def clean(self):
        data = super().clean()
        for field in ("start", "end"):
            # Far dates would overflow the date arithmetic of the weekly and
            # monthly buckets; no pilot spans them.
            value = data.get(field)
            if value is not None and not (MIN_YEAR <= value.year <= MAX_YEAR):
                self.add_error(field, f"Choose a date between {MIN_YEAR} and {MAX_YEAR}.")
                return data
        end = data.get("end") or self.today
        start = data.get("start") or end - timedelta(weeks=DEFAULT_WEEKS) + timedelta(days=1)
        if start > end:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if (end - start).days > MAX_DAYS:
            raise forms.ValidationError("Choose a range of at most two years.")
        data["start"], data["end"] = start, end
        return data


def _filter(request: HttpRequest) -> tuple[MetricFilterForm, MetricFilter | None]:
    practice = membership_of(request.user).practice
    today = timezone.localtime(timezone.now(), timezone=ZoneInfo(practice.timezone)).date()
    # Bound even with no query string, so the defaults go through clean() too.
    form = MetricFilterForm(request.GET, practice=practice, today=today)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    return form, MetricFilter(
        practice=practice,
        start=data["start"],
        end=data["end"],
        clinician_id=data.get("clinician"),
        cohort_id=data.get("cohort"),
    )


@member_required(Role.PRACTICE_ADMIN, Role.QA_REVIEWER)
def pilot_metrics(request: HttpRequest) -> HttpResponse:
    form, f = _filter(request)
    if f is None:
        return render(request, "quality/metrics.html", {"form": form, "charts": []}, status=400)
    rendered = []
    for chart in pilot_charts(f, now=timezone.now()):
        draw = charts.bar_chart if chart.kind == "bar" else charts.line_chart
        rendered.append({"chart": chart, "svg": draw(title=chart.title, labels=chart.labels, series=chart.series)})
    return render(
        request,
        "quality/metrics.html",
        {"form": form, "filter": f, "charts": rendered, "query": request.GET.urlencode()},
    )


@member_required(Role.PRACTICE_ADMIN, Role.QA_REVIEWER)
def pilot_metrics_csv(request: HttpRequest, chart: str) -> HttpResponse:
    form, f = _filter(request)
    if f is None:
        return HttpResponse(" ".join(form.non_field_errors()) or "Bad filter.", status=400, content_type="text/plain")
    data = pilot_chart(f, chart, now=timezone.now())
    if data is None:
        raise Http404("No such chart.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{data.key}_{f.start}_{f.end}.csv"'
    writer = csv.writer(response)
    writer.writerow(data.columns)
    for row in data.rows:
        writer.writerow([_cell(value) for value in row])
    return response


def _cell(value) -> str | int | float:
    """A CSV cell; text a spreadsheet would run as a formula (a clinician's
    name starting with "=") is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
