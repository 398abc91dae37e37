"""Credentials encrypted at rest under keys from the environment; the key
rotates without losing data."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from integrations.crypto import secret_decrypt
from integrations.errors import ConnectionInvalid, CredentialsUnreadable
from integrations.models import EHRConnection
from integrations.services import connection_create


def make(world, **kwargs):
    values = dict(
        practice=world.practice,
        name="EHR",
        kind=EHRConnection.Kind.FHIR,
        base_url="https://ehr.example.org/fhir",
        is_sandbox=False,
        auth_kind=EHRConnection.Auth.BASIC,
        username="psyfi",
        secrets={"password": "s3cret-pass"},
    )
    values.update(kwargs)
    return connection_create(**values)


def test_secrets_are_not_stored_in_the_clear(world, settings):
    settings.PSYFI_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    connection = make(world)
    connection.refresh_from_db()
    assert "s3cret-pass" not in connection.credentials_encrypted
    assert secret_decrypt(connection.credentials_encrypted) == {"password": "s3cret-pass"}


def test_a_key_rotation_keeps_the_data_and_the_old_key_can_then_go(world, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PSYFI_CREDENTIALS_KEYS = [old]
    connection = make(world)
    settings.PSYFI_CREDENTIALS_KEYS = [new, old]  # new key first, old still decrypts
    assert (
        secret_decrypt(EHRConnection.objects.get(pk=connection.pk).credentials_encrypted)["password"] == "s3cret-pass"
    )
    call_command("integrations_reencrypt")
    settings.PSYFI_CREDENTIALS_KEYS = [new]
    assert (
        secret_decrypt(EHRConnection.objects.get(pk=connection.pk).credentials_encrypted)["password"] == "s3cret-pass"
    )
    settings.PSYFI_CREDENTIALS_KEYS = [old]
    with pytest.raises(CredentialsUnreadable):
        secret_decrypt(EHRConnection.objects.get(pk=connection.pk).credentials_encrypted)


def test_plain_http_is_refused_off_loopback(world):
    with pytest.raises(ConnectionInvalid, match="Plain http"):
        make(world, base_url="http://ehr.example.org/fhir")
    with pytest.raises(ConnectionInvalid, match="Plain mllp .* use mllps"):
        make(world, kind=EHRConnection.Kind.HL7, base_url="mllp://10.1.2.3:2575")
    assert not EHRConnection.objects.exists()
    make(world, base_url="http://127.0.0.1:9999/fhir")  # loopback is fine


def test_a_revoked_connection_sends_nothing(world, sign_for, fake_ehr):
    from integrations.models import Delivery
    from integrations.services import connection_revoke, delivery_send
    from tests.integrations.support import fhir_connection

    connection = fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    connection_revoke(connection=connection, actor=world.admin)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED and "no active EHR connection" in delivery.last_error
    assert fake_ehr.requests == []


def test_after_a_revoke_the_practices_new_connection_takes_the_note(world, sign_for, fake_ehr):
    from integrations.models import Delivery
    from integrations.services import connection_revoke, delivery_send
    from tests.integrations.support import FakeEHR, fhir_connection

    old = fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    connection_revoke(connection=old, actor=world.admin)
    replacement = FakeEHR().start()
    try:
        new = fhir_connection(world.practice, replacement.base_url)
        replacement.add_patient(note.client)
        delivery = Delivery.objects.get(note=note)
        delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == Delivery.State.DELIVERED and delivery.connection == new
        assert fake_ehr.requests == [] and len(replacement.documents) == 1
    finally:
        replacement.stop()
