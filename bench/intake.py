"""Draft intake throughput, through the real endpoint, beside a bare DRF endpoint.

Starts gunicorn on 127.0.0.1 with a throwaway PostgreSQL database and times
POST /api/v1/drafts (API key check, strict validation, client/clinician/
template/vocabulary resolution, mapping with ICD-10-CM checks, Draft + Note +
history + sections + flags + hash-chained audit event, idempotency by the
database's unique constraint) against
POST /bench/bare-draft, a DRF view on the same server that parses the same
JSON and writes only the Draft row: one INSERT in one transaction, one commit
as the intake's one (not the Draft and then its history row in a second
autocommit, which flattered the ratio). Same payloads, same client, same run,
alternating rounds so drift hits both. Prints both rates; the last line is
the ratio (target >= 0.5).

Then, with the server idle, the slowest drafts the intake accepts, each at
its limits (docs/intake.md, Limits): a full body of extra fields, a full body
of text, a group of the most participants with as much text shared by all as
is allowed, and
every extra field in such a group (a group's drafts together within
INTAKE_MAX_STORED_BYTES). Prints each case's answer time (median of
--slow-repeats) and the slowest (target < 1 s on 2 cores).

    .venv/bin/python bench/intake.py [--requests 600] [--concurrency N] [--workers N] [--rounds 20]
                                     [--slow-repeats 3]

By default one gunicorn worker per CPU and as many concurrent clients.

Needs PostgreSQL on 127.0.0.1:5432. Uses (and drops) database psyfi_bench_intake
(BENCH_INTAKE_DB to use another name).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_INTAKE_DB", "psyfi_bench_intake")
PG = "postgresql://postgres@127.0.0.1:5432"
BENCH_ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "DJANGO_SETTINGS_MODULE": "psyfi_review.settings",
    "DEBUG": "false",
    "LOG_LEVEL": "ERROR",
}


# --- the server side (gunicorn imports this module as `intake`) ------------------------------------


def _bare_urlconf():
    """The project's URLs plus the bare endpoint."""
    from django.db import transaction
    from django.urls import include, path
    from django.utils.dateparse import parse_datetime
    from rest_framework.parsers import JSONParser
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from notes.models import AISource, Draft

    ai_source = AISource.objects.select_related("practice").get(pk=int(os.environ["BENCH_AI_SOURCE"]))

    class BareDraftApi(APIView):
        """Parse the JSON, write the same Draft row, answer its id. Nothing else:
        one INSERT (bulk_create sends no post_save, so no history row) in one
        transaction."""

        authentication_classes = []
        permission_classes = [AllowAny]
        parser_classes = [JSONParser]

        def post(self, request):
            data = request.data
            with transaction.atomic():
                [draft] = Draft.objects.bulk_create(
                    [
                        Draft(
                            practice_id=ai_source.practice_id,
                            ai_source=ai_source,
                            client_id=data["client"]["id"],
                            clinician_id=data["clinician"]["id"],
                            payload=data,
                            model_name=data["model"]["name"],
                            model_version=data["model"].get("version", ""),
                            session_start=parse_datetime(data["session"]["start"]),
                            session_duration_minutes=data["session"]["duration_minutes"],
                            session_type=data["session"]["type"],
                            external_id=data.get("draft_id", ""),
                            idempotency_key=data.get("draft_id", ""),
                        )
                    ]
                )
            return Response({"id": draft.pk}, status=201)

    class URLConf:  # a plain object: Django caches resolvers by urlconf, so it must be hashable
        urlpatterns = [path("bench/bare-draft", BareDraftApi.as_view()), path("", include("psyfi_review.urls"))]

    return URLConf


def _application():
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = _bare_urlconf()
    application = get_wsgi_application()
    from notes.risk_language import risk_pipeline

    risk_pipeline()  # as psyfi_review/wsgi.py does: at worker boot, not in the first request
    return application


if __name__ != "__main__":
    application = _application()


# --- the client side -------------------------------------------------------------------------------


def fresh_database(*, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def setup_world() -> dict:
    """Migrate the throwaway database and create a practice, a scribe with a
    key, a clinician and a consenting client. Returns what the client needs."""
    os.environ.update(BENCH_ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from notes.api_keys import ai_source_key_create
    from tests.factories import ai_source_factory, client_factory, world_factory

    call_command("migrate", verbosity=0)
    world = world_factory()
    ai_source = ai_source_factory(world.practice)
    _, key = ai_source_key_create(ai_source=ai_source)
    client = client_factory(world.practice, world.clinician, given_name="Jordan", family_name="Rivera")
    group = [client_factory(world.practice, world.clinician).pk for _ in range(MAX_PARTICIPANTS)]
    return {
        "ai_source": ai_source.pk,
        "key": key,
        "client": client.pk,
        "clinician": world.clinician.pk,
        "group": group,
    }


def payload(ids: dict, n: int, kind: str) -> dict:
    return {
        "schema_version": 1,
        "draft_id": f"bench-{kind}-{n}",
        "client": {"id": ids["client"]},
        "clinician": {"id": ids["clinician"]},
        "session": {"start": "2026-11-24T15:00:00-05:00", "duration_minutes": 50, "type": "individual"},
        "client_reported_symptoms": 'Client reports sleeping better, "about six hours most nights". Still avoiding '
        "the gym and calls with friends. Rates low mood 5/10 (was 7/10). " * 3,
        "clinician_observations": "Alert, oriented x3; affect congruent, mildly anxious. Speech normal rate.",
        "clinical_impressions": "Recurrent major depression, moderate, improving with behavioral activation.",
        "risk_assessment": {"level": "low", "text": "Denies SI/HI. Protective factors: family, work."},
        "next_steps": "Continue weekly CBT. Homework: schedule two social contacts and one gym visit.",
        "diagnosis_codes": ["F33.1", "F41.1"],
        "interventions": ["CBT", "behavioural activation", "motivational interviewing"],
        "model": {"name": "scribe-llm", "version": "2.3"},
        "transcript_ref": f"s3://transcripts/bench/{n}",
    }


# --- the slowest accepted drafts --------------------------------------------------------------------

MAX_PARTICIPANTS = 30  # notes.intake_serializers.MAX_PARTICIPANTS (imported after django.setup())
TEXT_FIELDS = ("client_reported_symptoms", "clinician_observations", "clinical_impressions", "next_steps")
FILLER = "Client reports low mood, poor sleep and worry about work; denies suicidal ideation. "


def _filled(body: dict, fillers: list[tuple[dict, str]], *, limit: int, max_each: int) -> dict:
    """body with each (object, key) of fillers set to text, as long as the
    body limit and, for a group, INTAKE_MAX_STORED_BYTES allow (and at most
    max_each characters each)."""
    from django.conf import settings

    from notes.intake_limits import group_stored_bytes

    for obj, key in fillers:
        obj[key] = ""
    room = limit - len(json.dumps(body).encode()) - 16
    each = min(max_each, room // len(fillers))
    members = len(body["session"].get("participants", []))
    if members:  # each session-wide character is stored once per member
        stored_room = settings.INTAKE_MAX_STORED_BYTES - group_stored_bytes(body) - 16 * members
        each = min(each, stored_room // (members * len(fillers)))
    text = (FILLER * (each // len(FILLER) + 1))[:each]
    for obj, key in fillers:
        obj[key] = text
    assert len(json.dumps(body).encode()) <= limit
    assert group_stored_bytes(body) <= settings.INTAKE_MAX_STORED_BYTES
    return body


def slow_cases(ids: dict) -> dict:
    """name -> function(n) building that case's n-th payload, each at the limits."""
    from django.conf import settings

    from notes.intake_serializers import MAX_PARTICIPANTS as max_participants
    from notes.intake_serializers import MAX_TEXT

    assert max_participants == MAX_PARTICIPANTS == len(ids["group"])
    limit, extras = settings.INTAKE_MAX_BODY_BYTES, settings.INTAKE_MAX_EXTRA_FIELDS

    def individual(n: int, kind: str) -> dict:
        body = payload(ids, n, f"slow-{kind}")
        for name in (*TEXT_FIELDS, "diagnosis_codes", "interventions"):
            body.pop(name)
        return body

    def group(n: int, kind: str) -> dict:
        body = individual(n, kind)
        del body["client"]
        body["session"] = {
            **body["session"],
            "type": "group",
            "participants": [{"client": {"id": c}, "name": f"Member {i}"} for i, c in enumerate(ids["group"])],
        }
        return body

    def extra_fields(body: dict) -> dict:
        for i in range(extras):
            body[f"vendor_field_{i}"] = ""
        return _filled(body, [(body, f"vendor_field_{i}") for i in range(extras)], limit=limit, max_each=limit)

    def text(body: dict) -> dict:
        body["risk_assessment"] = {"level": "low", "text": ""}
        targets = [(body, name) for name in TEXT_FIELDS] + [(body["risk_assessment"], "text")]
        return _filled(body, targets, limit=limit, max_each=MAX_TEXT)

    def risk_text(body: dict) -> dict:
        # Every sentence different and full of risk words: the worst case for
        # the risk scan (notes.risk_language caps what it classifies).
        body = text(body)
        targets = [(body, name) for name in TEXT_FIELDS] + [(body["risk_assessment"], "text")]
        counter = iter(range(10**9))
        for obj, key in targets:
            size, parts = len(obj[key]), []
            while sum(map(len, parts)) < size:
                parts.append(f"Reports thoughts of killing himself, plan {next(counter)}. ")
            obj[key] = "".join(parts)[:size]
        return body

    return {
        f"{extras} extra fields filling the body": lambda n: extra_fields(individual(n, "extra")),
        "text fields filling the body": lambda n: text(individual(n, "text")),
        "text fields of distinct risk sentences filling the body": lambda n: risk_text(individual(n, "risk")),
        f"group of {MAX_PARTICIPANTS}, text filling the stored limit": lambda n: text(group(n, "group-text")),
        f"group of {MAX_PARTICIPANTS}, {extras} extra fields filling the stored limit": lambda n: extra_fields(
            group(n, "group-extra")
        ),
    }


def slowest_accepted(url: str, headers: dict, ids: dict, repeats: int) -> float:
    """Times each slow case, one request at a time; prints each median and
    returns the slowest median in seconds."""
    import statistics

    import requests

    session = requests.Session()
    session.headers.update(headers)
    medians = {}
    for name, build in slow_cases(ids).items():
        times = []
        for n in range(repeats):
            data = json.dumps(build(n)).encode()
            start = time.perf_counter()
            response = session.post(url, data=data, timeout=120)
            times.append(time.perf_counter() - start)
            if response.status_code != 201:
                raise SystemExit(f"{name}: HTTP {response.status_code} {response.text[:300]}")
        medians[name] = statistics.median(times)
        print(f"slow draft, {name} ({len(data)} bytes): {medians[name] * 1000:.0f} ms")
    return max(medians.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ids: dict, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **BENCH_ENV, "BENCH_AI_SOURCE": str(ids["ai_source"])}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--pythonpath",
            f"{ROOT},{ROOT / 'bench'}",
            "--log-level",
            "warning",
            "intake:application",
        ],
        env=env,
        cwd=str(ROOT),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server, base
        except OSError:
            if server.poll() is not None:
                raise SystemExit("gunicorn exited before it listened") from None
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start listening")


def timed_round(url: str, bodies: list[dict], headers: dict, concurrency: int, timeout: float = 30) -> float:
    import requests

    sessions = [requests.Session() for _ in range(concurrency)]
    for s in sessions:
        s.headers.update(headers)

    def post(i: int) -> None:
        response = sessions[i % concurrency].post(url, data=json.dumps(bodies[i]), timeout=timeout)
        if response.status_code != 201:
            raise SystemExit(f"{url}: HTTP {response.status_code} {response.text[:300]}")

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(len(bodies)):
            post(i)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, range(len(bodies))))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="per endpoint")
    # Throughput is measured with the server busy: one gunicorn worker per
    # CPU and as many clients posting at once.
    cpus = os.cpu_count() or 2
    parser.add_argument("--concurrency", type=int, default=cpus, help=f"clients posting at once (default {cpus})")
    parser.add_argument("--workers", type=int, default=cpus, help=f"gunicorn workers (default {cpus})")
    # Many short alternating rounds: the load of anything else on the machine
    # then falls on both endpoints alike.
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--slow-repeats", type=int, default=3, help="requests per slowest-draft case")
    args = parser.parse_args()

    fresh_database()
    server = None
    try:
        ids = setup_world()
        from django.db import connections

        connections.close_all()
        server, base = start_server(ids, args.workers)
        auth = {"Authorization": f"Bearer {ids['key']}", "Content-Type": "application/json"}
        plain = {"Content-Type": "application/json"}
        endpoints = {
            "intake": (f"{base}/api/v1/drafts", auth),
            "bare": (f"{base}/bench/bare-draft", plain),
        }
        # Warm up both (imports, connections, ICD-10-CM tables) outside the timing.
        # gunicorn listens before its workers have loaded the app (the risk
        # pipeline takes seconds to build on a busy machine): the first
        # requests wait for that, so they get a long timeout.
        for name, (url, headers) in endpoints.items():
            warm = [payload(ids, i, f"warm-{name}") for i in range(20)]
            timed_round(url, warm, headers, args.concurrency, timeout=600)
        per_round = max(1, args.requests // args.rounds)
        elapsed = {"intake": 0.0, "bare": 0.0}
        count = {"intake": 0, "bare": 0}
        for r in range(args.rounds):
            order = ["intake", "bare"] if r % 2 == 0 else ["bare", "intake"]
            for name in order:
                url, headers = endpoints[name]
                bodies = [payload(ids, r * per_round + i, name) for i in range(per_round)]
                elapsed[name] += timed_round(url, bodies, headers, args.concurrency)
                count[name] += per_round
        intake_rate = count["intake"] / elapsed["intake"]
        bare_rate = count["bare"] / elapsed["bare"]
        print(
            f"{count['intake']} drafts per endpoint, concurrency {args.concurrency}, "
            f"{args.workers} gunicorn workers, PostgreSQL"
        )
        print(f"intake endpoint (auth + validation + mapping + note): {intake_rate:.1f} drafts/s")
        print(f"bare DRF endpoint (one Draft INSERT, one commit):     {bare_rate:.1f} drafts/s")
        slowest = slowest_accepted(endpoints["intake"][0], auth, ids, args.slow_repeats)
        print(f"slowest accepted draft: {slowest * 1000:.0f} ms (target < 1000 ms on 2 cores)")
        ratio = intake_rate / bare_rate
        print(f"intake {intake_rate:.1f}/s, bare {bare_rate:.1f}/s, ratio {ratio:.2f} (target >= 0.5)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        fresh_database(drop_only=True)


if __name__ == "__main__":
    main()
