"""Issue #11, point 6: refused API keys and unauthenticated API calls are
throttled per key prefix and per client address (429 with Retry-After); a
valid key never is; refused-key audit events are one per prefix and minute
with a count; an unknown prefix and a wrong secret take the same path."""

import hashlib
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from notes import api_keys
from notes.models import AISourceKey
from notes.tasks import api_key_refusals_flush_task
from tests.factories import world_factory
from tests.notes.intake_support import URL, scribe_for

pytestmark = pytest.mark.django_db
PREFIX_RATE = 10  # the defaults in settings: API_REFUSED_KEY_RATE, API_UNAUTHENTICATED_RATE
ADDRESS_RATE = 30


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def prefix_of(key: str) -> str:
    return key.split("_", 2)[1]


def get_draft(*, key: str | None = None, address: str = "203.0.113.10", **headers):
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return HttpClient(REMOTE_ADDR=address).get(f"{URL}/1", **headers)


def test_refusals_of_one_key_prefix_are_answered_429_with_retry_after_once_over_the_rate(scribe):
    wrong = f"psk_{prefix_of(scribe.key)}_not-the-secret"
    # From a new address each time: only the prefix's throttle can trip.
    answers = [get_draft(key=wrong, address=f"203.0.113.{i}") for i in range(1, PREFIX_RATE + 2)]
    assert [a.status_code for a in answers] == [401] * PREFIX_RATE + [429]
    throttled = answers[-1]
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert set(throttled.json()) == {"detail", "errors"}
    # Another prefix from the same addresses is still only refused.
    other = f"psk_{'0' * 12}_not-the-secret"
    assert get_draft(key=other, address="203.0.113.1").status_code == 401


def test_unauthenticated_calls_from_one_address_are_throttled_and_other_addresses_are_not(scribe):
    answers = [get_draft(address="198.51.100.7") for _ in range(ADDRESS_RATE + 1)]
    assert [a.status_code for a in answers] == [401] * ADDRESS_RATE + [429]
    assert int(answers[-1]["Retry-After"]) > 0
    assert get_draft(address="198.51.100.8").status_code == 401


def test_unauthenticated_calls_to_the_session_api_are_throttled_too(db):
    http = HttpClient(REMOTE_ADDR="198.51.100.9")
    answers = [http.get("/api/v1/notes") for _ in range(ADDRESS_RATE + 1)]
    assert [a.status_code for a in answers] == [403] * ADDRESS_RATE + [429]
    assert int(answers[-1]["Retry-After"]) > 0


def test_keys_with_random_prefixes_from_one_address_are_throttled_by_address(scribe):
    keys = [f"psk_{i:012x}_guess" for i in range(ADDRESS_RATE + 1)]
    answers = [get_draft(key=key, address="198.51.100.20") for key in keys]
    assert [a.status_code for a in answers] == [401] * ADDRESS_RATE + [429]


def test_a_valid_key_is_not_locked_out_by_a_flood_on_its_prefix_and_address(scribe):
    wrong = f"psk_{prefix_of(scribe.key)}_not-the-secret"
    flood = [get_draft(key=wrong, address="127.0.0.1") for _ in range(ADDRESS_RATE + 5)]
    assert flood[-1].status_code == 429
    # The test client's own address is 127.0.0.1 as well.
    assert scribe.post(scribe.payload()).status_code == 201
    assert get_draft(key=wrong, address="127.0.0.1").status_code == 429


def test_x_forwarded_for_is_not_trusted_unless_proxies_are_configured(scribe, settings):
    def flood(prefix: str):
        return [
            get_draft(address="192.0.2.1", HTTP_X_FORWARDED_FOR=f"{prefix}.{i}").status_code
            for i in range(ADDRESS_RATE + 1)
        ]

    # A client cannot escape the address limit by inventing X-Forwarded-For.
    assert flood("203.0.113")[-1] == 429
    # Behind one trusted proxy, the address it appends is the client's.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert set(flood("198.51.100")) == {401}


def test_500_refusals_in_a_minute_write_a_bounded_number_of_audit_events_whose_counts_sum_to_500(scribe):
    prefix = prefix_of(scribe.key)
    wrong = f"psk_{prefix}_not-the-secret"
    started = timezone.now()
    statuses = [get_draft(key=wrong, address="127.0.0.1").status_code for _ in range(500)]
    minutes_spanned = int((timezone.now() - started.replace(second=0, microsecond=0)).total_seconds() // 60) + 1
    assert statuses.count(401) == PREFIX_RATE and statuses.count(429) == 500 - PREFIX_RATE
    # Before the beat task runs, each minute has its first refusal logged.
    first = AuditEvent.objects.filter(action="api_key.refused", detail__api_key=prefix)
    assert first.count() == minutes_spanned
    assert first[0].actor_ai_source == scribe.ai_source and first[0].detail["reason"] == "Invalid API key."

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: started + timedelta(minutes=minutes_spanned + 1))
        api_key_refusals_flush_task()
        api_key_refusals_flush_task()  # a second run writes nothing again
    events = AuditEvent.objects.filter(action__startswith="api_key.refused", detail__api_key=prefix)
    assert events.count() <= 2 * minutes_spanned
    assert sum(event.detail["count"] for event in events) == 500
    assert {event.action for event in events} == {"api_key.refused", "api_key.refused_summary"}


def test_an_unknown_prefix_and_a_wrong_secret_run_the_same_verification(scribe, monkeypatch):
    """Both hash the presented key and run the same one query; neither returns
    early. The timing itself is measured in bench/api_key_refusal.py."""
    hashed = []
    real_hash = api_keys._key_hash
    monkeypatch.setattr(api_keys, "_key_hash", lambda plain: hashed.append(plain) or real_hash(plain))

    def check(plain: str):
        hashed.clear()
        with CaptureQueriesContext(connection) as queries:
            result = api_keys.ai_source_key_check(plain)
        digest = hashlib.sha256(plain.encode()).hexdigest()
        statements = [re.sub(r"'[0-9a-f]{12}'", "'P'", q["sql"].replace(digest, "H")) for q in queries]
        return result, list(hashed), statements

    real = prefix_of(scribe.key)
    unknown = "f" * 12 if real != "f" * 12 else "e" * 12
    wrong_secret = check(f"psk_{real}_not-the-secret")
    unknown_prefix = check(f"psk_{unknown}_not-the-secret")
    assert wrong_secret[0] == unknown_prefix[0] == (None, "Invalid API key.")
    assert wrong_secret[1] == [f"psk_{real}_not-the-secret"] and unknown_prefix[1] == [f"psk_{unknown}_not-the-secret"]
    assert wrong_secret[2] == unknown_prefix[2] and len(wrong_secret[2]) == 1
    assert AISourceKey.objects.filter(prefix=real).exists()


def test_a_malformed_rate_stops_start_up_with_its_name():
    env = {**os.environ, "API_REFUSED_KEY_RATE": "lots", "DJANGO_SETTINGS_MODULE": "psyfi_review.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "API_REFUSED_KEY_RATE must look like 10/min" in result.stderr
