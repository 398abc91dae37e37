"""Note templates for practice admins: list, create a custom template, edit
the draft version, preview a sample draft on it, publish, diff two versions."""

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notes.errors import DomainError
from practice_admin import selectors
from practice_admin.access import admin_required
from practice_admin.forms import DraftSettingsForm, PreviewForm, SectionFormSet, TemplateCreateForm
from practice_admin.samples import SAMPLE_AI_OUTPUT
from practice_admin.services import templates as template_services


@admin_required
@require_http_methods(["GET", "POST"])
def template_list(request: HttpRequest) -> HttpResponse:
    form = TemplateCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            template = template_services.template_custom_create(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Template “{template.name}” created; edit its draft, then publish it.")
            return redirect("practice_admin:template_detail", template_id=template.pk)
    return render(
        request,
        "practice_admin/template_list.html",
        {"templates": selectors.templates_for_admin(user=request.user), "form": form},
        status=400 if form.errors else 200,
    )


def _editor_forms(draft, data=None):
    spec = template_services.version_spec(draft)
    sections = SectionFormSet(data, initial=spec["sections"], prefix="sections")
    settings_form = DraftSettingsForm(
        data,
        initial={
            "field_map": "\n".join(f"{f} = {k}" for f, k in spec["field_map"].items()),
            "fallback_section_key": spec["fallback_section_key"],
            "unplaced_policy": spec["unplaced_policy"],
        },
    )
    return sections, settings_form


@admin_required
@require_http_methods(["GET", "POST"])
def template_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    """The template's versions and, if it has one, the draft's editor."""
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    draft = template.versions.filter(is_draft=True).first()
    sections = settings_form = None
    status = 200
    if draft is not None:
        sections, settings_form = _editor_forms(draft, request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if sections.is_valid() and settings_form.is_valid():
                rows = [f.cleaned_data for f in sections.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
                try:
                    template_services.template_draft_save(
                        actor=request.user,
                        version=draft,
                        sections=rows,
                        **settings_form.cleaned_data,
                    )
                except DomainError as exc:
                    settings_form.add_error(None, exc.message)
                else:
                    messages.success(request, f"Draft v{draft.version} saved.")
                    return redirect("practice_admin:template_detail", template_id=template.pk)
            status = 400
    return render(
        request,
        "practice_admin/template_detail.html",
        {
            "template": template,
            "versions": template.versions.order_by("-version"),
            "draft": draft,
            "sections": sections,
            "settings_form": settings_form,
            "kinds": template_services.SECTION_KINDS,
        },
        status=status,
    )


@require_POST
@admin_required
def template_draft_start(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    draft = template_services.template_draft_start(actor=request.user, template=template)
    messages.success(request, f"Draft v{draft.version} ready to edit.")
    return redirect("practice_admin:template_detail", template_id=template.pk)


@require_POST
@admin_required
def template_publish(request: HttpRequest, template_id: int, version: int) -> HttpResponse:
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    draft = selectors.template_version_for_admin(user=request.user, template=template, version=version)
    try:
        template_services.template_publish(actor=request.user, version=draft)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"v{draft.version} is now the active version. Drafts already posted keep their version."
        )
    return redirect("practice_admin:template_detail", template_id=template.pk)


@require_POST
@admin_required
def template_draft_discard(request: HttpRequest, template_id: int, version: int) -> HttpResponse:
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    draft = selectors.template_version_for_admin(user=request.user, template=template, version=version)
    try:
        template_services.template_draft_discard(actor=request.user, version=draft)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Draft v{version} discarded.")
    return redirect("practice_admin:template_detail", template_id=template.pk)


@require_POST
@admin_required
def template_psychotherapy(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    value = request.POST.get("is_psychotherapy_notes") == "on"
    template_services.template_psychotherapy_set(actor=request.user, template=template, value=value)
    messages.success(
        request,
        "Marked as psychotherapy (process) notes: kept here, never delivered to the EHR."
        if value
        else "No longer marked as psychotherapy notes.",
    )
    return redirect("practice_admin:template_detail", template_id=template.pk)


@admin_required
@require_GET
def template_diff(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    versions = list(template.versions.order_by("version"))
    numbers = [v.version for v in versions]
    if not numbers:
        # A template saved without any version (imported or half-created) has
        # nothing to compare: a 404 rather than an IndexError.
        raise Http404("This template has no versions to compare.")
    try:
        a = int(request.GET.get("a") or (numbers[-2] if len(numbers) > 1 else numbers[0]))
        b = int(request.GET.get("b") or numbers[-1])
    except ValueError:
        a, b = numbers[0], numbers[-1]
    old = selectors.template_version_for_admin(user=request.user, template=template, version=a)
    new = selectors.template_version_for_admin(user=request.user, template=template, version=b)
    return render(
        request,
        "practice_admin/template_diff.html",
        {
            "template": template,
            "versions": versions,
            "old": old,
            "new": new,
            "diff": template_services.template_versions_diff(old, new),
        },
    )


@admin_required
@require_http_methods(["GET", "POST"])
def template_preview(request: HttpRequest, template_id: int, version: int) -> HttpResponse:
    """A sample AI output mapped onto a version (usually the draft): the
    sections it fills and the flags it raises. Nothing is saved."""
    template = selectors.template_for_admin(user=request.user, template_id=template_id)
    target = selectors.template_version_for_admin(user=request.user, template=template, version=version)
    form = PreviewForm(request.POST or None, initial={"sample": json.dumps(SAMPLE_AI_OUTPUT, indent=2)})
    mapped, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                mapped = template_services.template_preview(
                    actor=request.user, version=target, sample=form.cleaned_data["sample"]
                )
            except DomainError as exc:
                form.add_error("sample", exc.message)
        if form.errors:
            status = 400
    return render(
        request,
        "practice_admin/template_preview.html",
        {"template": template, "version": target, "form": form, "mapped": mapped},
        status=status,
    )
