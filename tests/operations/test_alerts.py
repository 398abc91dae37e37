"""Alerts: one model and service. Raised once while open (the database
enforces it), counted when raised again, acknowledged and resolved by a
practice admin with audit events, shown in a list and a badge; a broken
audit chain raises one."""

import pytest
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent
from integrations.errors import AlertRefused
from integrations.models import Alert, AlertNotification
from integrations.services import alert_acknowledge, alert_raise, alert_resolve
from integrations.services.alert_rules import audit_chain_check
from notes.errors import NotPermitted


def test_a_repeat_while_open_is_counted_not_raised_again(world):
    first = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="QA: wrong dose", dedup_key="n1")
    again = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="QA: wrong dose", dedup_key="n1")
    assert again.pk == first.pk and first.is_new and not again.is_new
    assert Alert.objects.get(pk=first.pk).count == 2
    assert Alert.objects.filter(practice=world.practice).count() == 1
    # Notified once (email: practice admins), not once per raise.
    assert AlertNotification.objects.filter(alert=first).count() == 1
    assert AuditEvent.objects.filter(action="alert.raise", object_id=str(first.pk)).count() == 1


def test_other_keys_and_kinds_are_separate_alerts(world):
    a = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key="n1")
    b = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key="n2")
    c = alert_raise(practice=world.practice, kind=Alert.Kind.SCHEMA_DRIFT, reason="x", dedup_key="n1")
    d = alert_raise(practice=world.other_practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key="n1")
    assert len({a.pk, b.pk, c.pk, d.pk}) == 4


def test_the_database_refuses_a_second_open_alert_with_the_same_key(world):
    alert_raise(practice=world.practice, kind=Alert.Kind.MAPPING_ERROR, reason="x", dedup_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(practice=world.practice, kind=Alert.Kind.MAPPING_ERROR, reason="y", dedup_key="k")


def test_an_unknown_kind_is_refused(world):
    with pytest.raises(ValueError):
        alert_raise(practice=world.practice, kind="nonsense", reason="x")


def test_a_resolved_alert_is_raised_anew(world):
    first = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key="k")
    alert_resolve(alert=first, actor=world.admin)
    second = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key="k")
    assert second.pk != first.pk and second.is_new and second.count == 1


def test_acknowledge_and_resolve_from_the_list_are_audited_with_the_admin(world, login_as):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.SCHEMA_DRIFT, reason="DocumentReference.date gone")
    browser = login_as(world.admin)
    page = browser.get("/integrations/alerts/")
    assert page.status_code == 200
    assert b"DocumentReference.date gone" in page.content
    assert browser.post(f"/integrations/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert browser.post(f"/integrations/alerts/{alert.pk}/resolve/").status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == world.admin and alert.resolved_by == world.admin and alert.resolved_at
    events = AuditEvent.objects.filter(object_type="integrations.alert", object_id=str(alert.pk))
    by_action = {e.action: e for e in events}
    assert by_action["alert.acknowledge"].actor_user == world.admin
    assert by_action["alert.resolve"].actor_user == world.admin


def test_resolving_twice_is_refused_with_a_message(world):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x")
    alert_resolve(alert=alert, actor=world.admin)
    with pytest.raises(AlertRefused, match="already resolved"):
        alert_resolve(alert=alert, actor=world.admin)
    with pytest.raises(AlertRefused):
        alert_acknowledge(alert=alert, actor=world.admin)


def test_only_a_practice_admin_of_the_practice_acknowledges_or_resolves(world, login_as):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x")
    with pytest.raises(NotPermitted):
        alert_resolve(alert=alert, actor=world.clinician)
    with pytest.raises(NotPermitted):
        alert_acknowledge(alert=alert, actor=world.outsider)
    # Another practice's alert is not found, not refused.
    other = alert_raise(practice=world.other_practice, kind=Alert.Kind.QA_CRITICAL, reason="x")
    assert login_as(world.admin).post(f"/integrations/alerts/{other.pk}/resolve/").status_code == 404
    assert login_as(world.clinician).get("/integrations/alerts/").status_code == 403
    other.refresh_from_db()
    assert other.resolved_at is None


def test_the_navigation_badge_counts_open_alerts_for_practice_admins(world, login_as):
    for key in ("a", "b"):
        alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x", dedup_key=key)
    alert_raise(practice=world.other_practice, kind=Alert.Kind.QA_CRITICAL, reason="x")
    page = login_as(world.admin).get("/integrations/deliveries/").content.decode()
    assert 'aria-label="2 open"' in page
    assert "/integrations/alerts/" not in login_as(world.clinician).get("/clients/").content.decode()


def test_a_broken_audit_chain_raises_an_alert(world):
    alert_raise(practice=world.practice, kind=Alert.Kind.QA_CRITICAL, reason="x")  # writes audit events
    assert audit_chain_check(practice_id=world.practice.pk) == []
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(
                "UPDATE audit_auditevent SET action = 'tampered' WHERE practice_id = %s AND seq = 1",
                [world.practice.pk],
            )
        finally:
            cursor.execute("SET session_replication_role = origin")
    raised = audit_chain_check(practice_id=world.practice.pk)
    assert [a.kind for a in raised] == [Alert.Kind.AUDIT_CHAIN]
    assert "event 1" in raised[0].reason


def test_the_practices_threshold_decides_when_an_unreachable_ehr_raises_an_alert(world):
    from integrations.models import Delivery
    from integrations.services import alert_rules_save, delivery_send
    from tests.factories import client_factory, note_factory, note_sign_now
    from tests.integrations.support import fhir_connection, free_port

    fhir_connection(world.practice, f"http://127.0.0.1:{free_port()}/fhir")  # nothing listens there

    def attempt_once():
        client = client_factory(world.practice, world.clinician)
        note = note_sign_now(
            note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
        )
        return delivery_send(delivery_id=Delivery.objects.get(note=note).pk)

    assert attempt_once().state == Delivery.State.RETRYING
    assert not Alert.objects.filter(kind=Alert.Kind.UNREACHABLE).exists()  # server default: 3 attempts
    alert_rules_save(practice=world.practice, actor=world.admin, unreachable_after_attempts=1)
    attempt_once()
    alert = Alert.objects.get(kind=Alert.Kind.UNREACHABLE)
    assert alert.dedup_key == f"connection:{alert.connection_id}"
