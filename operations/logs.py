"""Structured logs for production: one JSON object per line, with the
request id (audit.middleware gives every request one and returns it as
X-Request-Id, so a user's report and the log line can be matched).

What a line may carry is a fixed list of fields. The JSON formatter of
python-json-logger would otherwise add every `extra` attribute of a
record, and Django's request logger passes the request itself (its repr
has the query string, where a search for a client's name would be). The
database-error filter (psyfi_review/log_filters.py) runs before this
formatter on the same handler, so a redacted traceback stays redacted.
"""

import logging

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from audit.context import current_request

# The keys a JSON log line may have; anything else a record carries is dropped.
LOG_FIELDS = ("timestamp", "level", "logger", "message", "request_id", "status_code", "exc_info", "stack_info")


class RequestIdFilter(logging.Filter):
    """Sets record.request_id to the current request's id ("" outside a
    request: a worker, beat, gunicorn's own messages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            # Django logs a response's 4xx/5xx after the middleware has
            # returned (and the context is reset), with the request attached.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", "") or current_request.get().request_id
        return True


class JsonFormatter(_LibraryJsonFormatter):
    def __init__(self, **kwargs):
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(["levelname", "name", "message", "request_id"], **kwargs)

    def process_log_record(self, log_data: dict) -> dict:
        log_data["request_id"] = log_data.get("request_id") or ""
        return {key: log_data[key] for key in LOG_FIELDS if key in log_data}


def handlers_format_json(logger: logging.Logger) -> None:
    """Put the JSON formatter and the request-id filter on logger's handlers
    (a Celery worker's, which it sets up outside settings.LOGGING)."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())
