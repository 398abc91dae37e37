"""docs/intake.md works: its JSON example, its curl example and its Python
example make drafts on a running server."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notes.models import Draft
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "intake.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", GUIDE.read_text(), re.DOTALL)


@pytest.fixture
def running(transactional_db, live_server):
    scribe = scribe_for(world_factory())
    env = {
        **os.environ,
        "PSYFI_URL": live_server.url,
        "PSYFI_KEY": scribe.key,
        "PSYFI_CLIENT": scribe.client.ehr_patient_id,
        "PSYFI_CLINICIAN": str(scribe.world.clinician.pk),
    }
    return scribe, env


def test_the_guide_documents_every_error_status():
    text = GUIDE.read_text()
    for status in (400, 401, 404, 406, 409, 413, 415, 422):
        assert re.search(rf"^\| {status} \|", text, re.MULTILINE), status


def test_the_full_json_example_is_accepted(running):
    scribe, _ = running
    body = json.loads(_blocks("json")[0])
    body["client"] = {"ehr_patient_id": scribe.client.ehr_patient_id}
    body["clinician"] = {"id": scribe.world.clinician.pk}
    response = scribe.post(body)
    assert response.status_code == 201, response.content[:300]
    assert Draft.objects.get().external_id == "scribe-7f3a9c"


def test_the_curl_example_makes_a_draft_and_is_idempotent(running):
    scribe, env = running
    script = _blocks("sh")[1]
    for expected in (201, 200):
        out = subprocess.run(
            ["bash", "-c", script.replace("curl -sS", "curl -sS -w '\\n%{http_code}'", 1)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        body, status = out.rsplit("\n", 1)
        assert int(status) == expected, body
    assert Draft.objects.count() == 1


def test_the_python_example_makes_a_draft(running, tmp_path):
    _, env = running
    script = tmp_path / "scribe.py"
    script.write_text(_blocks("python")[0])
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "-> note" in out.stdout and "state: draft" in out.stdout
    assert Draft.objects.count() == 1
