"""Issue 6 §6: every view of a note or client by a person is logged, and an
auditor can ask "who viewed client X between dates" in the UI."""

from datetime import timedelta

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import client_factory, note_factory, note_sign_now, practice_today

pytestmark = pytest.mark.django_db

URL = reverse("audit_phi_access")


def test_views_of_notes_and_clients_by_people_are_logged(world, login_as):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    clinician = login_as(world.clinician)  # one session each: a TOTP code works once
    clinician.get(reverse("client_detail", args=[note.client_id]))
    login_as(world.qa).get(reverse("note_detail", args=[note.pk]))
    clinician.get(reverse("api_note_detail", args=[note.pk]))
    views = AuditEvent.objects.filter(client=note.client, action="phi.view").order_by("seq")
    assert [(e.actor_user, e.note_id) for e in views] == [
        (world.clinician, None),
        (world.qa, note.pk),
        (world.clinician, note.pk),
    ]


def test_an_auditor_finds_who_viewed_a_client_between_dates(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    other_client = client_factory(world.practice, world.clinician, family_name="Elsewhere")
    clinician = login_as(world.clinician)
    clinician.get(reverse("note_detail", args=[note.pk]), REMOTE_ADDR="192.0.2.44")
    login_as(world.admin).get(reverse("client_detail", args=[note.client_id]))
    clinician.get(reverse("client_detail", args=[other_client.pk]))

    auditor = login_as(world.auditor)
    today = practice_today(world.practice)
    page = auditor.get(URL, {"client": note.client_id, "date_from": today, "date_to": today})
    assert page.status_code == 200
    html = page.content.decode()
    assert "2 views of" in html
    assert world.clinician.get_full_name() in html and world.admin.get_full_name() in html
    assert "192.0.2.44" in html and f"note {note.pk} v1" in html
    assert "client record" in html
    # The query itself is on the record.
    assert AuditEvent.objects.filter(
        action="audit.phi_access_query", actor_user=world.auditor, client=note.client
    ).exists()


def test_views_outside_the_dates_are_not_listed(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    login_as(world.clinician).get(reverse("note_detail", args=[note.pk]))
    yesterday = practice_today(world.practice) - timedelta(days=1)
    page = login_as(world.auditor).get(URL, {"client": note.client_id, "date_from": yesterday, "date_to": yesterday})
    assert "Nobody viewed this client" in page.content.decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "2026-01-01", "date_to": "2026-01-31"}, "client"),
        ({"client": "abc", "date_from": "2026-01-01", "date_to": "2026-01-31"}, "client"),
        ({"client": "CLIENT", "date_from": "not a date", "date_to": "2026-01-31"}, "date_from"),
        ({"client": "CLIENT", "date_from": "2026-02-01", "date_to": "2026-01-31"}, "date_to"),
        ({"client": "OTHER", "date_from": "2026-01-01", "date_to": "2026-01-31"}, "client"),
    ],
)
def test_bad_queries_get_field_errors_not_results(world, login_as, params, field):
    client = client_factory(world.practice, world.clinician)
    foreign = client_factory(world.other_practice, world.outsider)
    params = {k: {"CLIENT": client.pk, "OTHER": foreign.pk}.get(v, v) for k, v in params.items()}
    before = AuditEvent.objects.count()
    response = login_as(world.auditor).get(URL, params)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert response.context["events"] is None
    assert AuditEvent.objects.count() == before  # nothing partial written


@pytest.mark.parametrize("persona", ["clinician", "qa", "admin"])
def test_only_auditors_may_query_the_access_log(world, login_as, persona):
    assert login_as(getattr(world, persona)).get(URL).status_code == 403


def test_the_client_list_offers_only_the_auditors_practice(world, login_as):
    mine = client_factory(world.practice, world.clinician, family_name="Mine")
    theirs = client_factory(world.other_practice, world.outsider, family_name="Theirs")
    form = login_as(world.auditor).get(URL).context["form"]
    choices = list(form.fields["client"].queryset)
    assert mine in choices and theirs not in choices
