"""SMART Backend Services: our client assertion, the token cache, and the
JWKS that publishes old and new keys together."""

import base64
import time

import jwt
import pytest

from integrations import auth
from integrations.models import Delivery, EHRConnection, SigningKey
from integrations.services import delivery_send
from tests.integrations.support import fhir_connection


@pytest.fixture(autouse=True)
def _fresh_cache():
    auth.token_cache_clear()
    yield
    auth.token_cache_clear()


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_the_assertion_is_short_lived_with_a_fresh_jti(db, alg):
    key = auth.signingkey_create(alg=alg)
    a = auth.smart_assertion(client_id="psyfi", token_url="https://ehr.example.org/token", key=key)
    b = auth.smart_assertion(client_id="psyfi", token_url="https://ehr.example.org/token", key=key)
    public = jwt.PyJWK(key.public_jwk).key
    claims = jwt.decode(a, public, algorithms=[alg], audience="https://ehr.example.org/token")
    header = jwt.get_unverified_header(a)
    assert header == {"alg": alg, "kid": key.kid, "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == "psyfi"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["exp"] <= time.time() + 300
    assert claims["jti"] != jwt.decode(b, public, algorithms=[alg], audience="https://ehr.example.org/token")["jti"]


def test_the_jwks_publishes_old_and_new_keys_during_rotation(client, db):
    old = auth.signingkey_create(alg="ES384")
    new = auth.signingkey_create(alg="RS384")
    response = client.get("/integrations/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age" in response["Cache-Control"]
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [old.kid, new.kid]
    assert all("d" not in k for k in keys)  # public parts only
    assert SigningKey.objects.get(is_signing=True) == new
    SigningKey.objects.filter(pk=old.pk).update(removed_at="2026-01-01T00:00:00Z")
    assert [k["kid"] for k in client.get("/integrations/.well-known/jwks.json").json()["keys"]] == [new.kid]


def test_the_token_is_fetched_once_and_reused_until_it_expires(world, sign_for, fake_ehr):
    key = auth.signingkey_create()
    fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.SMART,
        client_id="psyfi-client",
        token_url=f"http://127.0.0.1:{fake_ehr.port}/token",
    )
    for _ in range(2):
        note = sign_for(world)
        fake_ehr.add_patient(note.client)
        delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    assert Delivery.objects.filter(state=Delivery.State.DELIVERED).count() == 2
    assert fake_ehr.tokens_issued == 1
    request = fake_ehr.token_requests[0]
    assert request["grant_type"] == "client_credentials"
    assert request["client_assertion_type"] == auth.ASSERTION_TYPE
    claims = jwt.decode(
        request["client_assertion"],
        jwt.PyJWK(key.public_jwk).key,
        algorithms=["ES384"],
        audience=f"http://127.0.0.1:{fake_ehr.port}/token",
    )
    assert claims["sub"] == "psyfi-client"
    authorized = [h.get("Authorization") for m, p, h in fake_ehr.requests if p.startswith("/fhir")]
    assert set(authorized) == {"Bearer tok-1"}


def test_a_401_refreshes_the_token_once_and_goes_on(world, sign_for, fake_ehr):
    auth.signingkey_create()
    connection = fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.SMART,
        client_id="psyfi-client",
        token_url=f"http://127.0.0.1:{fake_ehr.port}/token",
    )
    fake_ehr.valid_tokens = set()
    auth._tokens[connection.pk] = ("revoked-by-the-ehr", time.time() + 3600)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.DELIVERED
    assert fake_ehr.tokens_issued == 1


def test_a_401_after_a_fresh_token_fails_as_a_configuration_problem(world, sign_for, fake_ehr):
    fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.BEARER,
        secrets={"token": "wrong"},
    )
    fake_ehr.valid_tokens = {"right"}
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED and "credentials" in delivery.last_error
    assert fake_ehr.posts == 0


def test_an_oauth2_client_secret_connection_gets_its_token_with_basic_client_credentials(world, sign_for, fake_ehr):
    fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.CLIENT_SECRET,
        client_id="psyfi-client",
        token_url=f"http://127.0.0.1:{fake_ehr.port}/token",
        secrets={"client_secret": "s3cret"},
    )
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    assert Delivery.objects.get(note=note).state == Delivery.State.DELIVERED
    [token_headers] = [h for m, p, h in fake_ehr.requests if p == "/token"]
    expected = "Basic " + base64.b64encode(b"psyfi-client:s3cret").decode()
    assert token_headers["Authorization"] == expected
    assert fake_ehr.token_requests[0]["grant_type"] == "client_credentials"
    assert "client_assertion" not in fake_ehr.token_requests[0]
    authorized = {h.get("Authorization") for m, p, h in fake_ehr.requests if p.startswith("/fhir")}
    assert authorized == {"Bearer tok-1"}


def test_a_basic_auth_connection_sends_its_credentials_on_every_request(world, sign_for, fake_ehr):
    fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.BASIC,
        username="psyfi",
        secrets={"password": "pw-123"},
    )
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    assert Delivery.objects.get(note=note).state == Delivery.State.DELIVERED
    expected = "Basic " + base64.b64encode(b"psyfi:pw-123").decode()
    sent = {h.get("Authorization") for m, p, h in fake_ehr.requests if p.startswith("/fhir")}
    assert sent == {expected}
    assert fake_ehr.tokens_issued == 0
