# The real Celery worker fixture of the integration tests, for the end-to-end alert test.
from tests.integrations.conftest import worker_factory  # noqa: F401
