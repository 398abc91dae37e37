"""Docker cannot run in CI here, so the deployment files are checked for what
can be checked without it: compose.yaml parses and runs every service
docs/deployment.md names with the documented commands, the Dockerfile runs
the documented commands as a non-root user, the env-file examples have
every secret the production settings require, and the database owner's
credentials reach only db and migrate."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/deployment.md").read_text()


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def compose_section() -> str:
    return DOC.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]


def documented_services() -> dict[str, str]:
    """service -> the backticked command of its row in the services table."""
    rows = re.findall(r"^\| `([a-z-]+)` \| (.+?) \|", compose_section(), flags=re.MULTILINE)
    return {name: (re.findall(r"`([^`]+)`", what) or [""])[0] for name, what in rows}


def dockerfile_lines() -> list[str]:
    # Continuation lines joined, comments dropped.
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_compose_runs_exactly_the_services_the_docs_name():
    services = compose()["services"]
    assert (
        set(services)
        == set(documented_services())
        == {
            "db",
            "redis",
            "migrate",
            "web",
            "worker",
            "beat",
            "proxy",
        }
    )


def test_each_app_service_runs_the_documented_command():
    services = compose()["services"]
    documented = documented_services()
    for name in ("migrate", "web", "worker", "beat"):
        command = services[name]["command"]
        assert isinstance(command, list), name
        assert " ".join(command) == documented[name], name
        assert services[name]["image"] == "psyfi-review:latest" and services[name]["build"] == "."


def test_the_worker_runs_the_threads_pool_and_beat_runs_once():
    services = compose()["services"]
    command = services["worker"]["command"]
    assert command[command.index("--pool") + 1] == "threads"
    assert "deploy" not in services["beat"] or services["beat"]["deploy"].get("replicas", 1) == 1


def test_nothing_of_the_new_version_starts_before_migrate_succeeded():
    services = compose()["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    # The migrate step is the documented one: migrate, then the role split.
    script = (ROOT / "deploy/migrate.sh").read_text()
    assert script.index("manage.py migrate --noinput") < script.index("manage.py db_roles_sql")
    assert "db_roles_sql" in DOC


def test_the_web_service_is_ready_only_when_readyz_says_so():
    test = compose()["services"]["web"]["healthcheck"]["test"]
    assert any("/readyz" in part for part in test)


def env_files(service: dict) -> list[str]:
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else list(files)


def env_names(path: str) -> set[str]:
    return set(re.findall(r"^([A-Z_]+)=", (ROOT / path).read_text(), flags=re.MULTILINE))


def test_secrets_come_from_the_env_files_and_the_examples_have_every_required_one():
    services = compose()["services"]
    for name in ("migrate", "web", "worker", "beat"):
        assert "deploy/psyfi.env" in env_files(services[name]), name
        assert "environment" not in services[name]  # no secret written into compose.yaml
    names = env_names("deploy/psyfi.env.example")
    required = {"SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "PSYFI_CREDENTIALS_KEYS", "PSYFI_IDENTIFIER_SYSTEM"}
    assert required <= names
    assert {"PSYFI_APP_DB_PASSWORD", "REDIS_URL"} <= names
    assert {"OWNER_DATABASE_URL", "POSTGRES_PASSWORD"} <= env_names("deploy/owner.env.example")
    assert env_files(services["db"]) == ["deploy/owner.env"]
    assert env_files(services["migrate"]) == ["deploy/psyfi.env", "deploy/owner.env"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"deploy/psyfi.env", "deploy/owner.env", ".git"} <= set(ignored)
    assert {"deploy/psyfi.env", "deploy/owner.env"} <= set((ROOT / ".gitignore").read_text().split())


def test_no_running_service_gets_the_database_owners_credentials():
    # The owner can switch off the audit log's trigger: only db and migrate see it.
    services = compose()["services"]
    for name in ("web", "worker", "beat", "proxy"):
        service = services[name]
        assert "deploy/owner.env" not in env_files(service), name
        for path in env_files(service):
            leaked = {n for n in env_names(path + ".example") if n.startswith("OWNER_") or n == "POSTGRES_PASSWORD"}
            assert not leaked, (name, path, leaked)
        environment = service.get("environment") or {}
        keys = environment if isinstance(environment, dict) else [item.split("=", 1)[0] for item in environment]
        assert not [k for k in keys if k.startswith("OWNER_") or k == "POSTGRES_PASSWORD"], name


def test_the_dockerfile_is_slim_non_root_and_runs_the_documented_commands():
    lines = dockerfile_lines()
    assert re.fullmatch(r"FROM python:3\.\d+-slim", lines[0])
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    cmd_line = next(line for line in lines if line.startswith("CMD "))
    cmd = json.loads(cmd_line[len("CMD ") :])
    assert " ".join(cmd) == documented_services()["web"]
    assert lines.index(user[-1]) < lines.index(cmd_line)
    collect = next(line for line in lines if "collectstatic" in line)
    assert "python manage.py collectstatic --noinput" in collect
    assert "`python manage.py collectstatic --noinput`" in compose_section()
    # Collected under the production settings (hashed, compressed names).
    assert "ENV" in " ".join(lines) and "DJANGO_SETTINGS_MODULE=psyfi_review.settings_production" in " ".join(lines)


def test_the_gunicorn_config_the_command_names_exists_and_parses():
    cmd = json.loads(next(line for line in dockerfile_lines() if line.startswith("CMD "))[4:])
    config = ROOT / cmd[cmd.index("--config") + 1]
    namespace: dict = {}
    exec(compile(config.read_text(), str(config), "exec"), namespace)  # noqa: S102 - our own config file
    assert namespace["accesslog"] == "-" and "%(U)s" in namespace["access_log_format"]
    assert "%(q)s" not in namespace["access_log_format"] and "%(r)s" not in namespace["access_log_format"]


def test_the_deployment_guide_covers_what_an_operator_needs():
    headings = set(re.findall(r"^## (.+)$", DOC, flags=re.MULTILINE))
    assert {
        "Docker Compose",
        "Health, metrics and logs",
        "Sizing",
        "Backups",
        "Upgrades",
        "Key rotation",
        "Scaling out",
        "Database roles",
        "Outbound egress policy",
    } <= headings
    for term in ("pg_dump", "AUDIT_ANCHOR_DIR", "audit_verify --anchor-dir", "RabbitMQ", "CELERY_BROKER_URL=amqp://"):
        assert term in DOC, term
    # The upgrade order: migrate before the new workers and web.
    upgrade = DOC.split("## Upgrades", 1)[1].split("\n## ", 1)[0]
    assert upgrade.index("docker compose run --rm migrate") < upgrade.index("up -d worker beat")
