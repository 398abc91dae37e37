"""The practice's intervention vocabulary for practice admins."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from notes.errors import DomainError
from practice_admin import selectors
from practice_admin.access import admin_required
from practice_admin.forms import CsvUploadForm, SynonymsForm, TermForm
from practice_admin.services import vocabularies as vocab


@admin_required
@require_http_methods(["GET", "POST"])
def term_list(request: HttpRequest) -> HttpResponse:
    form = TermForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            term = vocab.term_add(
                actor=request.user,
                term=form.cleaned_data["term"],
                synonyms=vocab.synonyms_parse(form.cleaned_data["synonyms"]),
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"“{term.term}” added to the vocabulary.")
            return redirect("practice_admin:terms")
    return render(
        request,
        "practice_admin/term_list.html",
        {"terms": selectors.terms_for_admin(user=request.user), "form": form, "import_form": CsvUploadForm()},
        status=400 if form.errors else 200,
    )


@admin_required
@require_http_methods(["GET", "POST"])
def term_detail(request: HttpRequest, term_id: int) -> HttpResponse:
    term = selectors.term_for_admin(user=request.user, term_id=term_id)
    form = SynonymsForm(request.POST or None, initial={"synonyms": ", ".join(term.synonyms or [])})
    if request.method == "POST" and form.is_valid():
        try:
            vocab.term_synonyms_set(
                actor=request.user, term=term, synonyms=vocab.synonyms_parse(form.cleaned_data["synonyms"])
            )
        except DomainError as exc:
            form.add_error("synonyms", exc.message)
        else:
            messages.success(request, f"Synonyms of “{term.term}” saved.")
            return redirect("practice_admin:term_detail", term_id=term.pk)
    return render(
        request,
        "practice_admin/term_detail.html",
        {
            "term": term,
            "form": form,
            "in_use": vocab.term_in_use(term),
            "history": term.history.select_related("history_user").order_by("-history_date")[:100],
        },
        status=400 if form.errors else 200,
    )


@require_POST
@admin_required
def term_action(request: HttpRequest, term_id: int, action: str) -> HttpResponse:
    term = selectors.term_for_admin(user=request.user, term_id=term_id)
    try:
        if action == "retire":
            vocab.term_active_set(actor=request.user, term=term, active=False)
            messages.success(request, f"“{term.term}” retired: later drafts no longer code it.")
        elif action == "reactivate":
            vocab.term_active_set(actor=request.user, term=term, active=True)
            messages.success(request, f"“{term.term}” is active again.")
        elif action == "delete":
            vocab.term_delete(actor=request.user, term=term)
            messages.success(request, f"“{term.term}” deleted.")
            return redirect("practice_admin:terms")
        else:
            messages.error(request, "Unknown action.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("practice_admin:term_detail", term_id=term.pk)


@require_POST
@admin_required
def term_import(request: HttpRequest) -> HttpResponse:
    form = CsvUploadForm(request.POST, request.FILES)
    errors: list[str] = []
    if form.is_valid():
        try:
            result = vocab.vocabulary_import(actor=request.user, data=form.cleaned_data["file"].read())
        except vocab.VocabularyImportRejected as exc:
            messages.error(request, exc.message)
            errors = exc.errors
        else:
            messages.success(request, f"Imported: {len(result.added)} added, {len(result.updated)} updated.")
            return redirect("practice_admin:terms")
    return render(
        request,
        "practice_admin/term_list.html",
        {
            "terms": selectors.terms_for_admin(user=request.user),
            "form": TermForm(),
            "import_form": form,
            "import_errors": errors,
        },
        status=400,
    )
