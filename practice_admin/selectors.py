"""Reads for the practice admin pages, always scoped to the admin's practice:
another practice's object is a 404, never a page."""

from django.db.models import Q, QuerySet
from django.http import Http404

from notes.models import (
    AISource,
    AISourceKey,
    Client,
    DisclosureText,
    InterventionTerm,
    Membership,
    NoteTemplate,
    NoteTemplateVersion,
)
from practice_admin.access import admin_membership


def _practice_id(user) -> int:
    return admin_membership(user).practice_id


def _one(queryset: QuerySet, pk: int, what: str):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj


def clients_search(*, user, query: str = "") -> QuerySet[Client]:
    """The practice's clients; query matches a name (given, family or both,
    any order), the EHR patient id, or a date of birth written YYYY-MM-DD."""
    clients = Client.objects.filter(practice_id=_practice_id(user)).select_related("clinician")
    for word in query.split():
        match = (
            Q(given_name__icontains=word)
            | Q(family_name__icontains=word)
            | Q(ehr_patient_id__iexact=word)
            | Q(ehr_patient_id__istartswith=word)
        )
        if len(word) == 10 and word[4] == "-" and word[7] == "-":
            match |= Q(date_of_birth=word) if word.replace("-", "").isdigit() else Q()
        clients = clients.filter(match)
    return clients.prefetch_related("consents").order_by("family_name", "given_name", "pk")


def client_for_admin(*, user, client_id: int) -> Client:
    return _one(
        Client.objects.filter(practice_id=_practice_id(user)).select_related("clinician", "practice"),
        client_id,
        "client",
    )


def practice_clinicians(*, user) -> QuerySet:
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(
            membership__practice_id=_practice_id(user),
            membership__role=Membership.Role.CLINICIAN,
            membership__is_active=True,
            is_active=True,
        )
        .order_by("last_name", "first_name", "username")
    )


def disclosure_texts(*, user) -> QuerySet[DisclosureText]:
    return DisclosureText.objects.filter(practice_id=_practice_id(user)).select_related("created_by")


def templates_for_admin(*, user) -> QuerySet[NoteTemplate]:
    return NoteTemplate.objects.filter(practice_id=_practice_id(user)).prefetch_related("versions").order_by("name")


def template_for_admin(*, user, template_id: int) -> NoteTemplate:
    return _one(NoteTemplate.objects.filter(practice_id=_practice_id(user)), template_id, "template")


def template_version_for_admin(*, user, template: NoteTemplate, version: int) -> NoteTemplateVersion:
    found = template.versions.filter(version=version).prefetch_related("sections").first()
    if found is None or template.practice_id != _practice_id(user):
        raise Http404("No such template version.")
    return found


def terms_for_admin(*, user) -> QuerySet[InterventionTerm]:
    return InterventionTerm.objects.filter(practice_id=_practice_id(user)).order_by("-is_active", "term")


def term_for_admin(*, user, term_id: int) -> InterventionTerm:
    return _one(InterventionTerm.objects.filter(practice_id=_practice_id(user)), term_id, "term")


def ai_sources_for_admin(*, user) -> QuerySet[AISource]:
    return (
        AISource.objects.filter(practice_id=_practice_id(user))
        .prefetch_related("keys")
        .order_by("-is_active", "name", "pk")
    )


def ai_source_for_admin(*, user, source_id: int) -> AISource:
    return _one(AISource.objects.filter(practice_id=_practice_id(user)), source_id, "AI source")


def ai_source_key_for_admin(*, user, key_id: int) -> AISourceKey:
    return _one(
        AISourceKey.objects.filter(ai_source__practice_id=_practice_id(user)).select_related("ai_source__practice"),
        key_id,
        "key",
    )
