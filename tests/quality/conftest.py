# The integration tests' fixtures (a real worker, a loopback FHIR EHR) for the co-signature delivery test.
from tests.integrations.conftest import fake_ehr, worker_factory  # noqa: F401
