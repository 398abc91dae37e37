"""Alerts raised by the quality loop. One function, so the general alert
service can take its place without touching the callers."""

from integrations.models import Alert

# Not (yet) one of integrations.models.Alert.Kind: adding it there is a
# migration of the integrations app, left to the general alert service.
QA_CRITICAL = "qa_critical"


def qa_critical_alert_raise(*, review) -> Alert:
    """Tell the practice admin (delivery dashboard alerts) that a QA review
    found a critical error. The clinician sees it on the note itself
    (templates/quality/_qa_result.html). No PHI: the note id and the names
    of the staff involved only."""
    clinician = review.note.clinician
    return Alert.objects.create(
        practice_id=review.practice_id,
        kind=QA_CRITICAL,
        reason=(
            f"QA review found a critical error in note #{review.note_id} "
            f"(signed by {clinician.get_full_name() or clinician.get_username()}). "
            "Open the note to see the review."
        ),
    )
