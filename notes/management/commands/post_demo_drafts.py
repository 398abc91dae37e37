"""Play the AI scribe: post new synthetic sessions to a running server through
the real intake API (HTTP, API key, JSON), then post one again to show
idempotency. Each run posts new sessions (free session times, new draft ids,
text drawn at random from notes/demo_data.py), never the seeded drafts again.

    .venv/bin/python manage.py post_demo_drafts --url http://127.0.0.1:8000 --key psk_...
    .venv/bin/python manage.py post_demo_drafts --url http://127.0.0.1:8000 --create-key

The database is read only to pick the practice's clients and clinicians and
the session times already taken (a real scribe knows them from the EHR and
its own calendar); everything is written by the server, through the API.
"""

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta

import requests
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notes.api_keys import ai_source_key_create
from notes.models import AISource, AISourceKey, Client, Draft, Membership, Practice

TIMEOUT = 30


# Session slots the scribe may use: working hours on past days, newest first.
SLOT_HOURS = (8, 9, 10, 11, 13, 14, 15, 16, 17)
SLOT_DAYS_BACK = 120


class Command(BaseCommand):
    help = "Post the demo drafts to a running server through the real intake API."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="Base URL of the running server, e.g. http://127.0.0.1:8000")
        key = parser.add_mutually_exclusive_group(required=True)
        key.add_argument("--key", help="An AI source's API key (psk_...)")
        key.add_argument(
            "--create-key", action="store_true", help="Create a key for the practice's scribe and print it once"
        )
        parser.add_argument("--practice", help="Practice slug for --create-key (default: the only or demo practice)")

    def handle(self, *args, url: str, key: str | None, create_key: bool, practice: str | None, **options):
        if create_key:
            key = self._create_key(practice)
        prefix = key.split("_", 2)[1] if key.count("_") >= 2 else ""
        row = AISourceKey.objects.select_related("ai_source__practice").filter(prefix=prefix).first()
        if row is None:
            raise CommandError("This key is not known to this database (is the server using the same settings?).")
        self.practice = row.ai_source.practice
        self.endpoint = url.rstrip("/") + "/api/v1/drafts"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        from notes.demo_data import SCRIBE_GROUP_SESSIONS, SCRIBE_HIGH_RISK, SCRIBE_SESSIONS

        clients = self._clients()
        run = uuid.uuid4().hex[:8]
        rng = random.Random(run)
        slots = self._free_slots()
        consenting = [c for c in clients if c.active_consent is not None]
        narratives = rng.sample(SCRIBE_SESSIONS, k=min(len(SCRIBE_SESSIONS), len(consenting)))
        # One consenting client's session is high-risk, so the run shows the risk flags too.
        if consenting:
            narratives[rng.randrange(len(narratives))] = rng.choice(SCRIBE_HIGH_RISK)
        first = None
        for i, (client, narrative) in enumerate(zip(consenting, narratives, strict=False)):
            body = self._payload(narrative, client=client, start=next(slots), template=rng.choice(("soap", "dap")))
            body["draft_id"] = f"demo-{run}-{i + 1}"
            self._post(body, label=f"{body['template'].upper()} draft for client {client.pk}")
            first = first or body
        no_consent = next((c for c in clients if c.active_consent is None), None)
        if no_consent is not None:
            body = self._payload(rng.choice(SCRIBE_SESSIONS), client=no_consent, start=next(slots), template="soap")
            body["draft_id"] = f"demo-{run}-blocked"
            self._post(body, label=f"draft for client {no_consent.pk} (no consent)")
        # A group of the last three clients: the one without consent is skipped by the server.
        members = clients[-3:]
        if len(members) >= 2:
            body = self._group_payload(rng.choice(SCRIBE_GROUP_SESSIONS), members, start=next(slots))
            body["draft_id"] = f"demo-{run}-group"
            self._post(body, label="group session")
        if first is not None:
            response = self._post(first, label="the first draft again (same draft_id)")
            if response.status_code != 200:
                raise CommandError("The repeated draft was not answered with the first result.")

    # --- helpers ---------------------------------------------------------------------------------

    def _create_key(self, slug: str | None) -> str:
        practices = Practice.objects.all()
        practice = practices.filter(slug=slug).first() if slug else None
        if practice is None and not slug:
            practice = practices.filter(slug="riverbend-demo").first() or (
                practices.first() if practices.count() == 1 else None
            )
        if practice is None:
            raise CommandError("Name the practice with --practice <slug> (run `manage.py seed_demo` for the demo).")
        ai_source = practice.ai_sources.filter(is_active=True).order_by("pk").first()
        if ai_source is None:
            ai_source = AISource.objects.create(practice=practice, name="Demo Scribe", vendor="Example AI")
        _, plain = ai_source_key_create(ai_source=ai_source)
        self.stdout.write(f"New API key for {ai_source.name} ({practice.slug}), shown once:\n  {plain}\n")
        return plain

    def _clients(self) -> list[Client]:
        clients = list(Client.objects.filter(practice=self.practice).prefetch_related("consents").order_by("pk"))
        if not clients:
            raise CommandError(f"Practice {self.practice.slug} has no clients (run `manage.py seed_demo`).")
        return clients

    def _clinician_ref(self, client: Client) -> dict:
        clinicians = Membership.objects.filter(
            practice=self.practice, role=Membership.Role.CLINICIAN, is_active=True, user__is_active=True
        )
        membership = clinicians.filter(user_id=client.clinician_id).first() or clinicians.order_by("pk").first()
        if membership is None:
            raise CommandError(f"Practice {self.practice.slug} has no active clinician.")
        return {"id": membership.user_id}

    def _free_slots(self) -> Iterator[str]:
        """Session starts no draft of the practice has yet (seeded, posted by an
        earlier run, or by this one), newest first, each at least an hour ago.
        One clinician sees one client at a time, so a taken slot is skipped
        whoever it belongs to."""
        taken = {
            start.timestamp()
            for start in Draft.objects.filter(client__practice=self.practice).values_list("session_start", flat=True)
        }
        latest = timezone.now() - timedelta(hours=1)
        today = timezone.localdate()
        for days_back in range(SLOT_DAYS_BACK):
            day = today - timedelta(days=days_back)
            for hour in reversed(SLOT_HOURS):
                start = timezone.make_aware(datetime.combine(day, time(hour, 0)))
                if start <= latest and start.timestamp() not in taken:
                    taken.add(start.timestamp())
                    yield start.isoformat()
        raise CommandError(f"No free session time in the last {SLOT_DAYS_BACK} days.")

    def _payload(self, narrative: dict, *, client: Client, start: str, template: str) -> dict:
        ref = {"ehr_patient_id": client.ehr_patient_id} if client.ehr_patient_id else {"id": client.pk}
        return {
            "schema_version": 1,
            "template": template,
            "client": ref,
            "clinician": self._clinician_ref(client),
            "session": {"start": start, "duration_minutes": 53, "type": "individual"},
            "model": {"name": "scribe-llm", "version": "2.3"},
            **narrative,
        }

    def _group_payload(self, narrative: dict, members: list[Client], *, start: str) -> dict:
        return {
            "schema_version": 1,
            "template": "soap",
            "clinician": self._clinician_ref(members[0]),
            "session": {
                "start": start,
                "duration_minutes": 90,
                "type": "group",
                "participants": [{"client": {"id": c.pk}, "name": c.given_name} for c in members],
            },
            "model": {"name": "scribe-llm", "version": "2.3"},
            **narrative,
        }

    def _post(self, body: dict, *, label: str) -> requests.Response:
        try:
            response = self.session.post(self.endpoint, data=json.dumps(body), timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise CommandError(f"Could not reach {self.endpoint}: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            raise CommandError(f"{label}: HTTP {response.status_code}, not JSON: {response.text[:200]}") from None
        if response.status_code >= 400:
            raise CommandError(f"{label}: HTTP {response.status_code} {json.dumps(answer)}")
        self.stdout.write(f"{label}: HTTP {response.status_code}")
        for draft in answer["drafts"]:
            flags = ", ".join(f"{k} {n}" for k, n in draft["flags"]["by_kind"].items()) or "none"
            extra = f" — blocked: {draft['blocked_reason']}" if draft["blocked"] else ""
            risk = " — HIGH RISK" if draft["high_risk"] else ""
            self.stdout.write(
                f"  draft {draft['id']} -> note {draft['note_id']} ({draft['state']}); flags: {flags}{risk}{extra}"
            )
        for skipped in answer["skipped_participants"]:
            self.stdout.write(f"  skipped client {skipped['client']}: {skipped['reason']}")
        return response
