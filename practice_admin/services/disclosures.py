"""The practice's consent disclosure text, kept as versions. A consent names
the version its client read (ClientConsent.disclosure_version, "v<n>"), so a
version is never edited: new wording is a new version."""

from django.db import IntegrityError, transaction

from audit.services import actor_person, audit_record
from notes.errors import DomainError
from notes.models import DEFAULT_DISCLOSURE_TEXT, DisclosureText, Practice
from practice_admin.access import admin_membership

MAX_TEXT = 5000


def disclosure_current(*, practice: Practice) -> DisclosureText:
    """The newest version. A practice with none (made before versions
    existed, outside practice_create) starts from the plain default."""
    current = DisclosureText.objects.filter(practice=practice).order_by("-version").first()
    if current is None:
        current, _ = DisclosureText.objects.get_or_create(
            practice=practice, version=1, defaults={"text": DEFAULT_DISCLOSURE_TEXT}
        )
    return current


@transaction.atomic
def disclosure_text_add(*, actor, text: str) -> DisclosureText:
    """A new version of the disclosure text, the one offered from now on.
    Raises NotPermitted, or DomainError on empty, unchanged or too long text."""
    membership = admin_membership(actor)
    text = text.strip()
    if not text:
        raise DomainError("Enter the disclosure text.", field="text")
    if len(text) > MAX_TEXT:
        raise DomainError(f"The disclosure text is longer than {MAX_TEXT} characters.", field="text")
    current = disclosure_current(practice=membership.practice)
    if current.text == text:
        raise DomainError(f"This is the text of version {current.version} already.", field="text")
    version = DisclosureText(practice=membership.practice, version=current.version + 1, text=text, created_by=actor)
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError:  # another admin added a version meanwhile
        raise DomainError("Another version was added a moment ago; reload and try again.", field="text") from None
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="consent.disclosure_version_add",
        obj=version,
        before={"version": current.version},
        after={"version": version.version, "text": text},
    )
    return version
