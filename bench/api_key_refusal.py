"""Refusing an unknown API key prefix against a real prefix with a wrong secret.

Issue #11, point 6: the two must not differ measurably, or the answer time
tells an attacker which prefixes exist. Builds a throwaway PostgreSQL
database (psyfi_bench_api_keys), migrates it, makes one AI source key, then
times, alternating the two kinds so drift hits both:

- the key check alone (notes.api_keys.ai_source_key_check), --checks each;
- the whole refused request (GET /api/v1/drafts/1 through Django's handler
  in-process: authentication, refusal throttles, refused-key counting),
  --requests each, from a new client address each time and with the rates
  raised so no throttle trips (a 429 would be a different path).

Prints the medians and their ratio (wrong secret / unknown prefix); the last
line is the headline, the ratio for the whole request (target: within a few
per cent of 1). The minute's first refusal of a real prefix also writes an
audit event, once a minute: the medians do not see it, and docs/deployment.md
says so.

    .venv/bin/python bench/api_key_refusal.py [--checks 3000] [--requests 1500] [--keep]

The server is DATABASE_URL's (default postgres://postgres@127.0.0.1:5432);
the database is dropped at the end unless --keep. The cache is a file cache
in a temporary directory unless REDIS_URL is set.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

BENCH_DB = "psyfi_bench_api_keys"


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/psyfi")


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _recreate_database() -> str:
    with psycopg.connect(_with_db(_server_url(), "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return _with_db(_server_url(), BENCH_DB)


def _drop_database() -> None:
    from django.db import connections

    connections.close_all()
    with psycopg.connect(_with_db(_server_url(), "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def _setup_django(url: str, var_dir: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "psyfi_review.settings"
    os.environ["PSYFI_VAR_DIR"] = var_dir
    os.environ["LOG_LEVEL"] = "ERROR"
    os.environ["API_REFUSED_KEY_RATE"] = "1000000000/min"
    os.environ["API_UNAUTHENTICATED_RATE"] = "1000000000/min"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Each refusal is a logged 401; thousands of lines would bury the figures.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No directory at")  # no collected static files here


def _alternating(n: int, first, second) -> tuple[list[float], list[float]]:
    a, b = [], []
    for i in range(n):
        for run, times in ((first, a), (second, b)) if i % 2 else ((second, b), (first, a)):
            start = time.perf_counter()
            run(i)
            times.append(time.perf_counter() - start)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url = _recreate_database()
    with tempfile.TemporaryDirectory() as var_dir:
        _setup_django(url, var_dir)
        try:
            run(args)
        finally:
            if not args.keep:
                _drop_database()


def run(args) -> None:
    from django.test import Client

    from notes.api_keys import ai_source_key_check, ai_source_key_create
    from tests.factories import ai_source_factory, practice_factory

    _, plain = ai_source_key_create(ai_source=ai_source_factory(practice_factory("Bench Practice")))
    prefix = plain.split("_", 2)[1]
    unknown_prefix = "0" * 12 if prefix != "0" * 12 else "1" * 12
    wrong_secret = f"psk_{prefix}_{'x' * 43}"
    unknown = f"psk_{unknown_prefix}_{'x' * 43}"
    assert ai_source_key_check(wrong_secret)[1] == ai_source_key_check(unknown)[1] == "Invalid API key."

    real, fake = _alternating(
        args.checks, lambda i: ai_source_key_check(wrong_secret), lambda i: ai_source_key_check(unknown)
    )
    check_real, check_fake = statistics.median(real) * 1e6, statistics.median(fake) * 1e6
    print(f"key check, real prefix + wrong secret: median {check_real:.1f} us over {args.checks}")
    print(f"key check, unknown prefix:             median {check_fake:.1f} us over {args.checks}")
    print(f"key check ratio (wrong secret / unknown prefix): {check_real / check_fake:.3f}")

    http = Client()

    def refused(key):
        def call(i):
            address = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            response = http.get("/api/v1/drafts/1", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=address)
            assert response.status_code == 401, response.status_code

        return call

    real, fake = _alternating(args.requests, refused(wrong_secret), refused(unknown))
    http_real, http_fake = statistics.median(real) * 1e3, statistics.median(fake) * 1e3
    print(f"refused request, real prefix + wrong secret: median {http_real:.3f} ms over {args.requests}")
    print(f"refused request, unknown prefix:             median {http_fake:.3f} ms over {args.requests}")
    print(f"refused request ratio (wrong secret / unknown prefix): {http_real / http_fake:.3f}")


if __name__ == "__main__":
    main()
