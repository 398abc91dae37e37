"""`make run`: the demo practice, and the single-box stack (SQLite, the
filesystem broker, a real worker) working with nothing else installed."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django_otp.plugins.otp_static.models import StaticToken

from notes.demo_data import DEMO_PASSWORD
from notes.models import Client, Draft, Note, Practice

ROOT = Path(__file__).resolve().parent.parent


def _demo_env(tmp_path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update({"PSYFI_VAR_DIR": str(tmp_path / "var"), "DEBUG": "true"})
    return env


@pytest.mark.django_db
def test_the_demo_practice_has_people_synthetic_clients_and_realistic_drafts():
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    practice = Practice.objects.get(slug="riverbend-demo")
    assert set(practice.memberships.values_list("role", flat=True)) == {
        "clinician",
        "practice_admin",
        "qa_reviewer",
        "auditor",
    }
    assert Client.objects.filter(practice=practice).exclude(synthetic=True).count() == 0
    notes = Note.objects.filter(practice=practice)
    assert notes.filter(high_risk=True).exists()
    assert Draft.objects.filter(practice=practice, session_type="group").count() >= 2
    assert notes.filter(flags__kind="other_participant").exists()
    # The client without consent in the group session got no note.
    assert not notes.filter(client__ehr_patient_id="SYN-1006").exists()


@pytest.mark.django_db
def test_the_demo_clinician_logs_in_with_a_printed_backup_code_and_sees_the_drafts(client):
    call_command("seed_demo")
    token = StaticToken.objects.filter(device__user__username="dr.rivera").first().token
    response = client.post("/login/", {"username": "dr.rivera", "password": DEMO_PASSWORD, "otp_token": token})
    assert response.status_code == 302
    queue = client.get("/queue/").content.decode()
    assert "Avery Testperson" in queue and "high risk" in queue


def test_a_real_worker_consumes_from_the_filesystem_broker(tmp_path):
    env = _demo_env(tmp_path)
    env["CELERY_RESULT_BACKEND"] = f"file://{tmp_path}/results"
    (tmp_path / "results").mkdir()
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "psyfi_review",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        code = "from psyfi_review.celery import ping; print(ping.delay().get(timeout=60))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
        )
        assert out.stdout.strip() == "pong", out.stderr
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_runs_demo_script_serves_the_demo_with_worker_and_beat(tmp_path):
    env = _demo_env(tmp_path)
    py = str(ROOT / ".venv/bin/python")
    for args in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run([py, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    port = _free_port()
    env["PORT"] = str(port)
    demo = subprocess.Popen(
        [str(ROOT / "bin/run-demo")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        # Start-up is migrations-free but imports the whole app three times
        # (web, worker, beat); on a loaded machine that took over a minute.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                if requests.get(f"{base}/login/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert demo.poll() is None, f"the demo exited: {demo.stdout.read()[-3000:]}"
        session = requests.Session()
        page = session.get(f"{base}/login/", timeout=5).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        code = subprocess.run(
            [py, "manage.py", "demo_otp", "dr.rivera"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        ).stdout.strip()
        response = session.post(
            f"{base}/login/",
            data={"csrfmiddlewaretoken": csrf, "username": "dr.rivera", "password": DEMO_PASSWORD, "otp_token": code},
            headers={"Referer": f"{base}/login/"},
            timeout=10,
        )
        assert response.url.endswith("/queue/"), response.text[:300]
        assert "Avery Testperson" in response.text
        ps = subprocess.run(["ps", "-o", "args=", "--sid", str(demo.pid)], capture_output=True, text=True).stdout
        assert "celery -A psyfi_review worker" in ps and "celery -A psyfi_review beat" in ps
        # The scribe side on the same single-box stack: drafts through the real API into SQLite.
        posted = subprocess.run(
            [py, "manage.py", "post_demo_drafts", "--url", base, "--create-key"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert posted.returncode == 0, posted.stdout[-2000:] + posted.stderr[-2000:]
        assert "201" in posted.stdout and "group session" in posted.stdout
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
