"""Server time of the review screens, on a throwaway PostgreSQL database.

    .venv/bin/python bench/review.py [--runs 30]

Prints the median time Django takes to answer (in-process, the whole
middleware stack, no network) for:
  - the queue page of a clinician with 500 drafts waiting (target <= 100 ms);
  - the review page of a 10,000-word note with edits spread through it, diff
    included (target <= 150 ms);
  - signing a note whose 100 KB section was fully rewritten: the attribution
    diff runs inside the signature's row lock (target < 1 s; bounded by
    notes.review_diff's caps and time budget).
The last line is the headline. The database (PSYFI_BENCH_DB, default
bench_psyfi_review) is created and dropped by the script.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings_test")
os.environ["PSYFI_TEST_DB"] = os.environ.get("PSYFI_BENCH_DB", "bench_psyfi_review")
os.environ.setdefault("PSYFI_TEST_REDIS_DB", "10")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client as WebClient  # noqa: E402

WORDS = (
    "client reports sleep mood anxiety week session work family stress improved worse steady coping skills "
    "practiced breathing exercise thoughts negative automatic reframed behavioral activation walked daily "
    "appetite energy concentration therapist reviewed homework plan goals progress motivation support partner "
    "conflict avoided discussed values noticed feelings body tension evening morning routine journal"
).split()


def _prose(rng: random.Random, words: int) -> str:
    out, sentence = [], []
    for _ in range(words):
        sentence.append(rng.choice(WORDS))
        if len(sentence) >= rng.randint(8, 18):
            out.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    if sentence:
        out.append(" ".join(sentence).capitalize() + ".")
    paragraphs = [" ".join(out[i : i + 6]) for i in range(0, len(out), 6)]
    return "\n\n".join(paragraphs)


def _edit(rng: random.Random, text: str) -> str:
    """A clinician's pass: roughly one word in forty replaced or removed, and a
    few sentences added."""
    words = text.split(" ")
    for i in range(0, len(words), 40):
        j = min(len(words) - 1, i + rng.randint(0, 39))
        words[j] = rng.choice(["clarified", "", "(per client)", "reports"]) or words[j].upper()
    return " ".join(words) + "\n\nClinician addendum: reviewed safety plan; no concerns."


def _median_ms(web: WebClient, url: str, runs: int) -> tuple[float, int]:
    for _ in range(3):
        response = web.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = web.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    # No setup_test_environment(): its instrumented template rendering would
    # be timed too, and production has none of it.
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from notes import services
        from tests.factories import PASSWORD, ai_output, client_factory, note_factory, totp_now, world_factory
        from tests.notes.review_fixtures import notes_bulk_clone

        rng = random.Random(5)
        world = world_factory()
        clients = [client_factory(world.practice, world.clinician) for _ in range(20)]
        prototype = note_factory(
            practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["F33.1", "F99"])
        )
        notes_bulk_clone(prototype=prototype, clients=clients, count=499)

        sizes = {"subjective": 4000, "objective": 2000, "assessment": 2000, "plan": 2000}
        big = note_factory(
            practice=world.practice,
            clinician=world.colleague,
            payload=ai_output(
                client_reported_symptoms=_prose(rng, sizes["subjective"]),
                clinician_observations=_prose(rng, sizes["objective"]),
                clinical_impressions=_prose(rng, sizes["assessment"]),
                next_steps=_prose(rng, sizes["plan"]),
            ),
        )
        for section in big.sections.filter(key__in=sizes):
            services.note_edit_section(
                note=big, section_key=section.key, text=_edit(rng, section.text), actor=world.colleague
            )
        total_words = sum(len(s.ai_text.split()) for s in big.sections.all())

        def login(user) -> WebClient:
            web = WebClient()
            response = web.post(
                "/login/", {"username": user.username, "password": PASSWORD, "otp_token": totp_now(user)}
            )
            assert response.status_code == 302
            return web

        from tests.factories import note_sign_now

        rewritten = note_factory(
            practice=world.practice,
            clinician=world.clinician,
            payload=ai_output(next_steps=_prose(rng, 14_000)[:99_000]),
        )
        services.note_edit_section(
            note=rewritten,
            section_key="plan",
            text=_prose(random.Random(6), 14_000).upper()[:99_000],
            actor=world.clinician,
        )
        plan_chars = len(rewritten.sections.get(key="plan").text)
        # Warm-up: the first signing of a process imports the delivery builders
        # and connects to the broker; a running server has done both.
        note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
        start = time.perf_counter()
        note_sign_now(rewritten, world.clinician)
        sign_ms = (time.perf_counter() - start) * 1000
        print(f"signing, {plan_chars // 1000} KB section fully rewritten: {sign_ms:.0f} ms (target < 1000)")

        queue_ms, queue_bytes = _median_ms(login(world.clinician), "/queue/", args.runs)
        print(f"queue, 500 drafts waiting: median {queue_ms:.1f} ms over {args.runs} runs ({queue_bytes // 1024} KiB)")
        review_ms, review_bytes = _median_ms(login(world.colleague), f"/notes/{big.pk}/review/", args.runs)
        print(
            f"review page, {total_words}-word note with diff: median {review_ms:.1f} ms over {args.runs} runs "
            f"({review_bytes // 1024} KiB)"
        )
        print(
            f"queue {queue_ms:.0f} ms (target <= 100) · review {review_ms:.0f} ms (target <= 150)"
            f" · sign, 100 KB rewritten {sign_ms:.0f} ms (target < 1000)"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
