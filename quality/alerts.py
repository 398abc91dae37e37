"""Alerts raised by the quality loop, through the general alert service
(integrations.services.alerts): shown in the app, emailed to practice admins
and sent to the practice's webhook, deduplicated per note while open."""

from integrations.models import Alert
from integrations.services.alerts import alert_raise


def qa_critical_alert_raise(*, review) -> Alert:
    """Tell the practice admins that a QA review found a critical error. The
    clinician sees it on the note itself (templates/quality/_qa_result.html).
    The reason (shown in the app only) names the note id and the staff."""
    clinician = review.note.clinician
    return alert_raise(
        practice=review.note.practice,
        kind=Alert.Kind.QA_CRITICAL,
        note=review.note,
        actor=review.reviewer,
        reason=(
            f"QA review found a critical error in note #{review.note_id} "
            f"(signed by {clinician.get_full_name() or clinician.get_username()}). "
            "Open the note to see the review."
        ),
    )
