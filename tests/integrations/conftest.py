import pytest
import redis
from django.conf import settings

from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, Worker


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


@pytest.fixture
def sign_for():
    """sign_for(world, client=None) -> the signed note (its Delivery exists)."""

    def make(world, client=None, **client_kwargs):
        client = client or client_factory(world.practice, world.clinician, **client_kwargs)
        note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
        return note_sign_now(note, world.clinician)

    return make


@pytest.fixture
def worker_factory(tmp_path):
    """Start real Celery workers on the test database; all are stopped after."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # stale nudges from earlier tests
    workers = []

    def start(**extra_env) -> Worker:
        w = Worker(tmp_path, extra_env).start()
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()
