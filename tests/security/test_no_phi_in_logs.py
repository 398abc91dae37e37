"""Issue #11, point 7: a database error during intake leaves no clinical text
in the logs.

PostgreSQL quotes what it refuses: in the primary message, in DETAIL and in
CONTEXT. The error here is real: a trigger, created inside the test's
transaction, makes PostgreSQL refuse the draft row with its own words about
the value (as a CHECK-like rule or a corrupt jsonb value would). Every log
record is captured at DEBUG, and every configured handler's formatted
output; the marker is in none of them, and the error itself is logged.
"""

import io
import logging

import pytest
from django.db import connection
from django.test import Client as HttpClient

from psyfi_review.log_filters import DatabaseErrorFilter
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for

MARKER = "she was assaulted by her uncle ZQX-7731"

# Each trigger body makes PostgreSQL refuse the Draft insert while quoting
# the client's text: in the primary message (a cast), or in DETAIL and
# CONTEXT (jsonb input: 'CONTEXT: JSON data, line 1: she was ...').
REFUSALS = {
    "value in the message": "PERFORM (NEW.payload->>'client_reported_symptoms')::integer;",
    # PostgreSQL's JSON context shows the text up to the bad token.
    "value in the context": "PERFORM ('[\"' || (NEW.payload->>'client_reported_symptoms') || '\", nope]')::jsonb;",
    "value in the detail": "RAISE EXCEPTION 'draft refused' USING DETAIL = NEW.payload::text, "
    "HINT = NEW.payload->>'client_reported_symptoms';",
}


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _draft_insert_refused(body: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_draft() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            + body
            + " RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_draft BEFORE INSERT ON notes_draft "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_draft()"
        )


def _configured_stream_handlers() -> list[logging.StreamHandler]:
    """The handlers settings.LOGGING (or Django's defaults) installed, not pytest's own."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    handlers = {id(h): h for lg in loggers for h in lg.handlers}.values()
    return [h for h in handlers if type(h) is logging.StreamHandler]


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_database_error_during_intake_logs_no_clinical_text(scribe, caplog, refusal):
    _draft_insert_refused(REFUSALS[refusal])
    caplog.set_level(logging.DEBUG)
    handlers = _configured_stream_handlers()
    assert handlers, "settings.LOGGING configures a console handler"
    outputs = [io.StringIO() for _ in handlers]
    previous = [h.setStream(out) for h, out in zip(handlers, outputs, strict=True)]
    connection.force_debug_cursor = True  # django.db.backends would log each statement with its values
    try:
        response = scribe.post(
            scribe.payload(client_reported_symptoms=MARKER, next_steps=MARKER),
            http=HttpClient(raise_request_exception=False),
        )
    finally:
        connection.force_debug_cursor = False
        for h, stream in zip(handlers, previous, strict=True):
            h.setStream(stream)

    assert response.status_code == 500
    assert MARKER.encode() not in response.content
    formatter = logging.Formatter()
    for record in caplog.records:
        assert "ZQX-7731" not in record.getMessage()
        assert "ZQX-7731" not in formatter.format(record)
        assert "ZQX-7731" not in (record.exc_text or "")
    logged = "".join(out.getvalue() for out in outputs)
    assert "ZQX-7731" not in logged
    assert "ZQX-7731" not in caplog.text

    # The error is logged, by class and SQLSTATE, with where it happened.
    [error] = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.ERROR]
    assert error.getMessage() == "Internal Server Error: /api/v1/drafts"
    assert "django.db.utils." in error.exc_text and "(SQLSTATE " in error.exc_text
    assert "notes/services.py" in error.exc_text
    assert "Internal Server Error: /api/v1/drafts" in logged and "(SQLSTATE " in logged


def test_a_database_error_passed_as_a_log_argument_is_summarised(db, caplog):
    from django.db import DataError, transaction

    record = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::integer", [MARKER])
    except DataError as exc:
        record = logging.LogRecord("integrations.services", logging.WARNING, __file__, 1, "failed: %s", (exc,), None)
    assert record is not None
    DatabaseErrorFilter().filter(record)
    assert record.getMessage() == "failed: django.db.utils.DataError (SQLSTATE 22P02)"


def test_every_configured_handler_filters_database_errors(settings):
    for name, handler in settings.LOGGING["handlers"].items():
        assert "database_errors" in handler.get("filters", []), name
    for handler in _configured_stream_handlers():
        assert any(isinstance(f, DatabaseErrorFilter) for f in handler.filters), handler


def test_the_risk_pipelines_libraries_leave_no_unfiltered_handler():
    # spaCy and weasel add stderr handlers of their own when imported.
    from notes.risk_language import risk_pipeline

    risk_pipeline()
    for handler in _configured_stream_handlers():
        assert any(isinstance(f, DatabaseErrorFilter) for f in handler.filters), handler


def test_the_statement_logger_is_not_at_debug():
    assert logging.getLogger("django.db.backends").getEffectiveLevel() > logging.DEBUG


def test_a_celery_workers_log_handlers_filter_database_errors_too():
    from celery import signals

    import psyfi_review.celery  # noqa: F401 - connects the handlers

    worker_logger = logging.Logger("test-celery-worker")
    worker_logger.addHandler(logging.StreamHandler(io.StringIO()))
    for signal in (signals.after_setup_logger, signals.after_setup_task_logger):
        signal.send(sender=None, logger=worker_logger, loglevel=logging.INFO, logfile=None, format="", colorize=False)
    [handler] = worker_logger.handlers
    assert [type(f) for f in handler.filters] == [DatabaseErrorFilter]
