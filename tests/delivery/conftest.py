# The integration tests' fixtures (a real worker, a loopback FHIR EHR, a signed note) for the delivery tests.
from tests.integrations.conftest import fake_ehr, sign_for, worker_factory  # noqa: F401
