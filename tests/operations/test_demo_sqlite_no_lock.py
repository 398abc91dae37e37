"""The single-box demo does not lock: on SQLite (WAL, a busy timeout and
IMMEDIATE transactions, psyfi_review/settings.py) a clinician signs 20 notes
back to back through the web app while the demo's real worker delivers them
to the built-in sandbox EHR (itself served by the web process, so three
processes write the one file at once). Every signature answers without an
error page and every note arrives."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from notes.demo_data import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv/bin/python")
NOTES = 20

# Run inside the demo's settings: 20 reviewed notes for dr.rivera on the demo
# practice's consenting synthetic clients, flags resolved; two backup codes.
PREPARE = """
import json
from datetime import UTC, datetime, timedelta
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings")
import django
django.setup()
from django_otp.plugins.otp_static.models import StaticToken
from notes import services
from notes.models import Client, Practice
from tests.factories import note_factory, note_resolve_all_flags
from django.contrib.auth import get_user_model
practice = Practice.objects.get(slug="riverbend-demo")
rivera = get_user_model().objects.get(username="dr.rivera")
clients = list(Client.objects.filter(practice=practice, synthetic=True, consents__isnull=False).distinct()[:4])
ids = []
for i in range(%(n)d):
    note = note_factory(practice=practice, clinician=rivera, client=clients[i %% len(clients)],
                        session_start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(hours=i))
    services.note_open(note=note, actor=rivera)
    note_resolve_all_flags(note, rivera)
    ids.append(note.pk)
codes = [t.token for t in StaticToken.objects.filter(device__user=rivera)[:2]]
print(json.dumps({"notes": ids, "codes": codes}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _delivery_states(db_path: Path, note_ids: list[int]) -> dict[str, int]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        marks = ",".join("?" * len(note_ids))
        rows = conn.execute(
            f"SELECT state, count(*) FROM integrations_delivery WHERE note_id IN ({marks}) GROUP BY state", note_ids
        ).fetchall()
    return dict(rows)


@pytest.mark.worker
def test_signing_twenty_notes_while_the_worker_delivers_never_locks_the_demo(tmp_path):
    import json

    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        {
            "PSYFI_VAR_DIR": str(tmp_path / "var"),
            "DEBUG": "true",
            "PORT": str(port),
            "PSYFI_SANDBOX_BASE_URL": f"http://127.0.0.1:{port}/sandbox/fhir",
        }
    )
    db_path = tmp_path / "var" / "psyfi.sqlite3"
    for args in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    # The pragma sticks to the file: the demo's database is in WAL mode.
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    prepared = subprocess.run(
        [PY, "-c", PREPARE % {"n": NOTES}], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    data = json.loads(prepared.stdout.strip().splitlines()[-1])
    note_ids, codes = data["notes"], data["codes"]
    assert len(note_ids) == NOTES and len(codes) == 2

    demo = subprocess.Popen(
        [str(ROOT / "bin/run-demo")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                if requests.get(f"{base}/login/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert demo.poll() is None, demo.stdout.read()[-3000:]
        session = requests.Session()
        page = session.get(f"{base}/login/", timeout=30).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        login = session.post(
            f"{base}/login/",
            data={
                "csrfmiddlewaretoken": csrf,
                "username": "dr.rivera",
                "password": DEMO_PASSWORD,
                "otp_token": codes[0],
            },
            timeout=30,
        )
        assert login.url.endswith("/queue/"), login.text[:300]

        answers = []
        for i, note_id in enumerate(note_ids):
            form = {"csrfmiddlewaretoken": session.cookies["csrftoken"]}
            if i == 0:
                form["otp_token"] = codes[1]  # one step-up covers the batch
            answer = session.post(
                f"{base}/notes/{note_id}/sign/",
                data=form,
                headers={"Accept": "application/json"},
                timeout=60,
            )
            answers.append((note_id, answer.status_code, answer.text[:300]))
        failed = [a for a in answers if a[1] != 200 or '"ok": true' not in a[2]]
        assert not failed, failed

        # Every signed note reaches the sandbox EHR through the worker.
        states: dict[str, int] = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = _delivery_states(db_path, note_ids)
            if states.get("delivered") == NOTES:
                break
            time.sleep(1)
        assert states == {"delivered": NOTES}, states
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    logs = "".join(
        (tmp_path / "var" / "log" / name).read_text()
        for name in ("worker.log", "beat.log")
        if (tmp_path / "var" / "log" / name).exists()
    )
    assert "database is locked" not in logs
    assert "database is locked" not in demo.stdout.read()
