"""gunicorn for psyfi-review (the Dockerfile's CMD; docs/deployment.md).

Logs are JSON lines like the app's (operations/logs.py). The access log
names the path without its query string: a search box's query would be a
client's name; and an invitation link's token in the path is masked
(operations/access_log.py).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: a request holds a database connection for its duration and
# the app has no long polls. About 2 per core, plus one.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Restart each worker now and then, so a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200
# The reverse proxy in front (compose's `proxy`) sets X-Forwarded-Proto.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

accesslog = "-"
access_log_format = "%(m)s %(U)s %(s)s %(B)s bytes %(M)s ms request_id=%({x-request-id}o)s"
# Masks the token of /accounts/invitation/<token>/ in every atom of the line.
logger_class = "operations.access_log.MaskingLogger"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "operations.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
