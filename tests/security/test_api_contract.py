"""Issue #11, point 8: the OpenAPI schema documents every status the API
answers (401, 403, 404, 409, 413, 422, 429 included); a non-integer id, or
any path under /api/ that names no operation, gets the API's JSON 404; and a
schemathesis run with every check, positive and negative data, over every
operation, finds no undocumented status and no 5xx."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import ChecksConfig
from schemathesis.generation.meta import TestPhase

from tests.conftest import login
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for

pytestmark = pytest.mark.django_db
EXAMPLES = 15  # per operation, phase and mode: bounded so the suite stays quick
OPERATIONS = {
    "POST /api/v1/drafts",
    "GET /api/v1/drafts/{draft_id}",
    "GET /api/v1/notes",
    "GET /api/v1/notes/{note_id}",
    "GET /api/v1/clients/{client_id}",
    "GET /api/v1/feedback",  # issue 15: clinicians' feedback for the scribe vendor
}


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


@pytest.fixture
def schema_json():
    response = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_documents_the_errors_it_can_answer(schema_json):
    documented = {label: set(map(int, op["responses"])) for label, op in operations(schema_json)}
    assert set(documented) == OPERATIONS
    for label, statuses in documented.items():
        assert {403, 406, 429} <= statuses, label
        if "{" in label:
            assert 404 in statuses, label
        if "/drafts" in label:
            assert 401 in statuses, label
    assert {400, 409, 413, 415, 422} <= documented["POST /api/v1/drafts"]


def test_every_error_answer_is_documented_with_a_json_body(schema_json):
    for label, operation in operations(schema_json):
        for status, response in operation["responses"].items():
            assert "application/json" in response.get("content", {}), (label, status)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/notes/abc",
        "/api/v1/clients/abc",
        "/api/v1/drafts/abc",
        "/api/v1/notes/-1",
        "/api/v1/clients/1.5",
        "/api/v1/no-such-thing",
        "/api/v1/notes/",
        "/api/v2/notes",
        "/api/v1/clients/%0As%28",
    ],
)
def test_a_malformed_id_or_unknown_api_path_gets_the_api_json_404(scribe, path):
    response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {scribe.key}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_the_schema_itself_is_still_served_beside_the_json_404(schema_json):
    assert schema_json["openapi"].startswith("3.")


@pytest.fixture
def wsgi_app():
    """The project's WSGI app, called in-process. Like Django's test client,
    keep the test's connection open across requests (the request_started and
    request_finished handlers would close it, and with it the test transaction)."""
    handler = get_wsgi_application()

    def app(environ, start_response):
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        try:
            response = handler(environ, start_response)
            body = b"".join(response)
            response.close()
        finally:
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)
        return [body]

    return app


def every_check():
    load_all_checks()
    return list(CHECKS.get_all())


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_with_every_check_finds_no_undocumented_status_and_no_server_error(
    scribe, wsgi_app, mode, settings
):
    # Probes without credentials (ignored_auth) would soon meet the rate
    # limits; those have their own tests (test_rate_limits.py), and 429 is
    # checked as documented above.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_refused_key": "100000/min", "api_unauthenticated": "100000/min"},
    }
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema", wsgi_app)
    config = ChecksConfig.from_dict(
        {
            # A body over the size limit is refused with 413, a rejection too.
            "negative_data_rejection": {
                "expected-statuses": [*ChecksConfig.from_dict({}).negative_data_rejection.expected_statuses, "413"]
            },
            # Schema-valid data may still name a client, clinician or template
            # this practice does not have: the schema cannot say which exist.
            "positive_data_acceptance": {
                "expected-statuses": [*ChecksConfig.from_dict({}).positive_data_acceptance.expected_statuses, "400"]
            },
        }
    )
    schema.config.checks.negative_data_rejection = config.negative_data_rejection
    schema.config.checks.positive_data_acceptance = config.positive_data_acceptance
    # Both kinds of credential on every call: the scribe's key (intake) and a
    # clinician's verified session (read API); each API reads only its own.
    session = login(scribe.world.clinician).cookies["sessionid"].value
    auth = {"Authorization": f"Bearer {scribe.key}"}
    created = scribe.post(scribe.payload()).json()
    seen: dict[str, set[int]] = {}
    nothing_to_negate: set[str] = set()
    ops = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in ops} == OPERATIONS
    checks = every_check()
    for operation in ops:
        # The examples phase plays the schema's own (valid) examples, fuzzing
        # draws from the schemas. (as_strategy offers no coverage phase.)
        phases = [TestPhase.EXAMPLES, TestPhase.FUZZING] if mode == GenerationMode.POSITIVE else [TestPhase.FUZZING]
        for phase in phases:
            strategy = operation.as_strategy(generation_mode=mode, phase=phase, cookies={"sessionid": session})

            @given(case=strategy)
            @hypothesis_settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call_and_validate(headers=auth, checks=checks)
                seen.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                run()
            except Unsatisfiable:
                nothing_to_negate.add(operation.label)
    statuses = set().union(*seen.values())
    assert not any(code >= 500 for code in statuses)
    # The list of notes takes no input at all, so it has no negative data.
    if mode == GenerationMode.NEGATIVE:
        assert nothing_to_negate == {"GET /api/v1/notes"}
    assert set(seen) | nothing_to_negate == OPERATIONS
    # The run reached real answers, not only refusals.
    assert {400, 404} <= statuses
    if mode == GenerationMode.POSITIVE:
        assert statuses & {200, 201} and 200 in seen["GET /api/v1/notes"]
    assert created["id"]
