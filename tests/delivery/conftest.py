# The real-worker fixture of the integration tests, for the delivery tests that need one.
from tests.integrations.conftest import worker_factory  # noqa: F401
