"""The production settings serve under gunicorn, started with the image's own
command (the Dockerfile's CMD and deploy/gunicorn.conf.py), against the real
PostgreSQL test database and Redis: /readyz answers ready, pages are served
with their collected static files behind an https proxy, and the log is JSON
lines with the request id and without the query string."""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
HOST = "notes.example.test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dockerfile_cmd() -> list[str]:
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return json.loads(line[len("CMD ") :])


def production_env(tmp_path, port: int) -> dict:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PSYFI_", "DATABASE_", "REDIS_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
            "SECRET_KEY": "gunicorn-test-" + "k" * 50,
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "ALLOWED_HOSTS": HOST,
            "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.test/fhir/note-id",
            "PSYFI_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "AUDIT_ANCHOR_DIR": str(tmp_path / "anchors"),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "PATH": f"{ROOT / '.venv/bin'}:{os.environ.get('PATH', '')}",
        }
    )
    return env


@pytest.mark.django_db
def test_production_settings_serve_readyz_and_pages_under_gunicorn(tmp_path):
    assert settings.REDIS_URL, "this test needs the real Redis"
    port = _free_port()
    env = production_env(tmp_path, port)
    collected = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stderr[-3000:]
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            dockerfile_cmd(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = requests.get(f"{base}/readyz", timeout=60)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert server.poll() is None, log_path.read_text()[-3000:]
        assert ready is not None and ready.status_code == 200, (ready and ready.text, log_path.read_text()[-3000:])
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}}
        assert requests.get(f"{base}/healthz", timeout=60).json() == {"status": "ok"}

        # Behind the https proxy: the page, its hashed static files, HSTS.
        proxied = {"Host": HOST, "X-Forwarded-Proto": "https"}
        login = requests.get(f"{base}/login/", headers=proxied, timeout=60, allow_redirects=False)
        assert login.status_code == 200, login.text[:500]
        assert login.headers["Strict-Transport-Security"].startswith("max-age=")
        stylesheet = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', login.text).group(1)
        css = requests.get(f"{base}{stylesheet}", headers=proxied, timeout=60)
        assert css.status_code == 200 and "max-age" in css.headers["Cache-Control"]
        # Plain http is sent to https.
        plain = requests.get(f"{base}/login/", headers={"Host": HOST}, timeout=60, allow_redirects=False)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
        # A miss with a query a search box could send, under a known request id.
        missing = requests.get(
            f"{base}/no-such-page/?q=Avery+Testperson",
            headers={**proxied, "X-Request-Id": "probe-7f3a"},
            timeout=60,
        )
        assert missing.status_code == 404 and missing.headers["X-Request-Id"] == "probe-7f3a"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    not_found = [r for r in records if r.get("logger") == "django.request" and r["request_id"] == "probe-7f3a"]
    assert not_found and not_found[0]["level"] == "WARNING" and "/no-such-page/" in not_found[0]["message"]
    access = [r for r in records if r.get("logger") == "gunicorn.access" and "probe-7f3a" in r["message"]]
    assert access and access[0]["message"].startswith("GET /no-such-page/ 404")
    assert "Avery" not in log_path.read_text()
