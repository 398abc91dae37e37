"""Production logs are JSON lines carrying the request id, a fixed set of
fields and nothing of a note: the database-error filter still redacts on the
JSON path, and a record's extras (Django attaches the request, whose repr
has the query string) never reach the line."""

import copy
import io
import json
import logging
import logging.config

import pytest
from django.conf import settings
from django.db import DataError, connection, transaction

from audit.context import RequestContext, current_request
from operations.logs import LOG_FIELDS


@pytest.fixture
def json_log():
    """settings.LOGGING as settings_production sets it (console handler
    formatted as JSON), writing to a buffer."""
    config = copy.deepcopy(settings.LOGGING)
    buffer = io.StringIO()
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = buffer
    logging.config.dictConfig(config)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    finally:
        logging.config.dictConfig(settings.LOGGING)


def test_production_profile_formats_the_console_as_json():
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
        "SECRET_KEY": "s" * 60,
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/x",
        "ALLOWED_HOSTS": "example.org",
        "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "PSYFI_IDENTIFIER_SYSTEM": "https://example.org/id",
    }
    code = "from django.conf import settings; print(settings.LOGGING['handlers']['console'].get('formatter'))"
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(settings.BASE_DIR),
    )
    assert out.stdout.strip() == "json", out.stderr[-2000:]


@pytest.mark.django_db
def test_a_request_log_line_is_json_with_the_request_id_and_no_query(client, json_log):
    response = client.get("/no-such-page/?q=Avery+Testperson", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 404 and response["X-Request-Id"] == "req-42"
    records = [r for r in json_log() if r["logger"] == "django.request"]
    assert records == [
        {
            "timestamp": records[0]["timestamp"],
            "level": "WARNING",
            "logger": "django.request",
            "message": "Not Found: /no-such-page/",
            "request_id": "req-42",
            "status_code": 404,
        }
    ]


@pytest.mark.django_db
def test_a_database_error_is_redacted_on_the_json_path(json_log):
    disclosure = "she was assaulted by her uncle"
    token = current_request.set(RequestContext(request_id="req-db-1"))
    try:
        with pytest.raises(DataError) as caught, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::integer", [disclosure])
        logging.getLogger("django.request").error("Internal Server Error: /api/v1/drafts", exc_info=caught.value)
    finally:
        current_request.reset(token)
    (record,) = [r for r in json_log() if r["logger"] == "django.request"]
    assert set(record) <= set(LOG_FIELDS)
    assert record["request_id"] == "req-db-1"
    assert "SQLSTATE 22P02" in record["exc_info"] and "message withheld" in record["exc_info"]
    assert "assaulted" not in json.dumps(record)


def test_extras_a_record_carries_never_reach_the_line(json_log):
    logging.getLogger("psyfi.test").warning("delivery retried", extra={"client_name": "Avery Testperson"})
    (record,) = [r for r in json_log() if r["logger"] == "psyfi.test"]
    assert set(record) == {"timestamp", "level", "logger", "message", "request_id"}
    assert "Avery" not in json.dumps(record)


@pytest.mark.worker
def test_a_production_worker_logs_json_lines(tmp_path):
    """The worker sets up its own handlers (psyfi_review/celery.py puts the
    JSON formatter on them when LOG_FORMAT is json)."""
    import os
    import signal
    import subprocess
    import time

    from cryptography.fernet import Fernet

    root = settings.BASE_DIR
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PSYFI_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
            "SECRET_KEY": "worker-json-" + "k" * 50,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "ALLOWED_HOSTS": "example.org",
            "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            "PSYFI_IDENTIFIER_SYSTEM": "https://example.org/note-id",
            "PSYFI_VAR_DIR": str(tmp_path),
        }
    )
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [str(root / ".venv/bin/celery"), "-A", "psyfi_review", "worker", "--pool=solo", "--loglevel=INFO"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and worker.poll() is None and " ready." not in log_path.read_text():
            time.sleep(0.5)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    ready = [r for r in records if r["message"].endswith(" ready.")]
    assert ready, log_path.read_text()[-3000:]
    assert set(ready[0]) == {"timestamp", "level", "logger", "message", "request_id"}
