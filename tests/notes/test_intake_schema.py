"""The OpenAPI 3 schema is served with the intake operations and request
examples, and schemathesis, run against it, finds no 5xx and no answer that
breaks the schema."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import ChecksConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from notes.models import Draft
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for

pytestmark = pytest.mark.django_db
EXAMPLES = 40  # per operation and mode; bounded so the suite stays quick


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


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


def test_the_schema_is_served_with_the_intake_operations_and_examples():
    response = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    post = schema["paths"]["/api/v1/drafts"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert {"IndividualSOAPDraft", "GroupSession"} <= set(examples)
    assert {"201", "200", "400", "401", "413", "422"} <= set(post["responses"])
    assert post["security"] == [{"aiSourceKey": []}]
    assert schema["components"]["securitySchemes"]["aiSourceKey"]["scheme"] == "bearer"
    assert "/api/v1/drafts/{draft_id}" in schema["paths"]
    risk = schema["components"]["schemas"]["RiskAssessment"]["properties"]["level"]
    assert risk.get("enum") or risk.get("$ref")


def test_the_schema_examples_are_accepted_by_the_api(scribe):
    """The documented example, with this practice's ids, makes a draft."""
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    examples = schema["paths"]["/api/v1/drafts"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    body = examples["IndividualSOAPDraft"]["value"]
    body["client"] = {"ehr_patient_id": scribe.client.ehr_patient_id}
    body["clinician"] = {"id": scribe.world.clinician.pk}
    response = scribe.post(body)
    assert response.status_code == 201, response.content[:300]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(scribe, wsgi_app, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema", wsgi_app)
    schema = schema.include(path_regex=r"^/api/v1/drafts")
    # A body over the 1 MiB limit is refused with 413, which is a rejection
    # too; schemathesis's default list for negative data leaves it out.
    rejection = ChecksConfig.from_dict({}).negative_data_rejection
    schema.config.checks.negative_data_rejection = ChecksConfig.from_dict(
        {"negative_data_rejection": {"expected-statuses": [*rejection.expected_statuses, "413"]}}
    ).negative_data_rejection
    auth = {"Authorization": f"Bearer {scribe.key}"}
    # A draft to read, so GET sees a 200 as well as 404s.
    scribe.post(scribe.payload())
    seen: set[int] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {"POST /api/v1/drafts", "GET /api/v1/drafts/{draft_id}"}
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call_and_validate(headers=auth, checks=checks)
            seen.add(response.status_code)

        run()
    assert not any(code >= 500 for code in seen)
    assert seen & {400, 404}
    assert Draft.objects.exists()
