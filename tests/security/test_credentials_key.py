"""Issue #11, point 3: EHR credentials are encrypted under a key of their own
(PSYFI_CREDENTIALS_KEYS), and production chooses its identifier system on
purpose (PSYFI_IDENTIFIER_SYSTEM): production refuses to start without
either, and a malformed value stops start-up with its name."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from integrations.crypto import secret_decrypt
from integrations.models import EHRConnection
from integrations.services import connection_create

ROOT = Path(__file__).resolve().parents[2]
A_KEY = Fernet.generate_key().decode()
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
    "SECRET_KEY": "production-secret-with-enough-entropy-" + "x7Qp" * 10,
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/psyfi",
    "ALLOWED_HOSTS": "notes.example.org",
    "PSYFI_CREDENTIALS_KEYS": A_KEY,
    "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.org/fhir/note-id",
}


def _run(args: list[str], tmp_path, env: dict) -> subprocess.CompletedProcess:
    """Run with exactly `env` (plus PATH and a scratch var dir): nothing
    leaks in from the developer's or CI's environment."""
    controlled = {"PATH": os.environ["PATH"], "PSYFI_VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run(args, cwd=ROOT, env=controlled, capture_output=True, text=True, timeout=120)


def _import_production(tmp_path, **changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in {**PRODUCTION, **changes}.items() if v is not None}
    return _run([sys.executable, "-c", "import psyfi_review.settings_production"], tmp_path, env)


def test_production_refuses_to_start_without_a_credentials_key(tmp_path):
    result = _import_production(tmp_path, PSYFI_CREDENTIALS_KEYS=None)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "PSYFI_CREDENTIALS_KEYS" in result.stderr


def test_production_refuses_an_empty_credentials_key_list(tmp_path):
    for empty in ("", " , "):
        result = _import_production(tmp_path, PSYFI_CREDENTIALS_KEYS=empty)
        assert result.returncode != 0, repr(empty)
        assert "PSYFI_CREDENTIALS_KEYS" in result.stderr


def test_a_malformed_credentials_key_stops_start_up_with_its_name_but_not_its_value(tmp_path):
    malformed = "my-secret-passphrase-not-a-fernet-key"
    for module in ("psyfi_review.settings", "psyfi_review.settings_production"):
        env = {**PRODUCTION, "PSYFI_CREDENTIALS_KEYS": f"{A_KEY},{malformed}"}
        result = _run([sys.executable, "-c", f"import {module}"], tmp_path, env)
        assert result.returncode != 0, module
        assert "PSYFI_CREDENTIALS_KEYS: key 2 is not a Fernet key" in result.stderr
        assert malformed not in result.stderr and A_KEY not in result.stderr


def test_production_refuses_to_start_without_an_identifier_system(tmp_path):
    result = _import_production(tmp_path, PSYFI_IDENTIFIER_SYSTEM=None)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "PSYFI_IDENTIFIER_SYSTEM" in result.stderr


def test_an_identifier_system_that_is_not_an_absolute_uri_stops_start_up(tmp_path):
    for module in ("psyfi_review.settings", "psyfi_review.settings_production"):
        for relative in ("note-id", "", "https://"):
            env = {**PRODUCTION, "PSYFI_IDENTIFIER_SYSTEM": relative}
            result = _run([sys.executable, "-c", f"import {module}"], tmp_path, env)
            assert result.returncode != 0, (module, relative)
            assert "PSYFI_IDENTIFIER_SYSTEM must be an absolute URI" in result.stderr


def test_an_install_that_ran_on_the_demo_identifier_system_may_keep_it(tmp_path):
    """Changing it would make every retry a new note at the EHR."""
    result = _import_production(tmp_path, PSYFI_IDENTIFIER_SYSTEM="urn:psyfi-review:demo:note-id")
    assert result.returncode == 0, result.stderr


def test_production_with_the_required_settings_passes_check_deploy_without_warnings(tmp_path):
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, dict(PRODUCTION)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "?:" not in result.stdout + result.stderr


def test_credentials_stay_readable_when_the_secret_key_rotates(world, settings):
    settings.PSYFI_CREDENTIALS_KEYS = [A_KEY]
    settings.SECRET_KEY = "the-first-secret-key-" + "a" * 40
    connection = connection_create(
        practice=world.practice,
        name="EHR",
        kind=EHRConnection.Kind.FHIR,
        base_url="https://ehr.example.org/fhir",
        is_sandbox=False,
        auth_kind=EHRConnection.Auth.BEARER,
        secrets={"token": "ehr-token"},
    )
    settings.SECRET_KEY = "the-rotated-secret-key-" + "b" * 40
    stored = EHRConnection.objects.get(pk=connection.pk).credentials_encrypted
    assert secret_decrypt(stored) == {"token": "ehr-token"}
