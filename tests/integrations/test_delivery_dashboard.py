"""The delivery dashboard for practice admins."""

from integrations.models import Alert, Delivery
from integrations.services import delivery_send
from tests.integrations.support import fhir_connection


def test_an_admin_sees_counts_oldest_pending_and_failures_with_reasons(world, sign_for, fake_ehr, login_as):
    fhir_connection(world.practice, fake_ehr.base_url)
    waiting = sign_for(world)
    failing = sign_for(world)
    fake_ehr.add_patient(failing.client)
    fake_ehr.reject_with = (422, "Note type not allowed here")
    delivery_send(delivery_id=Delivery.objects.get(note=failing).pk)
    page = login_as(world.admin).get("/integrations/deliveries/")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<td data-state="pending">1</td>' in html
    assert '<td data-state="failed">1</td>' in html
    assert 'id="oldest-pending"' in html and "none" not in html.split('id="oldest-pending"')[1][:20]
    assert "Note type not allowed here" in html
    failed_table = html.split('aria-label="Failed deliveries"')[1]
    assert str(failing.client) in failed_table and str(waiting.client) not in failed_table
    assert Alert.Kind.DEAD_LETTER.label in html


def test_the_reprocess_button_puts_a_failed_delivery_back_in_the_queue(world, sign_for, fake_ehr, login_as):
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    fake_ehr.reject_with = (400, "bad")
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    response = login_as(world.admin).post(f"/integrations/deliveries/{delivery.pk}/reprocess/")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING
    assert not Alert.objects.filter(delivery=delivery, resolved_at__isnull=True).exists()


def test_reprocessing_a_delivery_that_has_not_failed_is_refused_plainly(world, sign_for, login_as):
    delivery = Delivery.objects.get(note=sign_for(world))
    response = login_as(world.admin).post(f"/integrations/deliveries/{delivery.pk}/reprocess/", follow=True)
    assert "Only a failed delivery can be reprocessed." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING


def test_other_roles_and_other_practices_are_kept_out(world, sign_for, login_as):
    from notes.models import Membership
    from tests.factories import member_factory

    delivery = Delivery.objects.get(note=sign_for(world))
    assert login_as(world.clinician).get("/integrations/deliveries/").status_code == 403
    other_admin = member_factory(world.other_practice, Membership.Role.PRACTICE_ADMIN).user
    response = login_as(other_admin).post(f"/integrations/deliveries/{delivery.pk}/reprocess/")
    assert response.status_code == 404


def test_the_nav_links_admins_to_the_dashboard(world, login_as):
    html = login_as(world.admin).get("/integrations/deliveries/").content.decode()
    assert 'href="/integrations/deliveries/"' in html
