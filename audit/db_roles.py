"""The PostgreSQL role split (docs/deployment.md, "Database roles").

The owner role owns the database, its schema and every table; deploys log
in as it to run `manage.py migrate`, nothing else does. The app role (web,
workers, beat) reads and writes rows and nothing more: it cannot alter a
table, so it cannot switch the audit log's trigger off; it cannot truncate;
and on the audit tables it may only insert and read. `manage.py
db_roles_sql` prints the script; the test suite runs the very same text
(tests/security/test_db_roles.py), so the two cannot drift."""

from psycopg import sql

# Idempotent: run it as a superuser after every `migrate` (tables a
# migration added are covered by the default privileges; the audit tables'
# revoke is applied again).
_SCRIPT = """\
-- psyfi-review database roles. Run as a PostgreSQL superuser, connected to
-- the application's database, after every `manage.py migrate`: it is idempotent.
-- Set passwords separately (psql: \\password {owner_name_text}).

-- The owner (migrations, deploys) and the application's role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {owner_name}) THEN
        CREATE ROLE {owner} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {app_name}) THEN
        CREATE ROLE {app} LOGIN;
    END IF;
END
$$;
ALTER ROLE {app} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
REVOKE {owner} FROM {app};

-- The owner owns the database and the schema (tables made by migrate, run
-- as the owner, are its own; see docs for REASSIGN OWNED on an older install).
ALTER DATABASE {database} OWNER TO {owner};
ALTER SCHEMA public OWNER TO {owner};
REVOKE ALL ON DATABASE {database} FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The application: rows only. Not an owner, so no ALTER TABLE (no DISABLE
-- TRIGGER), no DROP; no TRUNCATE privilege.
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app};
GRANT USAGE ON SCHEMA public TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO {app};

-- The audit log and its checkpoints: append and read only (the triggers
-- refuse UPDATE and DELETE too; this refuses them before the trigger runs).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent, audit_auditcheckpoint, audit_auditsession FROM {app};
"""


def db_roles_sql(*, owner: str = "psyfi_owner", app: str = "psyfi_app", database: str = "psyfi") -> str:
    """The role script for these names, quoted as identifiers and literals."""
    return _SCRIPT.format(
        owner=sql.Identifier(owner).as_string(),
        app=sql.Identifier(app).as_string(),
        database=sql.Identifier(database).as_string(),
        owner_name=sql.Literal(owner).as_string(),
        app_name=sql.Literal(app).as_string(),
        owner_name_text=sql.Identifier(owner).as_string(),
    )
