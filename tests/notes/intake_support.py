"""Shared set-up for the intake API tests (tests/notes/test_intake_*.py)."""

import json
from dataclasses import dataclass

from django.test import Client as HttpClient

from notes.api_keys import ai_source_key_create
from notes.models import AISource, Client
from tests.factories import World, ai_output, ai_source_factory, client_factory

URL = "/api/v1/drafts"


@dataclass
class Scribe:
    world: World
    ai_source: AISource
    key: str
    client: Client  # a client of world.clinician, with consent

    def payload(self, **overrides) -> dict:
        body = {
            "client": {"ehr_patient_id": self.client.ehr_patient_id},
            "clinician": {"id": self.world.clinician.pk},
            "session": {"start": "2026-11-24T15:00:00-05:00", "duration_minutes": 50, "type": "individual"},
            "model": {"name": "scribe-llm", "version": "2.3"},
            **ai_output(),
        }
        body.update(overrides)
        return body

    def post(self, body, *, key: str | None = None, http: HttpClient | None = None, raw: bool = False, **headers):
        http = http or HttpClient()
        data = body if raw else json.dumps(body)
        return http.post(
            URL,
            data=data,
            content_type=headers.pop("content_type", "application/json"),
            HTTP_AUTHORIZATION=f"Bearer {key or self.key}",
            **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()},
        )

    def get(self, draft_id: int, *, key: str | None = None):
        return HttpClient().get(f"{URL}/{draft_id}", HTTP_AUTHORIZATION=f"Bearer {key or self.key}")


def scribe_for(world: World) -> Scribe:
    ai_source = ai_source_factory(world.practice)
    _, key = ai_source_key_create(ai_source=ai_source, actor=world.admin)
    client = client_factory(world.practice, world.clinician, given_name="Jordan", family_name="Rivera")
    return Scribe(world=world, ai_source=ai_source, key=key, client=client)
