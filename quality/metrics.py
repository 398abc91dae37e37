"""The pilot metrics: pure reads, computed in Python over the filtered rows
(a pilot is a few clinicians and thousands of notes, not millions) so each
figure is easy to check by hand. Every chart is a Chart: its rows are the CSV
download, its labels and series the SVG.

Filters: a date range in the practice's time zone (on the signature for
signed-note figures, on arrival for flags, on the month for the pulse), a
clinician, and a cohort (its clinicians as they are now). Unsigned drafts by
age is a picture of now: the date range does not apply to it.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from integrations.models import Delivery
from notes.models import Flag, Note
from quality.models import CohortMember, QADraw, QAError, QAReview, SatisfactionPulse

AGE_BUCKETS = (("< 1 day", 1), ("1–3 days", 3), ("3–7 days", 7), ("7+ days", None))


@dataclass(frozen=True)
class MetricFilter:
    practice: object
    start: date
    end: date  # inclusive
    clinician_id: int | None = None
    cohort_id: int | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.practice.timezone)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, self.tz)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, self.tz)


@dataclass
class Chart:
    key: str
    title: str
    kind: str  # "bar" or "line"
    columns: list[str]
    rows: list[list]
    labels: list[str]
    series: dict[str, list]
    summary: list[tuple[str, str]] = field(default_factory=list)


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _clinicians(qs: QuerySet, f: MetricFilter, path: str = "clinician_id") -> QuerySet:
    if f.clinician_id:
        qs = qs.filter(**{path: f.clinician_id})
    if f.cohort_id:
        members = CohortMember.objects.filter(cohort_id=f.cohort_id, cohort__practice=f.practice)
        qs = qs.filter(**{f"{path}__in": members.values("clinician_id")})
    return qs


def _signed_notes(f: MetricFilter) -> QuerySet[Note]:
    qs = Note.objects.filter(practice=f.practice, signed_at__gte=f.start_at, signed_at__lt=f.end_before)
    return _clinicians(qs, f)


def week_of(moment: datetime, tz: ZoneInfo) -> date:
    day = moment.astimezone(tz).date()
    return day - timedelta(days=day.weekday())


def _weeks(f: MetricFilter) -> list[date]:
    first = f.start - timedelta(days=f.start.weekday())
    return [first + timedelta(weeks=i) for i in range((f.end - first).days // 7 + 1)]


def documentation_time(f: MetricFilter) -> Chart:
    by_week: dict[date, list[int]] = defaultdict(list)
    every = []
    for signed_at, seconds in _signed_notes(f).values_list("signed_at", "review_seconds"):
        by_week[week_of(signed_at, f.tz)].append(seconds)
        every.append(seconds)
    weeks = _weeks(f)
    medians = [median(by_week[w]) if by_week[w] else None for w in weeks]
    return Chart(
        key="documentation-time",
        title="Documentation time per note (median active review, seconds) by week",
        kind="line",
        columns=["week", "notes", "median_review_seconds"],
        rows=[[w.isoformat(), len(by_week[w]), m] for w, m in zip(weeks, medians, strict=True)],
        labels=[w.isoformat() for w in weeks],
        series={"Median seconds": medians},
        summary=[("Signed notes", str(len(every))), ("Median active review", f"{median(every) if every else '—'} s")],
    )


def ai_text_kept(f: MetricFilter) -> Chart:
    totals: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # notes, edited, kept chars, total chars
    rows = _signed_notes(f).filter(attribution__isnull=False)
    for signed_at, kept, total, clinician, removed in rows.values_list(
        "signed_at",
        "attribution__ai_kept_chars",
        "attribution__total_chars",
        "attribution__clinician_chars",
        "attribution__ai_removed_chars",
    ):
        t = totals[week_of(signed_at, f.tz)]
        t[0] += 1
        t[1] += 1 if (clinician or removed) else 0
        t[2] += kept
        t[3] += total
    weeks = _weeks(f)
    kept_pct = [_pct(totals[w][2], totals[w][3]) if w in totals else None for w in weeks]
    edit_pct = [_pct(totals[w][1], totals[w][0]) if w in totals else None for w in weeks]
    notes = sum(t[0] for t in totals.values())
    return Chart(
        key="ai-text-kept",
        title="Share of AI text kept and edit rate (%) by week",
        kind="line",
        columns=["week", "notes", "ai_kept_percent", "edit_rate_percent"],
        rows=[
            [w.isoformat(), totals[w][0] if w in totals else 0, k, e]
            for w, k, e in zip(weeks, kept_pct, edit_pct, strict=True)
        ],
        labels=[w.isoformat() for w in weeks],
        series={"AI text kept %": kept_pct, "Notes edited %": edit_pct},
        summary=[
            ("AI text kept", f"{_pct(sum(t[2] for t in totals.values()), sum(t[3] for t in totals.values()))} %"),
            ("Edit rate", f"{_pct(sum(t[1] for t in totals.values()), notes)} %"),
        ],
    )


def qa_errors(f: MetricFilter) -> Chart:
    reviews = QAReview.objects.filter(note__in=_signed_notes(f))
    reviewed = reviews.count()
    with_errors = reviews.filter(errors__isnull=False).distinct().count()
    errors = Counter()
    critical = Counter()
    for kind, severity in QAError.objects.filter(review__in=reviews).values_list("kind", "severity"):
        errors[kind] += 1
        critical[kind] += severity == QAError.Severity.CRITICAL
    kinds = QAError.Kind
    return Chart(
        key="qa-errors",
        title="QA errors by type",
        kind="bar",
        columns=["error_type", "errors", "critical"],
        rows=[[k.label, errors[k.value], critical[k.value]] for k in kinds],
        labels=[k.label for k in kinds],
        series={"Errors": [errors[k.value] for k in kinds], "Critical": [critical[k.value] for k in kinds]},
        summary=[
            ("Notes reviewed", str(reviewed)),
            ("QA error rate", f"{_pct(with_errors, reviewed)} %" if reviewed else "—"),
            ("Critical errors", str(sum(critical.values()))),
        ],
    )


def _deliveries(f: MetricFilter) -> QuerySet[Delivery]:
    return Delivery.objects.filter(note__in=_signed_notes(f)).select_related("note")


def delivery_failures(f: MetricFilter) -> Chart:
    counts: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for delivery in _deliveries(f):
        c = counts[week_of(delivery.note.signed_at, f.tz)]
        c[0] += 1
        c[1] += delivery.state == Delivery.State.FAILED
    weeks = _weeks(f)
    total, failed = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    return Chart(
        key="delivery-failures",
        title="EHR delivery failures by week",
        kind="bar",
        columns=["week", "deliveries", "failed"],
        rows=[[w.isoformat(), counts[w][0], counts[w][1]] if w in counts else [w.isoformat(), 0, 0] for w in weeks],
        labels=[w.isoformat() for w in weeks],
        series={"Failed": [counts[w][1] if w in counts else 0 for w in weeks]},
        summary=[("Deliveries", str(total)), ("Failed", str(failed)), ("Failure rate", f"{_pct(failed, total)} %")],
    )


def delivery_latency(f: MetricFilter) -> Chart:
    by_week: dict[date, list[float]] = defaultdict(list)
    every = []
    for delivery in _deliveries(f).filter(delivered_at__isnull=False):
        seconds = (delivery.delivered_at - delivery.note.signed_at).total_seconds()
        by_week[week_of(delivery.note.signed_at, f.tz)].append(seconds)
        every.append(seconds)
    weeks = _weeks(f)
    medians = [median(by_week[w]) if by_week[w] else None for w in weeks]
    return Chart(
        key="delivery-latency",
        title="EHR delivery latency (median seconds from signature to delivery) by week",
        kind="line",
        columns=["week", "delivered", "median_latency_seconds"],
        rows=[[w.isoformat(), len(by_week[w]), m] for w, m in zip(weeks, medians, strict=True)],
        labels=[w.isoformat() for w in weeks],
        series={"Median seconds": medians},
        summary=[("Delivered", str(len(every))), ("Median latency", f"{median(every) if every else '—'} s")],
    )


def unsigned_drafts_by_age(f: MetricFilter, *, now: datetime) -> Chart:
    counts = Counter()
    notes = _clinicians(Note.objects.filter(practice=f.practice, state__in=[Note.State.DRAFT, Note.State.IN_REVIEW]), f)
    for created_at in notes.values_list("created_at", flat=True):
        age_days = (now - created_at).total_seconds() / 86400
        for label, limit in AGE_BUCKETS:
            if limit is None or age_days < limit:
                counts[label] += 1
                break
    labels = [label for label, _ in AGE_BUCKETS]
    return Chart(
        key="unsigned-drafts",
        title="Unsigned drafts by age (now)",
        kind="bar",
        columns=["age", "drafts"],
        rows=[[label, counts[label]] for label in labels],
        labels=labels,
        series={"Drafts": [counts[label] for label in labels]},
        summary=[("Unsigned drafts", str(sum(counts.values())))],
    )


def flags_per_note(f: MetricFilter) -> Chart:
    notes = _clinicians(
        Note.objects.filter(practice=f.practice, created_at__gte=f.start_at, created_at__lt=f.end_before), f
    )
    note_count = notes.count()
    counts = Counter(Flag.objects.filter(note__in=notes).values_list("kind", flat=True))
    kinds = Flag.Kind
    per_note = [round(counts[k.value] / note_count, 2) if note_count else 0 for k in kinds]
    return Chart(
        key="flags-per-note",
        title="Flags per note by kind",
        kind="bar",
        columns=["kind", "flags", "flags_per_note"],
        rows=[[k.label, counts[k.value], p] for k, p in zip(kinds, per_note, strict=True)],
        labels=[k.label for k in kinds],
        series={"Flags per note": per_note},
        summary=[
            ("Notes", str(note_count)),
            ("Flags per note", str(round(sum(counts.values()) / note_count, 2)) if note_count else "—"),
        ],
    )


def satisfaction_trend(f: MetricFilter) -> Chart:
    first = f.start.replace(day=1)
    answers = _clinicians(SatisfactionPulse.objects.filter(practice=f.practice, month__gte=first, month__lte=f.end), f)
    by_month: dict[date, list[int]] = defaultdict(list)
    for month, score in answers.values_list("month", "score"):
        by_month[month].append(score)
    months, month = [], first
    while month <= f.end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    means = [round(sum(by_month[m]) / len(by_month[m]), 1) if by_month[m] else None for m in months]
    every = [s for scores in by_month.values() for s in scores]
    return Chart(
        key="satisfaction",
        title="Clinician satisfaction (monthly pulse, mean 0–10)",
        kind="line",
        columns=["month", "answers", "mean_score"],
        rows=[[m.strftime("%Y-%m"), len(by_month[m]), s] for m, s in zip(months, means, strict=True)],
        labels=[m.strftime("%Y-%m") for m in months],
        series={"Mean score": means},
        summary=[("Answers", str(len(every))), ("Mean", str(round(sum(every) / len(every), 1)) if every else "—")],
    )


def rubber_stamps(f: MetricFilter) -> Chart:
    draws = QADraw.objects.filter(note__in=_signed_notes(f)).select_related("clinician")
    per: dict[int, list] = {}
    for draw in draws:
        row = per.setdefault(draw.clinician_id, [draw.clinician.get_full_name() or draw.clinician.username, 0, 0])
        row[1] += 1
        row[2] += draw.rubber_stamp
    rows = sorted(per.values(), key=lambda r: r[0])
    return Chart(
        key="rubber-stamp",
        title="Rubber-stamp signal: notes signed with no edit, quickly, per clinician",
        kind="bar",
        columns=["clinician", "signed_notes", "rubber_stamp_notes", "share_percent"],
        rows=[[name, signed, stamped, _pct(stamped, signed)] for name, signed, stamped in rows],
        labels=[r[0] for r in rows],
        series={"Rubber-stamp notes": [r[2] for r in rows]},
        summary=[("Rubber-stamp notes", str(sum(r[2] for r in rows)))],
    )


def pilot_charts(f: MetricFilter, *, now: datetime) -> list[Chart]:
    return [pilot_chart(f, key, now=now) for key in CHART_KEYS]


CHART_KEYS = (
    "documentation-time",
    "ai-text-kept",
    "qa-errors",
    "delivery-failures",
    "delivery-latency",
    "unsigned-drafts",
    "flags-per-note",
    "satisfaction",
    "rubber-stamp",
)


def pilot_chart(f: MetricFilter, key: str, *, now: datetime) -> Chart | None:
    """One chart by its key (the CSV download's name), or None."""
    builders = {
        "documentation-time": documentation_time,
        "ai-text-kept": ai_text_kept,
        "qa-errors": qa_errors,
        "delivery-failures": delivery_failures,
        "delivery-latency": delivery_latency,
        "unsigned-drafts": lambda f: unsigned_drafts_by_age(f, now=now),
        "flags-per-note": flags_per_note,
        "satisfaction": satisfaction_trend,
        "rubber-stamp": rubber_stamps,
    }
    builder = builders.get(key)
    return builder(f) if builder else None
