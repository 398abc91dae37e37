"""The clinician's review screen: the page, autosave, flag actions, OTP
step-up, signing (and "sign and next"), discard, amendment, version history,
the ICD-10-CM picker and the active-time heartbeat.

Thin like notes/views.py: validate, fetch through a selector (another
clinician's note is a 404), call a service, answer. Domain errors become 4xx:
JSON ({"detail", "errors": {field: [...]}}) for the page's scripts, or the
review page re-rendered with the message for plain form posts.
"""

from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_phi_access
from integrations.selectors import delivery_status_for_notes
from notes import review_services, selectors, services
from notes.errors import DomainError, SectionConflict
from notes.forms import ReasonForm, StepUpForm
from notes.mapping import _as_text, code_corrections
from notes.models import DraftFeedback, Flag, Note, TemplateSection
from notes.review_diff import text_diff
from notes.roles import Role, membership_of
from notes.views import member_required
from notes.vocabulary import icd10_search

STEP_UP_KEY = "step_up_at"
BEATS_KEY = "review_beats"
EDITABLE_STATES = (Note.State.DRAFT, Note.State.IN_REVIEW)
MAX_SECTION_CHARS = 100_000


class SectionTextForm(forms.Form):
    # strip=False: whitespace is the clinician's, and an autosave that
    # trimmed it would record an edit nobody made.
    text = forms.CharField(required=False, strip=False, max_length=MAX_SECTION_CHARS)
    # The section version the page started from. Optional so that a page
    # loaded before versions existed still saves; the page always sends it.
    version = forms.IntegerField(required=False, min_value=1)


class PlaceForm(forms.Form):
    section = forms.SlugField()


class FixCodeForm(forms.Form):
    code = forms.CharField(max_length=10)


class ChooseTermForm(forms.Form):
    term = forms.CharField(max_length=200)


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000)


class HeartbeatForm(forms.Form):
    seconds = forms.IntegerField(min_value=0, max_value=3600)


class ShortcutsForm(forms.Form):
    # An unchecked box is absent from the post: absent means "off".
    single_key_shortcuts = forms.BooleanField(required=False)


# --- the queue's filter and sort, carried through a batch (issue 17, point 6) -------------------------


def queue_filters(data) -> dict:
    """The queue's filter and sort from a query string, each value checked
    against what the queue offers; anything else is the default (no 400: a
    stale bookmark still opens the queue)."""
    flags = data.get("flags", "")
    sort = data.get("sort", "session")
    client = data.get("client", "")
    return {
        "when": "today" if data.get("when") == "today" else "all",
        "flags": flags if flags in selectors.QUEUE_FLAG_FILTERS else "",
        "sort": sort if sort in selectors.QUEUE_SORTS else "session",
        "client": int(client) if client.isdigit() and len(client) < 12 else None,
    }


def queue_query(filters: dict) -> str:
    """The filters as a query string ("" for the default queue), appended to
    every review link and form so "sign and next" walks the queue as shown."""
    params = {
        "when": "" if filters["when"] == "all" else filters["when"],
        "client": filters["client"] or "",
        "flags": filters["flags"],
        "sort": "" if filters["sort"] == "session" else filters["sort"],
    }
    params = {k: v for k, v in params.items() if v}
    return f"?{urlencode(params)}" if params else ""


def _neighbours(request: HttpRequest, note: Note, filters: dict) -> tuple[int | None, int | None]:
    today = None
    if filters["when"] == "today":
        today = selectors.practice_day_range(practice=note.practice, now=timezone.now())
    return selectors.review_queue_neighbours(
        user=request.user,
        note=note,
        today=today,
        client_id=filters["client"],
        flags=filters["flags"],
        sort=filters["sort"],
    )


# --- helpers -----------------------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _field_errors(form: forms.Form) -> dict:
    return {field: [str(e) for e in errs] for field, errs in form.errors.items()}


def _json_error(message: str, *, status: int, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": message, "errors": errors or {"non_field_errors": [message]}}, status=status)


def step_up_at(request: HttpRequest) -> datetime | None:
    raw = request.session.get(STEP_UP_KEY)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


def step_up_window(request: HttpRequest):
    """The practice's step-up window (practice settings), else the deployment's."""
    membership = membership_of(request.user)
    return membership.practice.step_up_window if membership is not None else settings.SIGN_STEP_UP_WINDOW


def step_up_valid_until(request: HttpRequest, now: datetime) -> datetime | None:
    at = step_up_at(request)
    window = step_up_window(request)
    if at is None or now - at > window:
        return None
    return at + window


def _step_up(request: HttpRequest) -> StepUpForm:
    """Check the posted code; on success one code covers every signature for
    the practice's step-up window (kept in the session, which ends with the login)."""
    form = StepUpForm(request.POST, user=request.user)
    if form.is_valid():
        request.session[STEP_UP_KEY] = timezone.now().isoformat()
    return form


def _note(request: HttpRequest, note_id: int) -> Note:
    return selectors.note_get_for_user(user=request.user, note_id=note_id)


def _flag(note: Note, flag_id: int) -> Flag:
    flag = note.flags.filter(pk=flag_id).first()
    if flag is None:
        raise Http404("No such flag on this note.")
    flag.note = note
    return flag


def _review_url(note_id: int, anchor: str = "", *, query: str = "") -> str:
    return reverse("review", args=[note_id]) + query + (f"#{anchor}" if anchor else "")


def _section_diffs(note: Note) -> list[dict]:
    # A code the mapping normalised ("f41.1" -> F41.1) shows what the scribe wrote beside it.
    corrections = code_corrections(note.draft.payload)
    return [
        {
            "section": s,
            "diff": text_diff(s.ai_text, s.text),
            "code_chips": [(code, corrections.get(code, "")) for code in s.codes],
        }
        for s in note.sections.all()
    ]


def _render_review(
    request: HttpRequest, note: Note, *, status: int = 200, errors: dict | None = None, conflict: dict | None = None
):
    now = timezone.now()
    flags = sorted(note.flags.all(), key=lambda f: (f.resolved_at is not None, f.pk))
    sections = _section_diffs(note)
    editable = note.state in EDITABLE_STATES
    filters = queue_filters(request.GET)
    prev_id, next_id = _neighbours(request, note, filters) if editable else (None, None)
    membership = membership_of(request.user)
    open_flags = [f for f in flags if f.is_open]
    errors = errors or {}
    for flag in flags:
        flag.error = errors.get(f"flag-{flag.pk}", "")
        flag.value_text = _as_text(flag.value)
    for item in sections:
        item["error"] = errors.get(f"section-{item['section'].key}", "")
        # A refused stale save (no-script form): the textarea keeps the
        # clinician's text at the new version, so saving again keeps it.
        item["conflict"] = conflict if conflict and conflict["section"] == item["section"].key else None
    # Where this version, and the one it amends, stand at the EHR (issue 13, point 7).
    ehr_ids = [pk for pk in (note.pk if note.is_signed else None, note.amends_id) if pk]
    ehr = delivery_status_for_notes(notes=ehr_ids, practice=note.practice, now=now) if ehr_ids else {}
    return render(
        request,
        "notes/review.html",
        {
            "note": note,
            "sections": sections,
            "text_sections": [d["section"] for d in sections if d["section"].kind == TemplateSection.Kind.TEXT],
            "flags": flags,
            "open_flags": len(open_flags),
            "editable": editable,
            "prev_id": prev_id,
            "next_id": next_id,
            "queue_qs": queue_query(filters),
            "single_keys": membership.single_key_shortcuts if membership else True,
            "unchanged_sections": sum(1 for item in sections if not item["diff"].changed),
            "step_up_until": step_up_valid_until(request, now),
            "step_up_minutes": int(step_up_window(request).total_seconds() // 60),
            "heartbeat_ms": int(
                getattr(
                    settings, "REVIEW_HEARTBEAT_INTERVAL_SECONDS", review_services.REVIEW_HEARTBEAT_INTERVAL_SECONDS
                )
                * 1000
            ),
            "idle_ms": int(
                getattr(settings, "REVIEW_IDLE_AFTER_SECONDS", review_services.REVIEW_IDLE_AFTER_SECONDS) * 1000
            ),
            "amendment": Note.objects.filter(amends=note).only("pk", "version", "state").first()
            if note.state == Note.State.SIGNED
            else None,
            "errors": errors,
            # Issue 15: the clinician's own feedback on the AI draft (one row at most).
            "feedback": DraftFeedback.objects.filter(draft_id=note.draft_id, clinician=request.user).first(),
            "feedback_reasons": DraftFeedback.Reason.choices,
            "ehr_status": ehr.get(note.pk),
            "earlier_ehr_status": ehr.get(note.amends_id),
        },
        status=status,
    )


def _fail(request, note, exc: DomainError, *, where: str):
    """A refused action: JSON for scripts, else the page again with the
    message next to the form that was used."""
    field = exc.field or "non_field_errors"
    if _wants_json(request):
        return _json_error(exc.message, status=exc.status_code, errors={field: [exc.message]})
    return _render_review(request, note, status=exc.status_code, errors={where: exc.message})


def _invalid(request, note, form: forms.Form, *, where: str):
    errors = _field_errors(form)
    message = " ".join(m for msgs in errors.values() for m in msgs)
    if _wants_json(request):
        return _json_error(message, status=400, errors=errors)
    return _render_review(request, note, status=400, errors={where: message})


def _done(request, note_id: int, message: str, *, anchor: str = "", data: dict | None = None):
    if _wants_json(request):
        return JsonResponse({"ok": True, "detail": message, **(data or {})})
    messages.success(request, message)
    return redirect(_review_url(note_id, anchor, query=queue_query(queue_filters(request.GET))))


# --- the page ----------------------------------------------------------------------------------------


@require_GET
@member_required(Role.CLINICIAN)
def review(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    if note.state == Note.State.DRAFT:
        # Opening is the first step of review (DESIGN: draft -> in_review).
        note = services.note_open(note=note, actor=request.user)
        note = _note(request, note_id)
    audit_phi_access(user=request.user, note=note)
    return _render_review(request, note)


def _conflict(request: HttpRequest, note: Note, exc: SectionConflict, *, yours: str) -> HttpResponse:
    """409 with both texts: the one saved meanwhile (with its version, to save
    against) and the clinician's, which was not written."""
    current = exc.section
    diff = text_diff(current.ai_text, current.text)
    conflict = {
        "section": current.key,
        "version": current.version,
        "text": current.text,
        "yours": yours,
        "diff_html": str(diff.html),
        "edited": diff.changed,
        "inserted_words": diff.inserted_words,
        "deleted_words": diff.deleted_words,
    }
    if _wants_json(request):
        return JsonResponse(
            {"detail": exc.message, "errors": {"text": [exc.message]}, "conflict": conflict}, status=exc.status_code
        )
    return _render_review(
        request, note, status=exc.status_code, errors={f"section-{current.key}": exc.message}, conflict=conflict
    )


@require_POST
@member_required(Role.CLINICIAN)
def section_save(request: HttpRequest, note_id: int, section_key: str) -> HttpResponse:
    """Autosave (JSON) and the no-script Save button (redirect)."""
    note = _note(request, note_id)
    form = SectionTextForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"section-{section_key}")
    before = note.sections.filter(key=section_key).values_list("text", flat=True).first()
    try:
        section = services.note_edit_section(
            note=note,
            section_key=section_key,
            text=form.cleaned_data["text"],
            expected_version=form.cleaned_data["version"],
            actor=request.user,
        )
    except SectionConflict as exc:
        return _conflict(request, note, exc, yours=form.cleaned_data["text"])
    except DomainError as exc:
        return _fail(request, note, exc, where=f"section-{section_key}")
    diff = text_diff(section.ai_text, section.text)
    if _wants_json(request):
        return JsonResponse(
            {
                "saved": True,
                "changed": before != section.text,
                "section": section.key,
                "version": section.version,
                "diff_html": str(diff.html),
                "edited": diff.changed,
                "inserted_words": diff.inserted_words,
                "deleted_words": diff.deleted_words,
                "saved_at": timezone.now().isoformat(),
            }
        )
    messages.success(request, f"“{section.label}” saved.")
    return redirect(_review_url(note.pk, f"section-{section.key}", query=queue_query(queue_filters(request.GET))))


# --- flags -------------------------------------------------------------------------------------------


@require_POST
@member_required(Role.CLINICIAN)
def flag_place(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    form = PlaceForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"flag-{flag.pk}")
    try:
        section = review_services.flag_place_content(
            flag=flag, section_key=form.cleaned_data["section"], actor=request.user
        )
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(request, note.pk, f"Placed into “{section.label}”.", anchor=f"section-{section.key}")


@require_POST
@member_required(Role.CLINICIAN)
def flag_fix_code(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    form = FixCodeForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"flag-{flag.pk}")
    try:
        section = review_services.flag_fix_code(flag=flag, code=form.cleaned_data["code"], actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(request, note.pk, f"Diagnosis code set: {section.codes[-1]}.", anchor="flags")


@require_POST
@member_required(Role.CLINICIAN)
def flag_choose_term(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    form = ChooseTermForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"flag-{flag.pk}")
    try:
        section = review_services.flag_choose_intervention(
            flag=flag, term=form.cleaned_data["term"], actor=request.user
        )
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(request, note.pk, f"Intervention set: {section.codes[-1]}.", anchor="flags")


@require_POST
@member_required(Role.CLINICIAN)
def flag_keep_term(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    """Keep an unlisted intervention as written (text only, not coded) and
    propose it for the practice's vocabulary."""
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    try:
        proposal = review_services.flag_keep_intervention_as_written(flag=flag, actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(
        request,
        note.pk,
        f"Kept “{proposal.term}” as written in the text (not coded); your practice admin will review it "
        "for the vocabulary.",
        anchor="flags",
    )


@require_POST
@member_required(Role.CLINICIAN)
def flag_acknowledge(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"flag-{flag.pk}")
    try:
        review_services.flag_acknowledge_risk(flag=flag, comment=form.cleaned_data["comment"], actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(request, note.pk, "Risk item acknowledged.", anchor="flags")


@require_POST
@member_required(Role.CLINICIAN)
def flag_dismiss(request: HttpRequest, note_id: int, flag_id: int) -> HttpResponse:
    note = _note(request, note_id)
    flag = _flag(note, flag_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where=f"flag-{flag.pk}")
    try:
        review_services.flag_dismiss(flag=flag, reason=form.cleaned_data["reason"], actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where=f"flag-{flag.pk}")
    return _done(request, note.pk, "Flag dismissed.", anchor="flags")


# --- step-up and signing -----------------------------------------------------------------------------


@require_POST
@member_required(Role.CLINICIAN)
def step_up(request: HttpRequest) -> HttpResponse:
    """Enter one code before a batch; the queue and review pages offer it."""
    form = _step_up(request)
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("queue")
    if not form.is_valid():
        if _wants_json(request):
            # The form's own words: they say whether to wait for the next code or how long.
            message = " ".join(form.errors.get("otp_token", [])) or "That code is not valid."
            return _json_error(message, status=400, errors=_field_errors(form))
        return render(request, "notes/step_up.html", {"form": form, "next": next_url}, status=400)
    minutes = int(step_up_window(request).total_seconds() // 60)
    if _wants_json(request):
        return JsonResponse({"ok": True, "valid_minutes": minutes})
    messages.success(request, f"Code accepted: you can sign for the next {minutes} minutes.")
    return redirect(next_url)


@require_POST
@member_required(Role.CLINICIAN)
def sign(request: HttpRequest, note_id: int) -> HttpResponse:
    """Sign with the session's step-up, or a code entered on the same form.
    then=next goes on to the next note waiting ("sign and next")."""
    note = _note(request, note_id)
    if request.POST.get("otp_token", "").strip():
        form = _step_up(request)
        if not form.is_valid():
            return _invalid(request, note, form, where="sign")
    try:
        signed = services.note_sign(note=note, actor=request.user, step_up_at=step_up_at(request))
    except DomainError as exc:
        return _fail(request, note, exc, where="sign")
    message = f"Signed the note for {signed.client.full_name}."
    if request.POST.get("then") == "next":
        # The queue as the clinician filtered and sorted it (the form's action carries it).
        filters = queue_filters(request.GET)
        _, next_id = _neighbours(request, signed, filters)
        if _wants_json(request):
            return JsonResponse({"ok": True, "detail": message, "next": next_id})
        messages.success(request, message)
        if next_id is None:
            messages.success(request, "That was the last note waiting. Batch cleared.")
            return redirect(reverse("queue") + queue_query(filters))
        return redirect(_review_url(next_id, query=queue_query(filters)))
    return _done(request, signed.pk, message)


@require_POST
@member_required(Role.CLINICIAN)
def discard(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where="discard")
    filters = queue_filters(request.GET)
    _, next_id = _neighbours(request, note, filters)
    try:
        services.note_discard(note=note, reason=form.cleaned_data["reason"], actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where="discard")
    messages.success(request, f"Discarded the draft for {note.client.full_name}; it will not be delivered.")
    query = queue_query(filters)
    return redirect(_review_url(next_id, query=query) if next_id else reverse("queue") + query)


@require_POST
@member_required(Role.CLINICIAN)
def amend(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, note, form, where="amend")
    try:
        amendment = services.note_amend(note=note, reason=form.cleaned_data["reason"], actor=request.user)
    except DomainError as exc:
        return _fail(request, note, exc, where="amend")
    messages.success(request, f"Amendment started as version {amendment.version}. Edit, then sign it again.")
    return redirect(_review_url(amendment.pk))


@require_GET
@member_required(Role.CLINICIAN)
def history(request: HttpRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    versions = list(selectors.note_versions_for_user(user=request.user, note=note))
    events = list(selectors.note_edit_events_for_user(user=request.user, note=note))
    version_of = {v.pk: v.version for v in versions}
    for event in events:
        event.version = version_of.get(event.note_id)
        if event.action == "note.edit" and event.before is not None and event.after is not None:
            event.diff = text_diff(event.before.get("text", ""), event.after.get("text", ""))
    return render(request, "notes/history.html", {"note": note, "versions": versions, "events": events})


# --- small JSON endpoints ----------------------------------------------------------------------------


@require_GET
@member_required(Role.CLINICIAN)
def icd10_lookup(request: HttpRequest) -> JsonResponse:
    query = request.GET.get("q", "").strip()[:100]
    results = icd10_search(query, limit=20) if len(query) >= 2 else []
    return JsonResponse({"results": results})


@require_GET
@member_required(Role.CLINICIAN)
def vocabulary_lookup(request: HttpRequest) -> JsonResponse:
    """The practice's intervention terms matching ?q= (name or synonym), for
    the term search on an unknown-intervention flag."""
    query = request.GET.get("q", "").strip()[:100]
    return JsonResponse({"results": selectors.intervention_terms_search(user=request.user, query=query)})


@require_POST
@member_required(Role.CLINICIAN)
def shortcuts_preference(request: HttpRequest) -> HttpResponse:
    """Turn single-key shortcuts on or off for this account (every device)."""
    form = ShortcutsForm(request.POST)
    form.is_valid()  # a boolean that is absent or anything else is "off"; never invalid
    enabled = review_services.review_shortcuts_set(
        user=request.user, enabled=form.cleaned_data.get("single_key_shortcuts", False)
    )
    message = "Single-key shortcuts are on." if enabled else "Single-key shortcuts are off; Ctrl+Enter still signs."
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("queue")
    if _wants_json(request):
        return JsonResponse({"ok": True, "single_key_shortcuts": enabled, "detail": message})
    messages.success(request, message)
    return redirect(next_url)


@require_POST
@member_required(Role.CLINICIAN)
def heartbeat(request: HttpRequest, note_id: int) -> JsonResponse:
    note = _note(request, note_id)
    form = HeartbeatForm(request.POST)
    if not form.is_valid():
        return _json_error("Send the active seconds as a whole number.", status=400, errors=_field_errors(form))
    now = timezone.now()
    beats = request.session.get(BEATS_KEY, {})
    last = beats.get(str(note.pk))
    try:
        credited = review_services.note_review_time_add(
            note=note,
            actor=request.user,
            seconds=form.cleaned_data["seconds"],
            last_beat_at=datetime.fromisoformat(last) if last else None,
            now=now,
        )
    except DomainError as exc:
        return _json_error(exc.message, status=exc.status_code)
    beats[str(note.pk)] = now.isoformat()
    # One entry per note reviewed in this login; the session ends with it.
    request.session[BEATS_KEY] = beats
    return JsonResponse({"credited": credited})
