"""The open-alert badge in the navigation (templates/base.html): practice
admins only, one indexed count (alert_open_idx) per page."""

from integrations.models import Alert
from notes.roles import Role, membership_of


def open_alerts(request):
    membership = membership_of(getattr(request, "user", None))
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        return {}
    count = Alert.objects.filter(practice_id=membership.practice_id, resolved_at__isnull=True).count()
    return {"open_alert_count": count}
