"""Issue 14 §3: clients imported from an EHR's CSV export. Upload shows a
preview; a file with any bad row imports nothing and names each row's error;
confirming imports every row in one go."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from notes.models import Client
from practice_admin.forms import ClientImportForm
from practice_admin.services.client_import import MAX_BYTES, ImportRejected, client_import
from tests.factories import client_factory

pytestmark = pytest.mark.django_db


def _csv(world, *rows: str) -> bytes:
    header = "First Name,Last Name,DOB,MRN,Clinician\n"
    return (header + "".join(row + "\n" for row in rows)).encode()


def _upload(content: bytes):
    return SimpleUploadedFile("clients.csv", content, content_type="text/csv")


class _UnreadableUpload(SimpleUploadedFile):
    """An upload that fails the test if anything reads it."""

    def read(self, *args, **kwargs):
        raise AssertionError("the oversized upload was read")


def test_a_file_just_over_the_limit_is_refused_on_the_file_field_before_it_is_read(world, login_as):
    data = _csv(world, f"Ada,Lovelace,1815-12-10,M-1,{world.clinician.username}")
    data += b"x" * (MAX_BYTES + 1 - len(data))
    response = login_as(world.admin).post("/practice/clients/import/", {"file": _upload(data)})
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["The file is larger than 2 MB; split it."]
    assert not Client.objects.filter(ehr_patient_id="M-1").exists()

    oversized = _UnreadableUpload("clients.csv", b"", content_type="text/csv")
    oversized.size = MAX_BYTES + 1
    form = ClientImportForm(data={}, files={"file": oversized}, clinicians=Client.objects.none())
    assert not form.is_valid()
    assert form.errors["file"] == ["The file is larger than 2 MB; split it."]


def test_upload_shows_a_preview_and_writes_nothing(world, login_as):
    data = _csv(world, f"Ada,Lovelace,1815-12-10,M-1,{world.clinician.username}", "Alan,Turing,06/23/1912,M-2,")
    response = login_as(world.admin).post(
        "/practice/clients/import/", {"file": _upload(data), "default_clinician": world.colleague.pk}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Preview: 2 clients to import" in page
    assert "Lovelace, Ada" in page and "Turing, Alan" in page and "1912-06-23" in page
    assert not Client.objects.filter(ehr_patient_id__in=["M-1", "M-2"]).exists()


def test_confirming_the_preview_imports_every_row_with_one_audit_event(world, login_as):
    data = _csv(world, f"Ada,Lovelace,1815-12-10,M-1,{world.clinician.username}", "Alan,Turing,06/23/1912,M-2,")
    admin = login_as(world.admin)
    response = admin.post(
        "/practice/clients/import/",
        {"csv_text": data.decode(), "default_clinician": world.colleague.pk, "confirm": "1"},
    )
    assert response.status_code == 302
    ada = Client.objects.get(ehr_patient_id="M-1")
    turing = Client.objects.get(ehr_patient_id="M-2")
    assert ada.clinician == world.clinician and turing.clinician == world.colleague
    assert ada.practice == world.practice
    event = AuditEvent.objects.get(action="client.import")
    assert event.actor_user == world.admin
    assert sorted(event.detail["client_ids"]) == sorted([ada.pk, turing.pk])
    assert AuditEvent.objects.filter(action="client.create", actor_user=world.admin).count() == 2


def test_each_bad_row_gets_its_own_error_and_nothing_is_imported(world, login_as):
    client_factory(world.practice, world.clinician, ehr_patient_id="TAKEN")
    data = _csv(
        world,
        f"Ada,Lovelace,1815-12-10,M-1,{world.clinician.username}",  # fine
        f",Nameless,1990-01-01,M-2,{world.clinician.username}",  # line 3: no given name
        f"Bad,Date,31/31/1990,M-3,{world.clinician.username}",  # line 4
        f"Dup,Licate,1990-01-01,M-1,{world.clinician.username}",  # line 5: same MRN as line 2
        f"Al,Ready,1990-01-01,TAKEN,{world.clinician.username}",  # line 6
        "No,Body,1990-01-01,M-7,nobody",  # line 7
        f"Out,Sider,1990-01-01,M-8,{world.outsider.username}",  # line 8: another practice's clinician
    )
    response = login_as(world.admin).post("/practice/clients/import/", {"file": _upload(data), "confirm": "1"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "Nothing was imported" in page
    assert "Given name is missing." in page
    assert "Date of birth “31/31/1990” is not a date" in page
    assert "EHR patient id “M-1” is also on line 2." in page
    assert "EHR patient id “TAKEN” belongs to a client already in the practice." in page
    assert "“nobody” is not an active clinician of this practice" in page
    assert f"“{world.outsider.username}” is not an active clinician of this practice" in page
    assert not Client.objects.filter(ehr_patient_id__startswith="M-").exists()
    assert not AuditEvent.objects.filter(action="client.import").exists()


def test_the_service_rejects_the_whole_file_for_one_bad_row(world):
    data = _csv(world, f"Ada,Lovelace,1815-12-10,M-1,{world.clinician.username}", "Alan,Turing,1912-06-23,M-2,")
    with pytest.raises(ImportRejected) as caught:
        client_import(actor=world.admin, data=data)
    assert [(row.line, row.errors) for row in caught.value.preview.error_rows] == [
        (3, ["No clinician: fill the clinician column or choose a default clinician."])
    ]
    assert not Client.objects.filter(ehr_patient_id__in=["M-1", "M-2"]).exists()


def test_errors_name_the_files_line_after_a_blank_line_and_a_cell_spanning_lines(world):
    data = (
        "First Name,Last Name,DOB,MRN,Clinician\n"  # line 1
        "\n"  # line 2: blank
        f'Ada,"Lovelace\nByron",1815-12-10,M-1,{world.clinician.username}\n'  # lines 3-4
        f",Nameless,1990-01-01,M-2,{world.clinician.username}\n"  # line 5: no given name
        f"Ada,Again,1815-12-10,M-1,{world.clinician.username}\n"  # line 6: same MRN as line 3
    ).encode()
    with pytest.raises(ImportRejected) as caught:
        client_import(actor=world.admin, data=data)
    assert [(row.line, row.errors) for row in caught.value.preview.error_rows] == [
        (5, ["Given name is missing."]),
        (6, ["EHR patient id “M-1” is also on line 3."]),
    ]


def test_a_file_without_the_required_columns_is_refused_with_the_missing_names(world, login_as):
    response = login_as(world.admin).post(
        "/practice/clients/import/", {"file": _upload(b"name,birthday\nAda Lovelace,1815-12-10\n")}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "The header has no given name column" in page
    assert "The header has no date of birth column" in page


def test_a_file_that_is_not_utf8_is_a_clear_error(world, login_as):
    response = login_as(world.admin).post(
        "/practice/clients/import/",
        {"file": _upload("First Name,Last Name,DOB\nZoë,Ünal,1990-01-01\n".encode("utf-16"))},
    )
    assert response.status_code == 400
    assert "The file is not UTF-8 text" in response.content.decode()


def test_the_default_clinician_must_belong_to_the_practice(world, login_as):
    data = _csv(world, "Alan,Turing,1912-06-23,M-2,")
    response = login_as(world.admin).post(
        "/practice/clients/import/",
        {"csv_text": data.decode(), "default_clinician": world.outsider.pk, "confirm": "1"},
    )
    assert response.status_code == 400
    assert not Client.objects.filter(ehr_patient_id="M-2").exists()
