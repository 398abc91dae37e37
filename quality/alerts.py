"""Alerts raised by the quality loop, through the general alert service
(integrations.services.alerts): shown in the app, emailed to practice admins
and sent to the practice's webhook, deduplicated per note while open. The
clinician is told too: by email (a link, no PHI) and on the note itself
(templates/quality/_qa_result.html)."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from integrations.models import Alert
from integrations.services.alerts import alert_raise

logger = logging.getLogger(__name__)


def qa_critical_alert_raise(*, review) -> Alert:
    """Tell the practice admins and the note's clinician that a QA review
    found a critical error. The alert's reason (shown in the app only) names
    the note id and the staff; the clinician's email only links to the note."""
    note = review.note
    clinician = note.clinician
    alert = alert_raise(
        practice=note.practice,
        kind=Alert.Kind.QA_CRITICAL,
        note=note,
        actor=review.reviewer,
        reason=(
            f"QA review found a critical error in note #{review.note_id} "
            f"(signed by {clinician.get_full_name() or clinician.get_username()}). "
            "Open the note to see the review."
        ),
    )
    if clinician.email:
        link = f"{settings.PSYFI_PUBLIC_URL.rstrip('/')}/notes/{note.pk}/"
        transaction.on_commit(lambda: _clinician_email(to=clinician.email, note_id=note.pk, link=link))
    return alert


def _clinician_email(*, to: str, note_id: int, link: str) -> None:
    try:
        send_mail(
            f"psyfi-review: a QA review found a critical error in note #{note_id}",
            "A QA reviewer recorded a critical error in one of your signed notes. "
            f"Open it to see the review and decide whether to amend it:\n\n{link}\n",
            settings.DEFAULT_FROM_EMAIL,
            [to],
        )
    except Exception:  # noqa: BLE001 - the note page and the admins' alert still show it
        logger.warning("Could not email the clinician of note %s about a critical QA error", note_id)
