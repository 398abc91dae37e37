"""Issue 11 §4, the role split: the application logs in as a role that does
not own the tables, so it cannot switch the audit log's trigger off, truncate
it or rewrite its rows, while appending through audit_record still works.
The tests run the very script the deployment guide prints
(audit.db_roles, `manage.py db_roles_sql`)."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from audit.db_roles import db_roles_sql
from audit.models import AuditEvent
from audit.verify import audit_chain_verify

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles"),
    pytest.mark.django_db(transaction=True),  # the app role's own connection must see the rows
]
ROOT = Path(__file__).resolve().parent.parent.parent
APP_ROLE = "psyfi_app_test"


@pytest.fixture
def app_conn():
    """The role script applied to the test database (whose tables the test
    user owns: it plays the owner), and a connection as the app role."""
    db = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(db_roles_sql(owner=db["USER"], app=APP_ROLE, database=db["NAME"]))
    conn = psycopg.connect(host=db["HOST"], port=db["PORT"], dbname=db["NAME"], user=APP_ROLE, autocommit=True)
    yield conn
    conn.close()


@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditcheckpoint"])
@pytest.mark.parametrize("which", ["ALL", "USER", "audit_auditevent_no_update_delete"])
def test_the_app_role_cannot_disable_the_audit_triggers(app_conn, table, which):
    if which.startswith("audit_") and table != "audit_auditevent":
        which = "audit_auditcheckpoint_no_update_delete"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
        app_conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {which}")


@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditcheckpoint", "audit_auditchainhead"])
def test_the_app_role_cannot_truncate_the_audit_tables(app_conn, table):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        app_conn.execute(f"TRUNCATE {table}")


def test_the_app_role_cannot_rewrite_audit_rows_nor_skip_triggers(app_conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table audit_auditevent"):
        app_conn.execute("UPDATE audit_auditevent SET actor_label = 'x'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table audit_auditevent"):
        app_conn.execute("DELETE FROM audit_auditevent")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit_auditcheckpoint"):
        app_conn.execute("DELETE FROM audit_auditcheckpoint")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="session_replication_role"):
        app_conn.execute("SET session_replication_role = replica")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("DROP TABLE audit_auditevent")
    assert app_conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone() == (
        False,
        False,
    )


def test_the_app_role_appends_and_anchors_through_the_application(app_conn, world, tmp_path):
    """The application itself, logged in as the app role: audit_record's
    one-statement append and the checkpoint service both work."""
    db = connection.settings_dict
    code = (
        "from audit.services import audit_record, actor_system; from audit.anchoring import audit_anchor_checkpoints;"
        "from notes.models import Practice;"
        f"p = Practice.objects.get(pk={world.practice.pk});"
        "e = audit_record(practice=p, actor=actor_system('t'), action='role.test', object_type='t', object_id='1');"
        "print('appended', e.seq); print('anchored', len(audit_anchor_checkpoints()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_ANCHOR")}
    env.update(
        DJANGO_SETTINGS_MODULE="psyfi_review.settings_test",
        DATABASE_URL=f"postgres://{APP_ROLE}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        AUDIT_ANCHOR_DIR=str(tmp_path / "anchors"),
        AUDIT_ANCHOR_KEY_FILE=str(tmp_path / "anchor.pem"),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert app_conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
    event = AuditEvent.objects.get(practice=world.practice, action="role.test")
    assert f"appended {event.seq}" in result.stdout and "anchored 0" not in result.stdout
    assert audit_chain_verify(practice_id=world.practice.pk).ok


def test_the_deployment_guide_prints_the_script_the_tests_run():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert db_roles_sql() in guide
